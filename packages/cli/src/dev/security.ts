/**
 * The dev cluster's service identity and TLS material, in its data dir: `cluster-secret`
 * (mode 0600; the services sign their calls to each other with it) and, with TLS, `tls/`: a
 * local CA and one certificate per process made with the openssl binary (keys 0600). Both are
 * made on the first `tessera dev` and reused later, so clients that trust the CA keep working.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DEV_CA_FILE } from '@tessera/client';
import { type CertificateFiles, type TlsClientOptions, makeCertificates } from '@tessera/protocol';
import { CliError } from '../errors.js';

export const CLUSTER_SECRET_FILE = 'cluster-secret';

export interface DevSecurity {
  secretFile: string;
  /** Present when the cluster runs with TLS. */
  certificates?: CertificateFiles;
  /** What the supervisor trusts when it asks the processes whether they are ready. */
  clientTls?: TlsClientOptions;
}

export function ensureDevSecurity(dataDir: string, processNames: string[], tls: boolean, hosts: string[]): DevSecurity {
  const secretFile = path.join(dataDir, CLUSTER_SECRET_FILE);
  if (!fs.existsSync(secretFile)) {
    const temporary = `${secretFile}.${process.pid}.tmp`;
    fs.writeFileSync(temporary, randomBytes(32).toString('base64url') + '\n', { mode: 0o600 });
    fs.renameSync(temporary, secretFile);
  }
  fs.chmodSync(secretFile, 0o600);
  if (!tls) return { secretFile };
  let certificates: CertificateFiles;
  try {
    certificates = makeCertificates(path.dirname(path.join(dataDir, DEV_CA_FILE)), processNames.map((name) => ({ name, hosts })));
  } catch (error) {
    throw new CliError(`${(error as Error).message} (or run tessera dev --no-tls)`, { cause: error });
  }
  return { secretFile, certificates, clientTls: { ca: fs.readFileSync(certificates.caFile), rejectUnauthorized: true } };
}
