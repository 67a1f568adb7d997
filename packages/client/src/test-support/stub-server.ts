/**
 * A tiny scriptable HTTP server for unit tests: stands in for a coordinator or a broker
 * on 127.0.0.1 with handlers per route, and logs every request it gets. (node:http
 * rather than koa: the client package does not depend on koa, and a stub needs no more.)
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DecodedRecord, ErrorCode } from '@tessera/protocol';
import type { ConsumedRecord } from '../records.js';
import { decodeFrame, decodeRecordBatch, encodeFrame, encodeRecordBatch, ERRORS, FRAME_CONTENT_TYPE, iterateBatches, splitTail, validateBatch } from '@tessera/protocol';

export interface StubRequest {
  server: string;
  method: string;
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
  /** The parsed JSON body, or for a frame its head. */
  body: any;
  /** For a frame: the tail cut into the parts its head lists. */
  parts?: Buffer[];
  accept: string;
}

export interface StubAnswer {
  status?: number;
  body?: unknown;
  /** Sent as a frame with this tail instead of JSON. */
  frameParts?: Buffer[];
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

/** A frame answer: `head` as JSON, then `parts`. */
export function frameAnswer(head: unknown, parts: Buffer[]): StubAnswer & { __answer: true } {
  return { status: 200, body: head, frameParts: parts, __answer: true };
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
    const raw = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://stub');
    const method = req.method ?? 'GET';
    for (const route of this.routes) {
      const match = route.method === method ? route.pattern.exec(url.pathname) : null;
      if (match === null) continue;
      const params: Record<string, string> = {};
      route.keys.forEach((key, i) => (params[key] = decodeURIComponent(match[i + 1])));
      const isFrame = req.headers['content-type'] === FRAME_CONTENT_TYPE;
      let body: any = undefined;
      let parts: Buffer[] | undefined;
      if (isFrame) {
        const frame = decodeFrame(raw);
        body = frame.head;
        parts = splitTail(frame.tail, (body.partitions as Array<{ bytes: number }>).map((p) => p.bytes));
      } else if (raw.length > 0) {
        body = JSON.parse(raw.toString('utf8'));
      }
      const request: StubRequest = { server: this.name, method, path: url.pathname, params, query: url.searchParams, body, parts, accept: req.headers.accept ?? '' };
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
      const answerBody = isAnswer ? (result as StubAnswer).body : result;
      if (res.destroyed) return;
      const frameParts = isAnswer ? (result as StubAnswer).frameParts : undefined;
      if (frameParts !== undefined) {
        res.writeHead(status, { 'content-type': FRAME_CONTENT_TYPE });
        res.end(Buffer.concat(encodeFrame(answerBody as object, frameParts)));
        return;
      }
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(answerBody === undefined ? '' : JSON.stringify(answerBody));
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
  if (name === 'coordinator') {
    // Idempotent producers ask for an id first: a coordinator stub hands out ids like the real one.
    let nextProducerId = 0;
    server.on('POST', '/producers', () => ({ producerId: nextProducerId++, producerEpoch: 0 }));
  }
  return server;
}

export async function until(predicate: () => boolean, what = 'condition', timeoutMs = 5_000): Promise<void> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Polls a consumer or reader until `count` records came (or fails the test after 200 polls). */
export async function pollAtLeast(source: { poll(o?: { waitMs?: number }): Promise<ConsumedRecord[]> }, count: number): Promise<ConsumedRecord[]> {
  const records: ConsumedRecord[] = [];
  for (let round = 0; records.length < count; round++) {
    if (round > 200) throw new Error(`only ${records.length} of ${count} records`);
    records.push(...(await source.poll({ waitMs: 50 })));
  }
  return records;
}

/** A record of a produce request, as a stub broker stores it: text key and value for easy asserts, and the bytes. */
export interface StoredRecord {
  key: string | null;
  value: string | null;
  record: DecodedRecord;
}

/** The records of every partition a `POST /produce` frame carried, in request order (each batch validated). */
export function producedPartitions(request: StubRequest): Array<{ topic: string; partition: number; records: DecodedRecord[] }> {
  return (request.body.partitions as Array<{ topic: string; partition: number }>).map(({ topic, partition }, i) => {
    const part = request.parts![i]!;
    const records: DecodedRecord[] = [];
    for (const { at } of iterateBatches(part)) {
      validateBatch(part, at);
      records.push(...decodeRecordBatch(part, at).records);
    }
    return { topic, partition, records };
  });
}

/** Partition → its stored records. */
export type StoredLogs = Map<number, StoredRecord[]>;

/**
 * A `POST /produce` handler that stores every record per partition and answers like a
 * primary; `refuse` may answer a partition with an error answer's body instead.
 */
export function storingProduceHandler(
  logs: StoredLogs,
  refuse: (topic: string, partition: number) => { error: Record<string, unknown> } | undefined = () => undefined,
): (request: StubRequest) => unknown {
  return (request) => ({
    partitions: producedPartitions(request).map(({ topic, partition, records }) => {
      const refusal = refuse(topic, partition);
      if (refusal !== undefined) return { topic, partition, ...refusal };
      const log = logs.get(partition) ?? [];
      logs.set(partition, log);
      const baseOffset = log.length;
      for (const record of records) {
        log.push({ key: record.key?.toString('utf8') ?? null, value: record.value?.toString('utf8') ?? null, record });
      }
      return { topic, partition, baseOffset, lastOffset: baseOffset + records.length - 1, epoch: 0 };
    }),
  });
}

/** A broker stub that stores every produced record per partition. */
export function storingBroker(broker: StubServer): StoredLogs {
  const logs: StoredLogs = new Map();
  broker.on('POST', '/produce', storingProduceHandler(logs));
  return logs;
}

/** The body of an error answer for one partition of a produce or fetch answer. */
export function partitionError(code: ErrorCode, message: string = code, details: Record<string, unknown> = {}): { error: Record<string, unknown> } {
  return { error: { code, message, retriable: ERRORS[code].retriable, ...details } };
}

/** One partition of a stub fetch answer: text records (one batch), or an error. */
export interface StubFetchPartition {
  topic: string;
  partition: number;
  highWatermark: number;
  logStartOffset: number;
  records: Array<{ offset: number; key: string | Buffer | null; value: string | Buffer | null; headers?: Record<string, string | Buffer> | null; timestamp: number }>;
  error?: Record<string, unknown>;
}

/** A fetch answer as a broker sends it: a frame whose tail holds one RecordBatch per partition with records. */
export function fetchFrameAnswer(partitions: StubFetchPartition[]): StubAnswer & { __answer: true } {
  const bytes = (value: string | Buffer | null) => (value === null ? null : typeof value === 'string' ? Buffer.from(value) : value);
  const parts = partitions.map((p) =>
    p.records.length === 0 || p.error !== undefined
      ? Buffer.alloc(0)
      : encodeRecordBatch(
          p.records.map((r) => ({
            key: bytes(r.key),
            value: bytes(r.value),
            headers: Object.entries(r.headers ?? {}).map(([key, value]) => ({ key, value: bytes(value) })),
            timestamp: r.timestamp,
          })),
          { baseOffset: p.records[0]!.offset, partitionLeaderEpoch: 0 },
        ),
  );
  const head = {
    partitions: partitions.map((p, i) => ({
      topic: p.topic,
      partition: p.partition,
      highWatermark: p.highWatermark,
      logStartOffset: p.logStartOffset,
      bytes: parts[i]!.length,
      ...(p.error === undefined ? {} : { error: p.error }),
    })),
  };
  return frameAnswer(head, parts);
}
