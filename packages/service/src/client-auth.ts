/**
 * Client authentication and authorization, as the coordinator and every broker apply them:
 * the auth state (public keys, principals with their current credential, ACLs), a bearer
 * token identifier, and the rules that say what a route requires.
 *
 * Tokens are JWTs signed by the coordinator with Ed25519 (jose). Brokers hold only the public
 * keys, so a broker can check a token but never mint one; a token names its principal (`sub`)
 * and the credential it was issued for (`cid`), so deleting a principal or rotating its secret
 * refuses its tokens as soon as the new auth state arrives, not only when they expire.
 */
import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet } from 'jose';
import { type AclEntry, type AclOperation, type AuthStateResponse, TesseraError } from '@tessera/protocol';
import { type AccessControl, type AccessRequest, AuthenticationFailure, type Caller, type Identifier } from './access.js';

export const TOKEN_ISSUER = 'tessera';
export const TOKEN_ALGORITHM = 'EdDSA';

/** What a route asks of its caller. */
export type Requirement =
  | { kind: 'public' }
  /** Cluster members only (service identity); a client credential never opens it. */
  | { kind: 'member' }
  /**
   * A cluster member, or any authenticated principal. `sharedWithMembers`: brokers call it too,
   * so while service identity is off (nobody can prove membership) anonymous callers pass.
   */
  | { kind: 'authenticated'; sharedWithMembers?: boolean }
  | { kind: 'cluster-admin' }
  | { kind: 'topic'; operation: AclOperation; topics: string[] }
  /** `consume` on the group and on every topic named. */
  | { kind: 'group'; group: string; topics: string[] };

/** A route's rule: what it requires, from its parameters and (unvalidated) body. */
export type Rule = (request: AccessRequest) => Requirement;

/** Rules by `METHOD /route/template`; a route without one requires an authenticated caller. */
export type RuleTable = Record<string, Rule>;

/** Most verified tokens remembered, so the data path does not verify a signature per request. */
const MAX_CACHED_TOKENS = 10_000;

export class ClientAuth {
  private state: AuthStateResponse = { version: -1, enabled: false, keys: [], principals: [], acls: [] };
  private credentials = new Map<string, string>();
  private keySet: ReturnType<typeof createLocalJWKSet> | undefined;
  /** token → its principal, credential and expiry, for tokens already verified with the current keys. */
  private readonly verified = new Map<string, { principal: string; credential: string; expiresAtMs: number }>();

  constructor(private readonly nowMs: () => number = Date.now) {}

  /** True once a state was applied (a broker refuses clients with 503 until then). */
  get loaded(): boolean {
    return this.state.version >= 0;
  }

  get version(): number {
    return this.state.version;
  }

  get enabled(): boolean {
    return this.state.enabled;
  }

  apply(state: AuthStateResponse): void {
    const keysChanged = JSON.stringify(state.keys) !== JSON.stringify(this.state.keys);
    this.state = state;
    this.credentials = new Map(state.principals.map((p) => [p.name, p.credential]));
    if (keysChanged) {
      this.keySet = state.keys.length > 0 ? createLocalJWKSet({ keys: state.keys } as unknown as JSONWebKeySet) : undefined;
      this.verified.clear();
    }
  }

  /** Identifies `Authorization: Bearer TOKEN` callers; other requests are left to the next identifier. */
  bearerIdentifier(): Identifier {
    return async (request) => {
      const header = request.headers.authorization;
      if (header === undefined) return undefined;
      if (!this.loaded) throw new TesseraError('UNAVAILABLE', 'the cluster auth state is not loaded yet');
      const match = /^Bearer ([A-Za-z0-9_\-.]{1,4096})$/.exec(header);
      if (!match) {
        // Basic credentials are only for POST /auth/token, whose handler reads them.
        if (/^Basic /.test(header)) return undefined;
        throw new AuthenticationFailure('malformed', 'the Authorization header must be "Bearer TOKEN"');
      }
      return { kind: 'principal', name: await this.verify(match[1]!) };
    };
  }

  /** Checks a token's signature, expiry and credential; returns its principal or throws 401. */
  async verify(token: string): Promise<string> {
    let entry = this.verified.get(token);
    if (entry === undefined) {
      if (this.keySet === undefined) throw new AuthenticationFailure('bad_signature', 'token refused: no signing key is known yet');
      try {
        const { payload } = await jwtVerify(token, this.keySet, {
          issuer: TOKEN_ISSUER,
          algorithms: [TOKEN_ALGORITHM],
          currentDate: new Date(this.nowMs()),
        });
        if (typeof payload.sub !== 'string' || typeof payload.cid !== 'string' || typeof payload.exp !== 'number') {
          throw new AuthenticationFailure('malformed', 'token refused: it lacks sub, cid or exp');
        }
        entry = { principal: payload.sub, credential: payload.cid, expiresAtMs: payload.exp * 1000 };
      } catch (error) {
        throw tokenFailure(error);
      }
      if (this.verified.size >= MAX_CACHED_TOKENS) this.verified.clear();
      this.verified.set(token, entry);
    }
    if (entry.expiresAtMs <= this.nowMs()) {
      this.verified.delete(token);
      throw new AuthenticationFailure('expired', `the token of principal ${entry.principal} has expired; get a new one`);
    }
    const credential = this.credentials.get(entry.principal);
    if (credential === undefined) {
      throw new AuthenticationFailure('revoked', `authentication failed for principal ${entry.principal}: it no longer exists`);
    }
    if (credential !== entry.credential) {
      throw new AuthenticationFailure('revoked', `authentication failed for principal ${entry.principal}: its secret was changed`);
    }
    return entry.principal;
  }

