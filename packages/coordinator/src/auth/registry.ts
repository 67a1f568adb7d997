/**
 * The coordinator's principals and ACLs: created, rotated and revoked through the API,
 * persisted in coordinator.db (secrets only as scrypt hashes), turned into tokens, and shipped
 * to brokers as the auth state (`GET /internal/auth`) whose version rides on every heartbeat
 * answer. The coordinator's own checks use the same state, applied at once on every change.
 *
 * On first start with authentication on and no principal yet, the bootstrap admin is created
 * with cluster admin: its secret comes from TESSERA_BOOTSTRAP_ADMIN_SECRET, or is generated and
 * written once to DATA/bootstrap-admin.json (mode 0600). The secret is never logged.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { type CryptoKey, SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import {
  type AclEntry,
  type AclListResponse,
  type AclOperation,
  type AuthStateResponse,
  BOOTSTRAP_ADMIN,
  type CreatePrincipalRequest,
  type PrincipalListResponse,
  type PrincipalSecretResponse,
  TesseraError,
  type TokenResponse,
  principalName,
} from '@tessera/protocol';
import { AuthenticationFailure, ClientAuth, type Logger, TOKEN_ALGORITHM, TOKEN_ISSUER } from '@tessera/service';
import type { PrincipalRow, Store } from '../store/store.js';
import { UNKNOWN_PRINCIPAL_HASH, generateSecret, hashSecret, verifySecret } from './secrets.js';

export const BOOTSTRAP_ADMIN_FILE = 'bootstrap-admin.json';
const SIGNING_KEY_META = 'token_signing_key';
/**
 * Secret checks running at once, and waiting. Each costs tens of milliseconds of a libuv worker
 * thread on purpose; beyond these, token requests are refused (429, retriable), so a flood of
 * them can neither take every worker thread nor queue without bound.
 */
export const DEFAULT_SECRET_CHECKS = { running: 2, waiting: 256 } as const;
const AUTH_VERSION_META = 'auth_version';

export interface AuthRegistryOptions {
  store: Store;
  logger: Logger;
  dataDir: string;
  /** Client authentication on: every client call needs a token, and ACLs apply. */
  enabled: boolean;
  tokenTtlMs: number;
  /** The bootstrap admin's secret (TESSERA_BOOTSTRAP_ADMIN_SECRET); generated when absent. */
  bootstrapSecret?: string;
  /** Wall-clock time: tokens carry absolute expiry times. */
  nowMs?: () => number;
  /** Secret checks running and waiting at once (DEFAULT_SECRET_CHECKS). */
  secretChecks?: { running: number; waiting: number };
}

export class AuthRegistry {
  readonly clientAuth: ClientAuth;
  private principalsByName = new Map<string, PrincipalRow>();
  private authVersion: number;
  private secretChecks = 0;
  private readonly waitingChecks: Array<() => void> = [];
  private readonly listeners: Array<() => void> = [];

  private constructor(
    private readonly options: AuthRegistryOptions,
    private readonly signingKey: CryptoKey,
    private readonly publicJwk: JWK,
  ) {
    this.clientAuth = new ClientAuth(this.nowMs);
    this.authVersion = Number(options.store.getMeta(AUTH_VERSION_META) ?? 0);
    for (const row of options.store.principals()) this.principalsByName.set(row.name, row);
  }

  static async open(options: AuthRegistryOptions): Promise<AuthRegistry> {
    const { signingKey, publicJwk, created } = await loadSigningKey(options.store);
    const registry = new AuthRegistry(options, signingKey, publicJwk);
    // A new key (first start, or the old one was removed to replace it) is a new auth state: brokers refetch it.
    if (created) registry.change(() => undefined);
    if (options.enabled && registry.principalsByName.size === 0) await registry.bootstrap();
    registry.publish();
    return registry;
  }

  private readonly nowMs = (): number => (this.options.nowMs ?? Date.now)();

  get version(): number {
    return this.authVersion;
  }

  /** Client authentication on: every client call needs a token, and ACLs apply. */
  get enabled(): boolean {
    return this.options.enabled;
  }

  /** Called after every change of the principals or ACLs, once the coordinator applies it. */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /**
   * Why `principal` may not do each `operation` on its topic now, or null when it may: always
   * with authentication off; never once the principal is deleted (its ACLs stay, like Kafka's,
   * so they count again only if the name is created again).
   */
  refusal(principal: string, needs: ReadonlyArray<{ operation: AclOperation; topic: string }>): string | null {
    if (!this.options.enabled) return null;
    if (!this.principalsByName.has(principal)) return `principal ${principal} does not exist`;
    for (const { operation, topic } of needs) {
      try {
        this.clientAuth.authorize({ kind: 'topic', operation, topics: [topic] }, { kind: 'principal', name: principal }, false);
      } catch (error) {
        if (error instanceof TesseraError && error.code === 'FORBIDDEN') return error.message;
        throw error;
      }
    }
    return null;
  }

