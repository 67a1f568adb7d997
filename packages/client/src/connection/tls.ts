/**
 * What the client trusts when the cluster serves HTTPS. Without an explicit `tls` option the
 * client looks, in order, at TESSERA_CA_FILE and at the CA that `tessera dev` made in its data
 * dir (`.tessera/dev/tls/ca.crt` under the working directory, or TESSERA_DEV_DIR), the latter
 * only for an https coordinator. Without any, the system's CAs apply.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TesseraError, type TlsClientOptions } from '@tessera/protocol';
import { DEFAULT_DEV_DIR } from './credentials.js';

/** The dev cluster's CA certificate, relative to its data dir. */
export const DEV_CA_FILE = path.join('tls', 'ca.crt');

export function discoverTls(coordinatorUrl: string, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): TlsClientOptions | undefined {
  if (env.TESSERA_CA_FILE) return { ca: readCa(path.resolve(cwd, env.TESSERA_CA_FILE)), rejectUnauthorized: true };
  if (!coordinatorUrl.startsWith('https:')) return undefined;
  const devCa = path.resolve(cwd, env.TESSERA_DEV_DIR || DEFAULT_DEV_DIR, DEV_CA_FILE);
  return fs.existsSync(devCa) ? { ca: readCa(devCa), rejectUnauthorized: true } : undefined;
}

function readCa(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (error) {
    throw new TesseraError('INVALID_REQUEST', `cannot read the CA file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}