  /** True when `principal` may do `operation` on the topic or group `name`, or is a cluster admin. */
  allows(principal: string, resource: 'topic' | 'group' | 'cluster', name: string, operation: AclOperation): boolean {
    return this.state.acls.some((acl) => acl.principal === principal && grants(acl, resource, name, operation));
  }

  /** The AccessControl of a service with these rules. */
  accessControl(rules: RuleTable): AccessControl {
    return {
      identify: [this.bearerIdentifier()],
      authorize: (request) => {
        // HEAD runs the GET route's handler, so it answers to the GET route's rule.
        const method = request.method === 'HEAD' ? 'GET' : request.method;
        const rule = request.route === undefined ? undefined : rules[`${method} ${request.route}`];
        this.authorize(rule === undefined ? { kind: 'authenticated' } : rule(request), request.caller, request.membersUnchecked);
      },
    };
  }

  /** Throws 401 or 403 unless `caller` meets `requirement`. */
  authorize(requirement: Requirement, caller: Caller, membersUnchecked: boolean): void {
    if (requirement.kind === 'public' || caller.kind === 'member') return;
    if (requirement.kind === 'member') {
      if (caller.kind === 'anonymous' && membersUnchecked) return;
      if (caller.kind === 'principal') throw forbidden(caller.name, 'call cluster-internal routes (cluster members only)');
      throw new AuthenticationFailure('not_member', 'this route is for cluster members only');
    }
    if (!this.enabled) return;
    // Without service identity a broker cannot prove it is one; its calls to shared routes pass.
    if (requirement.kind === 'authenticated' && requirement.sharedWithMembers && caller.kind === 'anonymous' && membersUnchecked) return;
    if (caller.kind === 'anonymous') {
      throw new AuthenticationFailure('missing', 'authentication required: send Authorization: Bearer TOKEN (POST /auth/token gives one)');
    }
    const who = caller.name;
    if (this.allows(who, 'cluster', '', 'admin')) return;
    switch (requirement.kind) {
      case 'authenticated':
        return;
      case 'cluster-admin':
        throw forbidden(who, 'administer the cluster');
      case 'topic':
        for (const topic of requirement.topics) {
          if (!this.allows(who, 'topic', topic, requirement.operation)) throw forbidden(who, `${verb(requirement.operation)} topic ${topic}`);
        }
        return;
      case 'group':
        if (!this.allows(who, 'group', requirement.group, 'consume')) throw forbidden(who, `consume as group ${requirement.group}`);
        for (const topic of requirement.topics) {
          if (!this.allows(who, 'topic', topic, 'consume')) throw forbidden(who, `consume from topic ${topic}`);
        }
        return;
    }
  }
}

/** Whether one ACL entry grants `operation` on a resource; topic `admin` grants every operation on the topic. */
export function grants(acl: AclEntry, resource: 'topic' | 'group' | 'cluster', name: string, operation: AclOperation): boolean {
  if (acl.resource !== resource) return false;
  if (acl.operation !== operation && !(resource === 'topic' && acl.operation === 'admin')) return false;
  if (resource === 'cluster') return true;
  if (acl.name === '*') return true;
  return acl.prefix ? name.startsWith(acl.name) : name === acl.name;
}

function verb(operation: AclOperation): string {
  return operation === 'produce' ? 'produce to' : operation === 'consume' ? 'consume from' : 'administer';
}

function forbidden(principal: string, what: string): TesseraError {
  return new TesseraError('FORBIDDEN', `principal ${principal} is not allowed to ${what}`);
}

function tokenFailure(error: unknown): AuthenticationFailure {
  if (error instanceof AuthenticationFailure) return error;
  if (error instanceof joseErrors.JWTExpired) return new AuthenticationFailure('expired', 'the token has expired; get a new one');
  if (error instanceof joseErrors.JWSSignatureVerificationFailed || error instanceof joseErrors.JWKSNoMatchingKey) {
    return new AuthenticationFailure('bad_signature', 'token refused: its signature does not verify');
  }
  return new AuthenticationFailure('malformed', 'token refused: it is not a valid Tessera token');
}

/** Names of the topics of a body's `partitions` or `offsets` list (`[{topic, ...}]`), deduplicated; rules read unvalidated bodies. */
export function topicsIn(body: unknown, field: 'partitions' | 'offsets'): string[] {
  const list = (body as Record<string, unknown> | null)?.[field];
  if (!Array.isArray(list)) return [];
  const names = new Set<string>();
  // Every entry: the body is already bounded, and a topic past any cut-off would go unchecked.
  for (const item of list) {
    const topic = (item as { topic?: unknown } | null)?.topic;
    if (typeof topic === 'string') names.add(topic);
  }
  return [...names];
}

/** A string field of an unvalidated body, or '' (which no ACL grants, so the check refuses). */
export function stringIn(body: unknown, field: string): string {
  const value = (body as Record<string, unknown> | null)?.[field];
  return typeof value === 'string' ? value : '';
}
