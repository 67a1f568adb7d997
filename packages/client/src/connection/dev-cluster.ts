/**
 * Where a client goes when told nowhere: TESSERA_COORDINATOR, else the coordinator of the
 * `tessera dev` cluster whose data dir is `.tessera/dev` under the working directory (or
 * TESSERA_DEV_DIR), which serves HTTPS, else http://127.0.0.1:7070.
 */
import path from 'node:path';
import { DEFAULT_COORDINATOR_URL } from '@tessera/protocol';
import { DEFAULT_DEV_DIR, readDevCredentials } from './credentials.js';

export function defaultCoordinatorUrl(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  if (env.TESSERA_COORDINATOR) return env.TESSERA_COORDINATOR;
  const dev = readDevCredentials(path.resolve(cwd, env.TESSERA_DEV_DIR || DEFAULT_DEV_DIR));
  return dev?.coordinator ?? DEFAULT_COORDINATOR_URL;
}
