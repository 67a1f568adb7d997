/**
 * The client's credentials and the token it sends on every call (`Authorization: Bearer`).
 * With a principal and secret, the client exchanges them for a token at the coordinator
 * (`POST /auth/token`), reuses it, and gets a new one before it expires or when a service
 * answers 401 (an expired or rotated token); with a token, it sends that token as is.
 *
 * Without explicit credentials the client looks, in order, at TESSERA_TOKEN,
 * TESSERA_PRINCIPAL + TESSERA_SECRET, TESSERA_CREDENTIALS_FILE (a JSON file with `principal` and
 * `secret`, such as the coordinator's `bootstrap-admin.json`), and the credentials file
 * `tessera dev` writes into its data dir (`.tessera/dev/credentials.json` under the working
 * directory, or TESSERA_DEV_DIR) when that file names the coordinator the client talks to.
 */
import fs from 'node:fs';
import path from 'node:path';
import { COORDINATOR_ROUTES, type JsonHttpClient, TesseraError, type TokenResponse } from '@tessera/protocol';

export type Credentials = { principal: string; secret: string } | { token: string };

/** Where `tessera dev` keeps its data (and its admin credentials) unless told otherwise. */
export const DEFAULT_DEV_DIR = '.tessera/dev';
export const DEV_CREDENTIALS_FILE = 'credentials.json';

/** The dev cluster's credentials file: the admin principal and secret, and the coordinator they are for. */
export interface DevCredentialsFile {
  coordinator: string;
  principal: string;
  secret: string;
}

/** A new token is fetched when less than this share of the current one's life is left. */
const RENEW_WHEN_LEFT = 0.2;

export class TokenSource {
  private token: { value: string; expiresAtMs: number; renewAtMs: number } | undefined;
  private fetching: Promise<string> | undefined;

  constructor(
    private readonly credentials: Credentials,
    private readonly coordinatorUrl: string,
    private readonly http: JsonHttpClient,
  ) {}

  /** The principal these credentials name, when they name one. */
  get principal(): string | undefined {
    return 'principal' in this.credentials ? this.credentials.principal : undefined;
  }

  /** The Authorization header for the next call. */
  async header(): Promise<Record<string, string>> {
    if ('token' in this.credentials) return { authorization: `Bearer ${this.credentials.token}` };
    const now = Date.now();
    const cached = this.token;
    if (cached !== undefined && now < cached.renewAtMs) return { authorization: `Bearer ${cached.value}` };
    if (cached !== undefined && now < cached.expiresAtMs) {
      // Time to renew, but the token still works: renew in the background and keep using it,
      // so a coordinator outage stops nothing before the token actually expires.
      this.fetch().catch(() => undefined);
      return { authorization: `Bearer ${cached.value}` };
    }
    return { authorization: `Bearer ${await this.fetch()}` };
  }

  /** Drops the cached token after a 401, so the next call exchanges the secret again; false when that cannot help. */
  invalidate(): boolean {
    if ('token' in this.credentials) return false;
    this.token = undefined;
    return true;
  }

  private fetch(): Promise<string> {
    this.fetching ??= (async () => {
      const { principal, secret } = this.credentials as { principal: string; secret: string };
      const basic = Buffer.from(`${principal}:${secret}`, 'utf8').toString('base64');
      const startedMs = Date.now();
      try {
        const answer = await this.http.post<TokenResponse>(this.coordinatorUrl + COORDINATOR_ROUTES.authToken, undefined, {
          headers: { authorization: `Basic ${basic}` },
        });
        const lifeMs = Math.max(0, answer.expiresAtMs - startedMs);
        this.token = { value: answer.token, expiresAtMs: answer.expiresAtMs, renewAtMs: answer.expiresAtMs - lifeMs * RENEW_WHEN_LEFT };
        return answer.token;
      } catch (error) {
        if (error instanceof TesseraError && error.code === 'UNAUTHORIZED') {
          throw new TesseraError('UNAUTHORIZED', `authentication failed for principal ${principal}`, {}, { cause: error });
        }
        throw error;
      } finally {
        this.fetching = undefined;
      }
    })();
    return this.fetching;
  }
}

/** The credentials a client uses when given none: from the environment, else from a `tessera dev` data dir. */
export function discoverCredentials(coordinatorUrl: string, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Credentials | undefined {
  if (env.TESSERA_TOKEN) return { token: env.TESSERA_TOKEN };
  if (env.TESSERA_PRINCIPAL || env.TESSERA_SECRET) {
    if (!env.TESSERA_PRINCIPAL || !env.TESSERA_SECRET) {
      throw new TesseraError('INVALID_REQUEST', 'TESSERA_PRINCIPAL and TESSERA_SECRET go together: set both or neither');
    }
    return { principal: env.TESSERA_PRINCIPAL, secret: env.TESSERA_SECRET };
  }
  if (env.TESSERA_CREDENTIALS_FILE) return readCredentialsFile(env.TESSERA_CREDENTIALS_FILE);
  const file = readDevCredentials(path.resolve(cwd, env.TESSERA_DEV_DIR || DEFAULT_DEV_DIR));
  if (file !== undefined && sameCoordinator(file.coordinator, coordinatorUrl)) return { principal: file.principal, secret: file.secret };
  return undefined;
}

/** `{principal, secret}` from a JSON file; a missing or wrong file is an error, since it was named. */
function readCredentialsFile(file: string): Credentials {
  let parsed: { principal?: unknown; secret?: unknown };
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof parsed;
  } catch (error) {
    throw new TesseraError('INVALID_REQUEST', `cannot read TESSERA_CREDENTIALS_FILE ${file}: ${(error as Error).message}`);
  }
  if (typeof parsed.principal !== 'string' || typeof parsed.secret !== 'string') {
    throw new TesseraError('INVALID_REQUEST', `TESSERA_CREDENTIALS_FILE ${file} must hold {"principal": ..., "secret": ...}`);
  }
  return { principal: parsed.principal, secret: parsed.secret };
}

export function readDevCredentials(devDir: string): DevCredentialsFile | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path.join(devDir, DEV_CREDENTIALS_FILE), 'utf8');
  } catch {
    return undefined;
  }
  const parsed = JSON.parse(text) as Partial<DevCredentialsFile>;
  if (typeof parsed.coordinator !== 'string' || typeof parsed.principal !== 'string' || typeof parsed.secret !== 'string') return undefined;
  return parsed as DevCredentialsFile;
}

function sameCoordinator(a: string, b: string): boolean {
  try {
    const [x, y] = [new URL(a), new URL(b)];
    const local = (host: string) => (host === 'localhost' || host === '[::1]' ? '127.0.0.1' : host);
    return x.protocol === y.protocol && local(x.hostname) === local(y.hostname) && x.port === y.port;
  } catch {
    return false;
  }
}
