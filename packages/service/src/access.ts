/**
 * Access control at the HTTP edge: who is calling (`identify`) and whether they may make
 * this request (`authorize`). A service passes one `AccessControl` to `createHttpService`;
 * its handlers never see a refused request.
 *
 * A caller is anonymous, a cluster member (the coordinator or a broker, proven by service
 * identity, `cluster-identity.ts`, which runs before) or a named principal (a client, proven
 * by a token). For a non-member, identifiers run in order;
 * the first that recognises a credential decides. An identifier that finds its credential
 * present but wrong throws `AuthenticationFailure`, so a bad credential is never taken for
 * no credential.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { TesseraError } from '@tessera/protocol';
import type { ServiceMetrics } from './metrics.js';

export type Caller =
  | { kind: 'anonymous' }
  | { kind: 'member'; node: string }
  | { kind: 'principal'; name: string };

/** What an identifier sees of a request. */
export interface IdentifyRequest {
  method: string;
  headers: IncomingHttpHeaders;
}

/** What a rule sees: the caller, the matched route template with its parameters, and the parsed body. */
export interface AccessRequest extends IdentifyRequest {
  /** The route template that matched (`/topics/:topic`), undefined when none did (the answer will be 404). */
  route: string | undefined;
  params: Record<string, string>;
  /** The parsed JSON body, not yet validated: rules read what they need defensively. */
  body: unknown;
  /** A frame body (`application/vnd.tessera.frame`), not yet validated: rules read its head. */
  frame?: Buffer | undefined;
  /** The cluster member that signed the request (service identity), if one did. */
  member: string | undefined;
  /** True when the service runs without service identity, so no caller can be told to be a member. */
  membersUnchecked: boolean;
}

/** Returns the caller its credential names, undefined when the request carries no credential of its kind. */
export type Identifier = (request: IdentifyRequest) => Caller | undefined | Promise<Caller | undefined>;

export interface AccessControl {
  identify: Identifier[];
  /** Throws `AuthenticationFailure` (401) or `TesseraError('FORBIDDEN')` (403) when the caller may not. */
  authorize(request: AccessRequest & { caller: Caller }): void;
}

/** Why a request was refused with 401, as the `reason` label of `tessera_auth_failures_total`. */
export type FailureReason =
  | 'missing'
  | 'malformed'
  | 'bad_signature'
  | 'expired'
  | 'revoked'
  | 'unknown_principal'
  | 'bad_secret'
  | 'not_member';

/** A 401 UNAUTHORIZED that carries why, for the failures metric; the caller sees only the message. */
export class AuthenticationFailure extends TesseraError {
  readonly reason: FailureReason;

  constructor(reason: FailureReason, message: string) {
    super('UNAUTHORIZED', message);
    this.reason = reason;
  }
}

/** Identifies the caller and applies the rules, counting every refusal; returns the caller. */
export async function checkAccess(access: AccessControl, metrics: ServiceMetrics, request: AccessRequest): Promise<Caller> {
  let caller: Caller | undefined = request.member === undefined ? undefined : { kind: 'member', node: request.member };
  try {
    for (const identify of caller === undefined ? access.identify : []) {
      caller = await identify(request);
      if (caller !== undefined) break;
    }
    caller ??= { kind: 'anonymous' };
    access.authorize({ ...request, caller });
    return caller;
  } catch (error) {
    if (error instanceof AuthenticationFailure) {
      metrics.authFailures.inc({ reason: error.reason });
    } else if (error instanceof TesseraError && error.code === 'UNAUTHORIZED') {
      metrics.authFailures.inc({ reason: 'missing' });
    } else if (error instanceof TesseraError && error.code === 'FORBIDDEN') {
      metrics.authDenied.inc({ principal: caller?.kind === 'principal' ? caller.name : (caller?.kind ?? 'anonymous') });
    }
    throw error;
  }
}
