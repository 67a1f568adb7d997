/**
 * A tiny scriptable HTTP server for unit tests: stands in for a coordinator or a broker
 * on 127.0.0.1 with handlers per route, and logs every request it gets. (node:http
 * rather than koa: the client package does not depend on koa, and a stub needs no more.)
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ErrorCode } from '@tessera/protocol';
import { ERRORS } from '@tessera/protocol';

export interface StubRequest {
  server: string;
  method: string;
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
  body: any;
}

export interface StubAnswer {
  status?: number;
  body?: unknown;
}

export type StubHandler = (request: StubRequest) => StubAnswer | unknown | Promise<StubAnswer | unknown>;

interface Route {
  method: string;
  pattern: RegExp;
  keys: string[];
  handler: StubHandler;
}

/** An answer with an explicit status (plain return values are sent as 200 JSON). */
export function answer(status: number, body?: unknown): StubAnswer & { __answer: true } {
  return { status, body, __answer: true };
}

/** An error answer as every Tessera service sends it. */
export function errorAnswer(code: ErrorCode, message: string = code, details: Record<string, unknown> = {}): StubAnswer & { __answer: true } {
  return answer(ERRORS[code].status, { error: { code, message, retriable: ERRORS[code].retriable, ...details } });
}

export class StubServer {
  readonly requests: StubRequest[] = [];
  private readonly routes: Route[] = [];
  private server!: http.Server;
  url = '';

  /** `log` is shared by several stubs when a test checks the order of calls across them. */
  constructor(
    readonly name: string,
    private readonly log: StubRequest[] = [],
  ) {}

  static async start(name: string, log?: StubRequest[]): Promise<StubServer> {
    const stub = new StubServer(name, log);
    await stub.listen();
    return stub;
  }

  /** Routes `method template` (e.g. `POST /groups/:group/join`) to `handler`; a later route for the same path wins. */
  on(method: string, template: string, handler: StubHandler): this {
    const keys: string[] = [];
    const source = template.replace(/:([A-Za-z]+)/g, (_m, key: string) => {
      keys.push(key);
      return '([^/]+)';
    });
    this.routes.unshift({ method, pattern: new RegExp(`^${source}$`), keys, handler });
    return this;
  }

  /** Requests to one path (and method), in arrival order. */
  calls(method: string, path: string): StubRequest[] {
    return this.requests.filter((r) => r.method === method && r.path === path);
  }

  async listen(port = 0): Promise<void> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get port(): number {
    return Number(new URL(this.url).port);
  }

  /** Stops listening and drops every connection; closing twice is fine. */
  async close(): Promise<void> {
    if (!this.server.listening) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://stub');
    const method = req.method ?? 'GET';
    for (const route of this.routes) {
      const match = route.method === method ? route.pattern.exec(url.pathname) : null;
      if (match === null) continue;
      const params: Record<string, string> = {};
      route.keys.forEach((key, i) => (params[key] = decodeURIComponent(match[i + 1])));
      const request: StubRequest = {
        server: this.name,
        method,
        path: url.pathname,
        params,
        query: url.searchParams,
        body: text.length > 0 ? JSON.parse(text) : undefined,
      };
      this.requests.push(request);
      this.log.push(request);
      let result: unknown;
      try {
        result = await route.handler(request);
      } catch (error) {
        result = errorAnswer('INTERNAL', String(error));
      }
      const isAnswer = typeof result === 'object' && result !== null && '__answer' in result;
      const status = isAnswer ? ((result as StubAnswer).status ?? 200) : 200;
      const body = isAnswer ? (result as StubAnswer).body : result;
      if (res.destroyed) return;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(body === undefined ? '' : JSON.stringify(body));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { code: 'NOT_FOUND', message: `stub ${this.name}: no route ${method} ${url.pathname}`, retriable: false } }));
  }
}

/** A metadata answer for one topic whose partitions are led by the given brokers (partition i → primaries[i]). */
export function metadataFor(
  topic: string,
  brokers: Array<{ id: number; url: string }>,
  primaries: number[],
  version = 1,
  epoch = 0,
) {
  return {
    version,
    brokers: brokers.map((b) => ({ ...b, alive: true })),
    topics: [
      {
        name: topic,
        replicationFactor: 1,
        config: { minInsyncReplicas: 1 },
        partitions: primaries.map((primary, partition) => ({ partition, primary, secondary: null, epoch, isr: [primary] })),
      },
    ],
  };
}

/** Resolves when `predicate` holds, checking every few ms; fails the test after `timeoutMs`. */
/** What a test opened (stub servers, clients), closed after it, newest first. */
const cleanups: Array<() => Promise<void>> = [];

export function closeAfterTest(close: () => Promise<void>): void {
  cleanups.push(close);
}

/** For `afterEach`: closes everything registered with `closeAfterTest`. */
export async function closeTestResources(): Promise<void> {
  while (cleanups.length > 0) await cleanups.pop()!();
}

/** A stub server closed after the test. */
export async function stub(name: string, log?: StubRequest[]): Promise<StubServer> {
  const server = await StubServer.start(name, log);
  closeAfterTest(() => server.close());
  return server;
}

export async function until(predicate: () => boolean, what = 'condition', timeoutMs = 5_000): Promise<void> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
