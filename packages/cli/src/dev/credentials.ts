/**
 * The dev cluster's admin credentials: `DIR/credentials.json` (mode 0600), made on the first
 * `tessera dev` with a random secret and reused on every later one. The supervisor hands the
 * secret to the coordinator as its bootstrap admin secret (in the environment, never on the
 * command line), and the CLI and the client library read the file when pointed at this cluster.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { BOOTSTRAP_ADMIN } from '@tessera/protocol';
import { DEV_CREDENTIALS_FILE, type DevCredentialsFile, readDevCredentials } from '@tessera/client';

/** Returns the dev credentials of `dataDir`, creating them (or updating the coordinator URL they are for). */
export function ensureDevCredentials(dataDir: string, coordinatorUrl: string): DevCredentialsFile {
  const existing = readDevCredentials(dataDir);
  const credentials: DevCredentialsFile = existing
    ? { ...existing, coordinator: coordinatorUrl }
    : { coordinator: coordinatorUrl, principal: BOOTSTRAP_ADMIN, secret: randomBytes(32).toString('base64url') };
  if (existing?.coordinator !== coordinatorUrl) {
    const file = path.join(dataDir, DEV_CREDENTIALS_FILE);
    const temporary = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(temporary, JSON.stringify(credentials, null, 2) + '\n', { mode: 0o600 });
    fs.renameSync(temporary, file);
  }
  fs.chmodSync(path.join(dataDir, DEV_CREDENTIALS_FILE), 0o600);
  return credentials;
}
