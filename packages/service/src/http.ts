/**
 * The HTTP edge shared by the coordinator and the brokers: one koa app with the error
 * body of every failure, a bounded JSON body reader, access control (who is calling, and
 * may they make this request: `access.ts`), request metrics, and the /health, /ready and
 * /metrics routes.
 */
import http, { type Server } from 'node:http';
import https from 'node:https';
import Router, { type RouterContext } from '@koa/router';
import Koa from 'koa';
import getRawBody from 'raw-body';
import type { Registry } from 'prom-client';
import { DEFAULT_MAX_REQUEST_BYTES, FRAME_CONTENT_TYPE, TesseraError, type HealthResponse, type TlsServerOptions } from '@tessera/protocol';
import { type AccessControl, type Caller, checkAccess } from './access.js';
import { BodyBudget, BodyBudgetFull } from './body-budget.js';
import { clusterIdentity, type ClusterIdentityState } from './cluster-identity.js';
import type { Logger } from './logger.js';
import { createMetrics, type ServiceMetrics } from './metrics.js';
import { isStorageFull } from './storage-space.js';

export type Context = RouterContext<ServiceState>;

export interface ServiceState extends ClusterIdentityState {
  /** The parsed JSON body (undefined for requests without one, or with a frame body). */
  body: unknown;
  /** The body of a request sent as `application/vnd.tessera.frame` (undefined otherwise). */
  frame?: Buffer;
  /** Who made the request, as access control identified them. */
  caller: Caller;
}

/** Bounds on what one client can hold open: the defence against slow and idle connections. */
export interface ServerLimits {
  /** Time to receive a request's headers, from the connection's start or the previous request. */
  headersTimeoutMs: number;
  /** Time to receive a whole request, headers and body. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long. */
  keepAliveTimeoutMs: number;
  /** Open connections beyond this are closed as soon as they are accepted. */
  maxConnections: number;
}

export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 65_000,
  maxConnections: 1_024,
};

export interface HttpServiceOptions {
  service: HealthResponse['service'];
  id?: number;
  logger: Logger;
  maxRequestBytes?: number;
  /**
   * Most bytes of request bodies being read or held by requests in service, over all
   * connections (default 4 × maxRequestBytes), the HTTP edge's and those of the service's
   * streams (`bodyBudget`). A request whose body would pass it is answered UNAVAILABLE
   * (retriable) without reading it: before a caller is identified, bodies are read in full, so
   * without this bound slow senders could fill the memory.
   */
  maxBodyBytesInFlight?: number;
  /** Tells /ready whether the service is serving yet. */
  isReady: () => boolean;
  /** Serve HTTPS with this certificate; without it, plain HTTP. */
  tls?: TlsServerOptions;
  serverLimits?: Partial<ServerLimits>;
  /** Cluster secrets: a call signed with one of them comes from a cluster member (`cluster-identity.ts`). */
  clusterSecrets?: readonly string[];
  /** Paths (besides /internal/*) only cluster members may call. */
  clusterOnlyPaths?: readonly string[];
  /** Who may call what; without it every request is allowed (an embedded service in a test). */
  access?: AccessControl;
  /**
   * Called when a request handler broke an invariant (an InvariantError): a programmer error
   * that must stop the service loudly, never become a retriable 500. Default: log and exit 1.
   */
  onInvariantBroken?: (error: Error) => void;
}

export interface HttpService {
  app: Koa<ServiceState>;
  router: Router<ServiceState>;
  metrics: ServiceMetrics;
  registry: Registry;
  /** `https` when the service serves TLS. */
  scheme: 'http' | 'https';
  /** The bytes of request bodies being read or held, shared with the service's streams (a broker's data stream). */
  bodyBudget: BodyBudget;
  listen(port: number, host: string): Promise<Server>;
  close(): Promise<void>;
}

