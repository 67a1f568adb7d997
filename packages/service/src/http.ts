/**
 * The HTTP edge shared by the coordinator and the brokers: one koa app with the error
 * body of every failure, a bounded JSON body reader, the place where authentication
 * will sit, request metrics, and the /health, /ready and /metrics routes.
 */
import type { Server } from 'node:http';
import Router, { type RouterContext } from '@koa/router';
import Koa from 'koa';
import getRawBody from 'raw-body';
import type { Registry } from 'prom-client';
import { DEFAULT_MAX_REQUEST_BYTES, FRAME_CONTENT_TYPE, TesseraError, type HealthResponse } from '@tessera/protocol';
import type { Logger } from './logger.js';
import { createMetrics, type ServiceMetrics } from './metrics.js';

export type Context = RouterContext<ServiceState>;

export interface ServiceState {
  /** The parsed JSON body (undefined for requests without one, or with a frame body). */
  body: unknown;
  /** The body of a request sent as `application/vnd.tessera.frame` (undefined otherwise). */
  frame?: Buffer;
}

export interface HttpServiceOptions {
  service: HealthResponse['service'];
  id?: number;
  logger: Logger;
  maxRequestBytes?: number;
  /** Tells /ready whether the service is serving yet. */
  isReady: () => boolean;
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
  listen(port: number, host: string): Promise<Server>;
  close(): Promise<void>;
}

export function createHttpService(options: HttpServiceOptions): HttpService {
  const app = new Koa<ServiceState>();
  const router = new Router<ServiceState>();
  const { registry, metrics } = createMetrics(options.service);
  const maxRequestBytes = options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
  let server: Server | undefined;

  const onInvariantBroken =
    options.onInvariantBroken ??
    ((error: Error) => {
      options.logger.fatal({ err: error }, 'invariant violated; stopping');
      process.exit(1);
    });
  app.use(errorBodies(options.logger, onInvariantBroken));
  app.use(requestMetrics(metrics));
  app.use(authenticate());
  app.use(jsonBody(maxRequestBytes));

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
      throw new TesseraError('UNAVAILABLE', `${options.service} is starting`);
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
    listen(port, host) {
      app.use(router.routes());
      app.use(notFound());
      return new Promise((resolve, reject) => {
        const listening = app.listen(port, host);
        listening.keepAliveTimeout = 65_000;
        listening.headersTimeout = 66_000;
        listening.once('error', reject);
        listening.once('listening', () => {
          server = listening;
          resolve(listening);
        });
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

/** Every failure becomes `{"error": {"code", "message", "retriable"}}` with the code's status. */
function errorBodies(logger: Logger, onInvariantBroken: (error: Error) => void): Koa.Middleware<ServiceState> {
  return async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      if (error instanceof Error && error.name === 'InvariantError') onInvariantBroken(error);
      const tessera = toTesseraError(error);
      if (tessera.code === 'INTERNAL') {
        logger.error({ err: error, method: ctx.method, path: ctx.path }, 'request failed');
      }
      ctx.status = tessera.status;
      ctx.body = tessera.toBody();
    }
  };
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
  return new TesseraError('INTERNAL', 'internal error', {}, { cause: error });
}

/**
 * Authentication and authorization go here, and only here: a later token check reads
 * the request's credentials and the route's required permission, so no handler changes.
 */
function authenticate(): Koa.Middleware<ServiceState> {
  return (_ctx, next) => next();
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
        ctx.state.frame = await getRawBody(ctx.req, { limit });
        return next();
      }
      const text = await getRawBody(ctx.req, { limit, encoding: 'utf8' });
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