  /** What brokers receive: public keys, principals with their current credential, ACLs. */
  state(): AuthStateResponse {
    return {
      version: this.authVersion,
      enabled: this.options.enabled,
      keys: [this.publicJwk as Record<string, unknown>],
      principals: [...this.principalsByName.values()].map((p) => ({ name: p.name, credential: p.credential })),
      acls: this.options.store.acls(),
    };
  }

  list(): PrincipalListResponse {
    return { principals: [...this.principalsByName.values()].map((p) => ({ name: p.name, createdMs: p.created_ms })) };
  }

  async create(request: CreatePrincipalRequest): Promise<PrincipalSecretResponse> {
    if (this.principalsByName.has(request.name)) throw new TesseraError('PRINCIPAL_EXISTS', `principal ${request.name} already exists`);
    const secret = request.secret ?? generateSecret();
    const row: PrincipalRow = { name: request.name, secret_hash: await hashSecret(secret), credential: newCredential(), created_ms: this.nowMs() };
    // Checked again after the await: two creations of one name may have raced.
    if (this.principalsByName.has(request.name)) throw new TesseraError('PRINCIPAL_EXISTS', `principal ${request.name} already exists`);
    this.change(() => this.options.store.savePrincipal(row));
    this.principalsByName.set(row.name, row);
    this.publish();
    return { name: row.name, createdMs: row.created_ms, secret };
  }

  /** A new secret (and credential): every token of the old one is refused from the next auth state on. */
  async rotate(name: string, secret: string | undefined): Promise<PrincipalSecretResponse> {
    const existing = this.get(name);
    const newSecret = secret ?? generateSecret();
    const row: PrincipalRow = { ...existing, secret_hash: await hashSecret(newSecret), credential: newCredential() };
    this.get(name);
    this.change(() => this.options.store.savePrincipal(row));
    this.principalsByName.set(name, row);
    this.publish();
    return { name, createdMs: row.created_ms, secret: newSecret };
  }

  /** Revokes the principal; its ACLs stay (like Kafka's), so re-creating the name restores its permissions. */
  delete(name: string): void {
    this.get(name);
    this.change(() => this.options.store.deletePrincipal(name));
    this.principalsByName.delete(name);
    this.publish();
  }

  acls(principal?: string): AclListResponse {
    const all = this.options.store.acls();
    return { acls: principal === undefined ? all : all.filter((acl) => acl.principal === principal) };
  }

  addAcl(acl: AclEntry): { added: boolean } {
    let added = false;
    this.change(() => (added = this.options.store.addAcl(acl)));
    this.publish();
    return { added };
  }

  removeAcl(acl: AclEntry): { removed: boolean } {
    let removed = false;
    this.change(() => (removed = this.options.store.removeAcl(acl)));
    this.publish();
    return { removed };
  }

  /**
   * Exchanges `Authorization: Basic base64(principal:secret)` for a signed token. An unknown
   * principal and a wrong secret get the same answer after the same work, so names cannot be probed.
   */
  async issueToken(authorization: string | undefined): Promise<TokenResponse> {
    const { name, secret } = parseBasic(authorization);
    const row = this.principalsByName.get(name);
    let matches: boolean;
    await this.startSecretCheck();
    try {
      matches = await verifySecret(secret, row?.secret_hash ?? (await UNKNOWN_PRINCIPAL_HASH));
    } finally {
      this.endSecretCheck();
    }
    if (row === undefined || !matches) {
      throw new AuthenticationFailure(row === undefined ? 'unknown_principal' : 'bad_secret', `authentication failed for principal ${name}`);
    }
    // The principal may have been deleted or rotated while the hash was computed.
    if (this.principalsByName.get(name)?.credential !== row.credential) {
      throw new AuthenticationFailure('revoked', `authentication failed for principal ${name}`);
    }
    const nowMs = this.nowMs();
    const expiresAtMs = nowMs + this.options.tokenTtlMs;
    const token = await new SignJWT({ cid: row.credential })
      .setProtectedHeader({ alg: TOKEN_ALGORITHM, kid: this.publicJwk.kid })
      .setIssuer(TOKEN_ISSUER)
      .setSubject(name)
      .setIssuedAt(Math.floor(nowMs / 1000))
      .setExpirationTime(Math.floor(expiresAtMs / 1000))
      .sign(this.signingKey);
    return { token, principal: name, expiresAtMs: Math.floor(expiresAtMs / 1000) * 1000 };
  }