export function createHttpService(options: HttpServiceOptions): HttpService {
  const app = new Koa<ServiceState>();
  // Case-sensitive, as the cluster-only check of `/internal/…` paths and the rule table are.
  const router = new Router<ServiceState>({ sensitive: true });
  const { registry, metrics } = createMetrics(options.service);
  const maxRequestBytes = options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
  const limits: ServerLimits = { ...DEFAULT_SERVER_LIMITS, ...options.serverLimits };
  const bodies = new BodyBudget(options.maxBodyBytesInFlight ?? 4 * maxRequestBytes);
  let server: Server | undefined;

  if (options.clusterSecrets === undefined) {
    options.logger.warn('no cluster secret: cluster-only routes accept any caller (set --cluster-secret-file or TESSERA_CLUSTER_SECRET)');
  }
  // What koa reports outside the middleware (a client's stream failing, a deadline passing):
  // one line for a client's fault, the stack only for a server error. Without this listener koa
  // prints every such error's stack to stderr.
  app.on('error', (error: Error & { status?: number; code?: string }) => {
    if ((error.status ?? 500) >= 500 && !CLIENT_STREAM_ERRORS.has(error.code ?? '')) {
      options.logger.error({ err: error }, 'request stream failed');
    } else {
      options.logger.info({ code: error.code, status: error.status, message: error.message.slice(0, 200) }, 'request stream failed');
    }
  });
  const onInvariantBroken =
    options.onInvariantBroken ??
    ((error: Error) => {
      options.logger.fatal({ err: error }, 'invariant violated; stopping');
      process.exit(1);
    });
  // Outside the error bodies, so that a failed request is observed with the status it is answered.
  app.use(requestMetrics(metrics));
  app.use(errorBodies(options.logger, onInvariantBroken));
  app.use(bodyBudget(maxRequestBytes, bodies));
  app.use(
    clusterIdentity({
      secrets: options.clusterSecrets,
      clusterOnlyPaths: new Set(options.clusterOnlyPaths ?? []),
      maxRequestBytes,
      metrics,
    }),
  );
  app.use(jsonBody(maxRequestBytes));
  app.use(authenticate(router, metrics, options.access));

  const health = (status: HealthResponse['status']): HealthResponse => ({
    status,
    service: options.service,
    ...(options.id === undefined ? {} : { id: options.id }),
  });
  router.get('/health', (ctx) => {
    ctx.body = health('ok');
  });
  router.get('/ready', (ctx) => {
    if (!options.isReady()) {
      // Not ready is a state a probe polls, not a failure: answered without a log line.
      const notReady = new TesseraError('UNAVAILABLE', `${options.service} is starting`);
      ctx.status = notReady.status;
      ctx.body = notReady.toBody();
      return;
    }
    ctx.body = health('ok');
  });
  router.get('/metrics', async (ctx) => {
    ctx.type = registry.contentType;
    ctx.body = await registry.metrics();
  });

  // Routes are mounted when listen() is called, so services can add theirs first.
  return {
    app,
    router,
    metrics,
    registry,
    scheme: options.tls ? 'https' : 'http',
    bodyBudget: bodies,
    listen(port, host) {
      app.use(router.routes());
      app.use(notFound());
      return new Promise((resolve, reject) => {
        const listening = createServer(app.callback(), limits, options.tls);
        listening.once('error', reject);
        listening.once('listening', () => {
          server = listening;
          resolve(listening);
        });
        listening.listen(port, host);
      });
    },
    close() {
      return new Promise((resolve) => {
        if (!server) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** Errors of a client's connection (it went away, or missed a deadline): not the server's fault. */
const CLIENT_STREAM_ERRORS = new Set(['ERR_HTTP_REQUEST_TIMEOUT', 'ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

/**
 * An HTTP or HTTPS server with every bound of `limits`. With TLS, a client speaking plain HTTP
 * fails the handshake and is disconnected: nothing is served in clear.
 */
function createServer(handler: http.RequestListener, limits: ServerLimits, tls: TlsServerOptions | undefined): Server {
  const options: http.ServerOptions = {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // How often the header and request deadlines are checked; Node's default (30 s) would let a
    // slow connection outlive a short deadline by that much.
    connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
  };
  const server = tls
    ? https.createServer(
        { ...options, cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca } : {}), minVersion: 'TLSv1.2', handshakeTimeout: limits.headersTimeoutMs },
        handler,
      )
    : http.createServer(options, handler);
  server.maxConnections = limits.maxConnections;
  return server;
}

/** Every failure becomes `{"error": {"code", "message", "retriable"}}` with the code's status, logged as refusalOf says. */
function errorBodies(logger: Logger, onInvariantBroken: (error: Error) => void): Koa.Middleware<ServiceState> {
  return async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      if (error instanceof Error && error.name === 'InvariantError') onInvariantBroken(error);
      const tessera = refusalOf(error, logger, ctx.method, ctx.path);
      ctx.status = tessera.status;
      ctx.body = tessera.toBody();
    }
  };
}

/**
 * The TesseraError a failed request is answered with, logged: a 5xx with its stack (a bug,
 * INTERNAL, as an error; a service that cannot serve right now, UNAVAILABLE,
 * NOT_ENOUGH_REPLICAS..., as a warning: callers cannot cause these at will), a 4xx (the
 * caller's mistake, or an attacker's probing) as one line without a stack, so bad requests
 * cannot flood the log with traces. A body refused for the body budget is a 503 any caller can
 * cause at will: one debug line without a stack (the request metrics count it, route
 * `unmatched`, status 503). Shared by the HTTP edge and the brokers' streams (data and
 * replication), so a call answers and logs the same on every transport.
 */
export function refusalOf(error: unknown, logger: Logger, method: string, path: string): TesseraError {
  const tessera = toTesseraError(error);
  if (tessera instanceof BodyBudgetFull) {
    logger.debug({ method, path: path.slice(0, 200), status: tessera.status, code: tessera.code }, 'request refused: body budget full');
  } else if (tessera.status >= 500) {
    const internal = tessera.code === 'INTERNAL';
    logger[internal ? 'error' : 'warn']({ err: error, method, path: path.slice(0, 200), code: tessera.code }, internal ? 'request failed' : 'request not served');
  } else {
    logger.info({ method, path: path.slice(0, 200), status: tessera.status, code: tessera.code }, 'request refused');
  }
  return tessera;
}

function toTesseraError(error: unknown): TesseraError {
  if (error instanceof TesseraError) return error;
  const type = (error as { type?: string } | null)?.type;
  if (type === 'entity.too.large') {
    const limit = (error as { limit?: number }).limit;
    return new TesseraError('PAYLOAD_TOO_LARGE', `request body is larger than ${limit} bytes`);
  }
  if (type === 'request.size.invalid' || type === 'request.aborted') {
    return new TesseraError('INVALID_REQUEST', `request body was cut short`);
  }
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') {
    return new TesseraError('UNSUPPORTED_MEDIA_TYPE', 'request body must be UTF-8 JSON');
  }
  // A write that could not be stored for want of space is an operating condition, not a bug.
  if (isStorageFull(error)) return new TesseraError('STORAGE_FULL', 'the disk is full: the write was not stored', {}, { cause: error });
  return new TesseraError('INTERNAL', 'internal error', {}, { cause: error });
}

/**
 * Authentication and authorization happen here, and only here, before any handler: the
 * caller is identified from the request's credentials, and the matched route's rule decides
 * with the route's parameters and the validated-later body. Refusals are counted by reason
 * (401) and by principal (403).
 */
function authenticate(
  router: Router<ServiceState>,
  metrics: ServiceMetrics,
  access: AccessControl | undefined,
): Koa.Middleware<ServiceState> {
  return async (ctx, next) => {
    ctx.state.caller = { kind: 'anonymous' };
    if (access !== undefined) {
      const matched = router.match(ctx.path, ctx.method).pathAndMethod.find((layer) => layer.methods.length > 0);
      const route = matched === undefined ? undefined : String(matched.path);
      const params = matched === undefined ? {} : matched.params(ctx.path, matched.captures(ctx.path));
      // Service identity (a signed call from a cluster member) is checked before this.
      const identity = ctx.state as { clusterNode?: string; clusterAuthOff?: boolean };
      ctx.state.caller = await checkAccess(access, metrics, {
        method: ctx.method,
        route,
        params,
        headers: ctx.headers,
        body: ctx.state.body,
        frame: ctx.state.frame,
        member: identity.clusterNode,
        membersUnchecked: identity.clusterAuthOff === true,
      });
    }
    await next();
  };
}

/**
 * Holds, for each request with a body, the bytes its Content-Length declares (or `limit` when it
 * declares none) against the service's body budget, until the request is answered.
 */
function bodyBudget(limit: number, budget: BodyBudget): Koa.Middleware<ServiceState> {
  return async (ctx, next) => {
    if (ctx.method !== 'POST' && ctx.method !== 'PUT' && ctx.method !== 'PATCH') return next();
    const declared = Number(ctx.get('content-length'));
    const bytes = ctx.get('content-length') !== '' && Number.isSafeInteger(declared) && declared >= 0 ? Math.min(declared, limit) : limit;
    if (!budget.tryTake(bytes)) throw budget.refusal();
    try {
      await next();
    } finally {
      budget.release(bytes);
    }
  };
}

/**
 * Reads a body of at most `limit` bytes: JSON into `ctx.state.body`, a frame
 * (`application/vnd.tessera.frame`, batches in binary) into `ctx.state.frame`.
 */
function jsonBody(limit: number): Koa.Middleware<ServiceState> {
  return async (ctx, next) => {
    ctx.state.body = undefined;
    ctx.state.frame = undefined;
    if (ctx.method === 'POST' || ctx.method === 'PUT' || ctx.method === 'PATCH') {
      const declared = Number(ctx.get('content-length'));
      if (Number.isFinite(declared) && declared > limit) {
        throw new TesseraError('PAYLOAD_TOO_LARGE', `request body is larger than ${limit} bytes`);
      }
      if (ctx.is(FRAME_CONTENT_TYPE)) {
        ctx.state.frame = ctx.state.rawBody ?? (await getRawBody(ctx.req, { limit }));
        return next();
      }
      const text = ctx.state.rawBody?.toString('utf8') ?? (await getRawBody(ctx.req, { limit, encoding: 'utf8' }));
      if (text.length > 0) {
        try {
          ctx.state.body = JSON.parse(text);
        } catch (error) {
          throw new TesseraError('INVALID_REQUEST', `request body is not valid JSON: ${(error as Error).message}`);
        }
      }
    }
    await next();
  };
}

function notFound(): Koa.Middleware<ServiceState> {
  return (ctx) => {
    if (ctx.status === 404 && ctx.body === undefined) {
      throw new TesseraError('NOT_FOUND', `no route ${ctx.method} ${ctx.path}`);
    }
  };
}

function requestMetrics(metrics: ServiceMetrics): Koa.Middleware<ServiceState> {
  return async (ctx, next) => {
    const stop = metrics.requestDuration.startTimer();
    try {
      await next();
    } finally {
      // The matched route template keeps the label's cardinality low.
      const route = (ctx as unknown as { _matchedRoute?: string })._matchedRoute ?? 'unmatched';
      stop({ method: ctx.method, route: String(route), status: String(ctx.status) });
    }
  };
}
