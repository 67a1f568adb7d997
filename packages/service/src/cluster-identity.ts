/**
 * Service identity at the HTTP edge. A call signed with the cluster secret
 * (`x-tessera-cluster-auth`, see `@tessera/protocol` cluster-auth.ts) comes from a cluster
 * member, the coordinator or one broker: `ctx.state.clusterNode` names it, and access control
 * (`access.ts`, which runs after) takes it as the caller. A cluster-only route (every
 * `/internal/*` path and those the service names) refuses every other caller with 401 before
 * its body is read or any handler runs; a client credential never opens one.
 */
import type Koa from 'koa';
import getRawBody from 'raw-body';
import { CLUSTER_AUTH_HEADER, type ClusterNode, TesseraError, verifyClusterAuth } from '@tessera/protocol';
import { AuthenticationFailure, type Caller } from './access.js';
import type { ServiceMetrics } from './metrics.js';

/** Paths under this prefix are cluster-only on every service. */
export const INTERNAL_PATH_PREFIX = '/internal/';

export interface ClusterIdentityOptions {
  /** Accepted cluster secrets; undefined leaves cluster-only routes open (a warning is logged at start). */
  secrets: readonly string[] | undefined;
  /** Exact paths (besides /internal/*) only cluster members may call. */
  clusterOnlyPaths: ReadonlySet<string>;
  maxRequestBytes: number;
  metrics: ServiceMetrics;
}

export interface ClusterIdentityState {
  /** The cluster member that signed this request, if one did. */
  clusterNode?: ClusterNode;
  /** True when the service runs without cluster secrets: nobody is checked. */
  clusterAuthOff?: boolean;
  /** The body as received (bytes: a frame is binary), when it was read here to check its signature. */
  rawBody?: Buffer;
}

export function clusterIdentity(options: ClusterIdentityOptions): Koa.Middleware<ClusterIdentityState> {
  const refuse = (reason: 'missing' | 'malformed' | 'expired' | 'bad_signature', message: string): never => {
    options.metrics.authFailures.inc({ reason: `cluster_${reason}` });
    throw new AuthenticationFailure(reason, message);
  };
  return async (ctx, next) => {
    ctx.state.clusterNode = undefined;
    ctx.state.rawBody = undefined;
    ctx.state.clusterAuthOff = options.secrets === undefined;
    if (options.secrets === undefined) return next();
    const clusterOnly = ctx.path.startsWith(INTERNAL_PATH_PREFIX) || options.clusterOnlyPaths.has(ctx.path);
    const header = ctx.get(CLUSTER_AUTH_HEADER);
    if (header === '') {
      if (clusterOnly) refuse('missing', 'this route is for cluster members only');
      return next();
    }
    // The signature covers the body, so the body is read here (bounded like every body).
    let body: Buffer | undefined;
    if (ctx.method === 'POST' || ctx.method === 'PUT' || ctx.method === 'PATCH' || ctx.method === 'DELETE') {
      body = await getRawBody(ctx.req, { limit: options.maxRequestBytes });
    }
    const result = verifyClusterAuth(options.secrets, header, ctx.method, ctx.originalUrl, body);
    if (!result.ok) refuse(result.reason, 'cluster credential refused');
    else ctx.state.clusterNode = result.node;
    ctx.state.rawBody = body;
    return next();
  };
}

/**
 * Throws 403 unless the caller is the cluster member `node`: a broker speaks only for itself
 * (its registration, heartbeat, ISR changes), whatever id its body names.
 */
export function requireClusterNode(state: ClusterIdentityState & { caller?: Caller }, node: ClusterNode, metrics: ServiceMetrics): void {
  if (state.clusterAuthOff || state.clusterNode === node) return;
  metrics.authDenied.inc({ principal: state.clusterNode ?? 'anonymous' });
  throw new TesseraError('FORBIDDEN', `${state.clusterNode ?? 'a non-member'} may not speak for ${node}`);
}