  /** Takes a secret check slot, waiting for one (a finished check hands its slot over), or refuses when too many wait. */
  private async startSecretCheck(): Promise<void> {
    const bound = this.options.secretChecks ?? DEFAULT_SECRET_CHECKS;
    if (this.secretChecks < bound.running) {
      this.secretChecks++;
      return;
    }
    if (this.waitingChecks.length >= bound.waiting) {
      throw new TesseraError('TOO_MANY_REQUESTS', 'too many authentications at once; retry shortly');
    }
    await new Promise<void>((resolve) => this.waitingChecks.push(resolve));
  }

  private endSecretCheck(): void {
    const next = this.waitingChecks.shift();
    if (next) next();
    else this.secretChecks--;
  }

  private get(name: string): PrincipalRow {
    const row = this.principalsByName.get(name);
    if (row === undefined) throw new TesseraError('PRINCIPAL_NOT_FOUND', `principal ${name} does not exist`);
    return row;
  }

  /** Writes a change and the next auth version in one transaction. */
  private change(write: () => void): void {
    this.options.store.transaction(() => {
      write();
      this.options.store.setMeta(AUTH_VERSION_META, String(this.authVersion + 1));
    });
    this.authVersion++;
  }

  private publish(): void {
    this.clientAuth.apply(this.state());
    for (const listener of this.listeners) listener();
  }

  private async bootstrap(): Promise<void> {
    const fromEnv = this.options.bootstrapSecret !== undefined && this.options.bootstrapSecret !== '';
    const file = path.join(this.options.dataDir, BOOTSTRAP_ADMIN_FILE);
    // The file is written before the principal exists, and never over an existing one: a crash
    // in between leaves a file whose secret the next start uses instead of writing another.
    const secret = fromEnv ? this.options.bootstrapSecret! : writeSecretFile(file, { principal: BOOTSTRAP_ADMIN, secret: generateSecret() });
    await this.create({ name: BOOTSTRAP_ADMIN, secret });
    this.addAcl({ principal: BOOTSTRAP_ADMIN, resource: 'cluster', name: '', prefix: false, operation: 'admin' });
    this.options.logger.warn(
      fromEnv ? { principal: BOOTSTRAP_ADMIN } : { principal: BOOTSTRAP_ADMIN, secretFile: file },
      fromEnv
        ? 'created the bootstrap admin with the secret from TESSERA_BOOTSTRAP_ADMIN_SECRET'
        : 'created the bootstrap admin; its secret is in the file named here (mode 0600)',
    );
  }
}

/** Writes `{principal, secret}` readable by the owner only and returns the secret; an existing file is kept and its secret returned. */
function writeSecretFile(file: string, content: { principal: string; secret: string }): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  try {
    fs.writeFileSync(file, JSON.stringify(content) + '\n', { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const existing = JSON.parse(fs.readFileSync(file, 'utf8')) as { secret?: unknown };
    if (typeof existing.secret !== 'string') throw new Error(`${file} exists but holds no secret; remove it to bootstrap again`);
    fs.chmodSync(file, 0o600);
    return existing.secret;
  }
  return content.secret;
}

function parseBasic(authorization: string | undefined): { name: string; secret: string } {
  const match = /^Basic ([A-Za-z0-9+/=]{1,2000})$/.exec(authorization ?? '');
  if (!match) {
    throw new AuthenticationFailure('missing', 'send the principal and secret as Authorization: Basic base64(principal:secret)');
  }
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const name = colon < 0 ? '' : decoded.slice(0, colon);
  if (!principalName.safeParse(name).success) throw new AuthenticationFailure('malformed', 'the Basic credentials name no valid principal');
  return { name, secret: decoded.slice(colon + 1) };
}

function newCredential(): string {
  return randomBytes(12).toString('base64url');
}

/** The Ed25519 key tokens are signed with: made on first start, kept in coordinator.db. */
async function loadSigningKey(store: Store): Promise<{ signingKey: CryptoKey; publicJwk: JWK; created: boolean }> {
  let stored = store.getMeta(SIGNING_KEY_META);
  const created = stored === undefined;
  if (stored === undefined) {
    const { privateKey } = await generateKeyPair(TOKEN_ALGORITHM, { crv: 'Ed25519', extractable: true });
    const jwk = await exportJWK(privateKey);
    stored = JSON.stringify(jwk);
    store.setMeta(SIGNING_KEY_META, stored);
  }
  const jwk = JSON.parse(stored) as JWK;
  const { d: _private, ...publicPart } = jwk;
  const publicJwk: JWK = { ...publicPart, alg: TOKEN_ALGORITHM, use: 'sig', kid: await calculateJwkThumbprint(publicPart) };
  const signingKey = (await importJWK(jwk, TOKEN_ALGORITHM)) as CryptoKey;
  return { signingKey, publicJwk, created };
}
