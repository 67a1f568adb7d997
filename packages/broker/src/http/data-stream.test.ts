// Proves the bounds of the broker's data stream on real brokers (startBroker in-process, real
// SQLite in a temp dir) beside a small stub coordinator, with raw sockets playing the client so
// each byte is where the test puts it: a call that would pass the broker's body budget (which it
// shares with HTTP request bodies) is answered 503 UNAVAILABLE without being read, logged as one
// debug line without a stack and counted, and taken again once the budget is free; a stream that begins no call within the headers deadline is closed;
// with client authentication on, an upgrade without a credential is refused 401 before any stream
// opens.
import fs from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  BROKER_ROUTES,
  DATA_STREAM_PATH,
  DATA_STREAM_PROTOCOL,
  DEFAULT_MAX_REQUEST_BYTES,
  FRAME_CONTENT_TYPE,
  MessageReader,
  decodeDataAnswer,
  encodeDataCall,
  encodeMessage,
  type BrokerHeartbeatResponse,
  type MetadataResponse,
} from '@tessera/protocol';
import { createHttpService, createLogger, type HttpService } from '@tessera/service';
import { startBroker, type RunningBroker } from '../index.js';

const LOG_LEVEL = process.env.TESSERA_TEST_LOG_LEVEL ?? 'silent';
/** The largest data stream call: a request body and its call byte. */
const MAX_CALL_BYTES = DEFAULT_MAX_REQUEST_BYTES + 1;

/** The coordinator as far as a broker needs one to start: no topics, client authentication on or off. */
async function stubCoordinator(authEnabled: boolean): Promise<{ url: string; service: HttpService }> {
  const service = createHttpService({ service: 'coordinator', logger: createLogger('coordinator', { stub: true }, { level: LOG_LEVEL }), isReady: () => true });
  const metadata: MetadataResponse = { version: 1, brokers: [], topics: [] };
  const heartbeat: BrokerHeartbeatResponse = { metadataVersion: 1, groups: {}, heartbeatMs: 100, authVersion: 0 };
  service.router.get('/metadata', (ctx) => {
    ctx.body = metadata;
  });
  service.router.get('/internal/auth', (ctx) => {
    ctx.body = { version: 0, enabled: authEnabled, keys: [], principals: [], acls: [] };
  });
  service.router.post('/brokers/register', (ctx) => {
    ctx.body = heartbeat;
  });
  service.router.post('/brokers/heartbeat', (ctx) => {
    ctx.body = heartbeat;
  });
  const server = await service.listen(0, '127.0.0.1');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, service };
}

/** A data stream opened by hand: the upgrade's answer, then every answer read, by id. */
class RawStream {
  readonly socket: net.Socket;
  readonly closed: Promise<void>;
  /** The HTTP answer to the upgrade (status line and headers), once it is in. */
  head = '';
  /** What follows a refusal's head: its error body. */
  refusal = '';
  readonly answers = new Map<number, { status: number; body: any }>();
  private pending = Buffer.alloc(0);
  private readonly reader = new MessageReader(1 << 26);

  constructor(url: string) {
    const { hostname, port } = new URL(url);
    this.socket = net.connect(Number(port), hostname);
    this.socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.write(`GET ${DATA_STREAM_PATH} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nConnection: Upgrade\r\nUpgrade: ${DATA_STREAM_PROTOCOL}\r\n\r\n`);
  }

  /** Resolves once the upgrade is answered (101 or a refusal). */
  async upgraded(): Promise<string> {
    await vi.waitFor(() => expect(this.head).not.toBe(''), { timeout: 5_000, interval: 10 });
    return this.head;
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  private onData(chunk: Buffer): void {
    if (this.head === '') {
      this.pending = Buffer.concat([this.pending, chunk]);
      const end = this.pending.indexOf('\r\n\r\n');
      if (end === -1) return;
      this.head = this.pending.subarray(0, end).toString('latin1');
      chunk = this.pending.subarray(end + 4);
    }
    if (!this.head.startsWith('HTTP/1.1 101 ')) {
      this.refusal += chunk.toString('utf8');
      return;
    }
    for (const message of this.reader.push(chunk)) {
      const answer = decodeDataAnswer(message.body);
      this.answers.set(message.id, { status: answer.status, body: JSON.parse(answer.payload.toString('utf8')) });
    }
  }
}

/** The first bytes of a call of `bodyBytes` bytes with `id`: the prefix, the call byte and a little of the payload. */
function beginningOfCall(id: number, bodyBytes: number): Buffer {
  const prefix = Buffer.alloc(8);
  prefix.writeUInt32BE(4 + bodyBytes, 0);
  prefix.writeUInt32BE(id, 4);
  return Buffer.concat([prefix, Buffer.of(1), Buffer.alloc(9)]);
}

/** A line the broker logged (pino's JSON: level 20 debug, 30 info, 40 warn, 50 error). */
interface LogLine {
  level: number;
  msg: string;
  err?: unknown;
  method?: string;
  code?: string;
}

/** The headers deadline of the brokers here: short, so that a stream that makes no call is closed soon. */
const HEADERS_TIMEOUT_MS = 1_000;

/** A broker (and its stub coordinator) for one describe block, stopped after it; `open()` opens a stream that must be taken. */
function brokerForTests(authEnabled: boolean) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-data-stream-'));
  const opened: RawStream[] = [];
  const fatal: Error[] = [];
  let coordinator: { url: string; service: HttpService } | undefined;
  const running = { broker: undefined as unknown as RunningBroker };
  const logLines: LogLine[] = [];

  beforeAll(async () => {
    coordinator = await stubCoordinator(authEnabled);
    running.broker = await startBroker({
      id: 1,
      port: 0,
      host: '127.0.0.1',
      dataDir: path.join(root, 'broker-1'),
      coordinatorUrl: coordinator.url,
      heartbeatMs: 100,
      replicaTimeoutMs: 400,
      maxValueBytes: 1_000,
      retentionCheckMs: 1_000,
      storageReserveBytes: 1024 * 1024,
      storageMinFreeBytes: 4 * 1024 * 1024,
      serverLimits: { headersTimeoutMs: HEADERS_TIMEOUT_MS },
      onFatal: (error) => {
        fatal.push(error);
      },
      // Every line down to debug is kept for the tests to read (and shown as LOG_LEVEL says).
      logger: createLogger(
        'broker',
        { brokerId: 1 },
        {
          level: 'debug',
          destination: {
            write: (line) => {
              logLines.push(JSON.parse(line) as LogLine);
              if (LOG_LEVEL !== 'silent') process.stdout.write(line);
            },
          },
        },
      ),
    });
    await vi.waitFor(async () => expect((await fetch(`${running.broker.url}/ready`)).status).toBe(200), { timeout: 10_000, interval: 50 });
  });

  afterAll(async () => {
    for (const stream of opened) stream.socket.destroy();
    expect(fatal).toEqual([]);
    await running.broker?.close();
    await coordinator?.service.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  /** A new stream whose upgrade was answered (any way). */
  function connect(): RawStream {
    const stream = new RawStream(running.broker.url);
    opened.push(stream);
    return stream;
  }

  async function open(): Promise<RawStream> {
    const stream = connect();
    expect(await stream.upgraded()).toMatch(/^HTTP\/1.1 101 /);
    return stream;
  }

  return { running, connect, open, logLines };
}

describe('the data stream of a broker', () => {
  const { running, open, logLines } = brokerForTests(false);

  /**
   * Begins a call of the largest size on a new stream: its answer when the broker refused it at
   * once (for want of budget), undefined when it took it in (the stream is then closed, which
   * gives its bytes back).
   */
  async function refusalOfLargestCall(): Promise<{ status: number; body: any } | undefined> {
    const probe = await open();
    probe.write(beginningOfCall(1, MAX_CALL_BYTES));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const answer = probe.answers.get(1);
    probe.socket.destroy();
    await probe.closed;
    return answer;
  }

  it('answers a call that would pass the body budget 503 UNAVAILABLE unread, as it answers such an HTTP request, until the budget is free', async () => {
    // Three slow senders, each beginning a call of the largest size: 3 × 16 MiB of the 64 MiB budget.
    const slow = await Promise.all([1, 2, 3].map(() => open()));
    for (const stream of slow) stream.write(beginningOfCall(1, MAX_CALL_BYTES));
    await expect.poll(refusalOfLargestCall, { timeout: 10_000, interval: 50 }).toMatchObject({ status: 503 });

    // The answer is the HTTP edge's refusal of a body, retriable, and the connection goes on.
    const stream = await open();
    stream.write(beginningOfCall(1, MAX_CALL_BYTES));
    await vi.waitFor(() => expect(stream.answers.get(1)).toBeDefined(), { timeout: 5_000, interval: 10 });
    expect(stream.answers.get(1)!.body.error).toMatchObject({ code: 'UNAVAILABLE', retriable: true, message: expect.stringMatching(/^too many request bodies are being read/) });
    // The refused call's bytes still come (and are skipped); the call after them is served.
    stream.write(Buffer.alloc(MAX_CALL_BYTES - 10));
    stream.write(Buffer.concat(encodeMessage(2, undefined, encodeDataCall(BROKER_ROUTES.fetch, [Buffer.from('{"partitions":[]}')]))));
    await vi.waitFor(() => expect(stream.answers.get(2)).toBeDefined(), { timeout: 10_000, interval: 10 });
    // Read whole and answered by the fetch route (which takes no empty list).
    expect(stream.answers.get(2)).toMatchObject({ status: 400, body: { error: { code: 'INVALID_REQUEST', issues: [{ path: 'partitions' }] } } });

    // An HTTP request whose body would pass the budget is refused the same way.
    const http = await rawHttpHead(running.broker.url, DEFAULT_MAX_REQUEST_BYTES);
    expect(http).toMatch(/^HTTP\/1.1 503 /);
    expect(http).toContain('"code":"UNAVAILABLE"');

    const metrics = await (await fetch(`${running.broker.url}/metrics`)).text();
    expect(metrics).toMatch(/tessera_broker_request_duration_seconds_count\{method="STREAM",route="unmatched",status="503"\} [1-9]/);
    expect(metrics).toMatch(/tessera_broker_request_duration_seconds_count\{method="POST",route="unmatched",status="503"\} [1-9]/);
    // Any caller can have calls refused so, as often as it likes: each is one debug line without
    // a stack, on the stream as over HTTP, never a warning with a trace.
    const refusals = logLines.filter((line) => line.msg === 'request refused: body budget full');
    expect(refusals.filter((line) => line.method === 'STREAM').length).toBeGreaterThan(0);
    expect(refusals.filter((line) => line.method === 'POST').length).toBe(1);
    for (const line of refusals) {
      expect(line).toMatchObject({ level: 20, code: 'UNAVAILABLE' });
      expect(line).not.toHaveProperty('err');
    }
    expect(logLines.filter((line) => line.level >= 40 && line.code === 'UNAVAILABLE')).toEqual([]);

    // Once the slow senders go, their bytes are free: a call of the largest size is taken in again.
    for (const sender of slow) sender.socket.destroy();
    await expect.poll(refusalOfLargestCall, { timeout: 10_000, interval: 50 }).toBeUndefined();
  });
});

describe('the data stream of a broker, before its first call', () => {
  const { open } = brokerForTests(false);

  it('closes a stream that begins no call within the headers deadline, and keeps one whose first call came in time', async () => {
    const silent = await open();
    const calling = await open();
    const fetchCall = (id: number) => Buffer.concat(encodeMessage(id, undefined, encodeDataCall(BROKER_ROUTES.fetch, [Buffer.from('{"partitions":[]}')])));
    calling.write(fetchCall(1));
    const openedMs = performance.now();
    const closedInTime = await Promise.race([silent.closed.then(() => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), 10 * HEADERS_TIMEOUT_MS))]);
    expect(closedInTime, 'the silent stream was still open').toBe(true);
    expect(performance.now() - openedMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS / 2);
    // Past its own deadline too, the stream that made a call is open and answers the next one.
    await new Promise((resolve) => setTimeout(resolve, HEADERS_TIMEOUT_MS / 2));
    calling.write(fetchCall(2));
    await vi.waitFor(() => expect(calling.answers.get(2)).toBeDefined(), { timeout: 5_000, interval: 10 });
    expect(calling.socket.destroyed).toBe(false);
  });
});

describe('the data stream of a broker with client authentication on', () => {
  const { running, connect } = brokerForTests(true);

  it('refuses an upgrade without a credential with 401, as an HTTP request to a route that needs one', async () => {
    const anonymous = connect();
    const head = await anonymous.upgraded();
    expect(head).toMatch(/^HTTP\/1.1 401 /);
    await anonymous.closed;
    expect(JSON.parse(anonymous.refusal).error).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringMatching(/^authentication required/) });
    const metrics = await (await fetch(`${running.broker.url}/metrics`)).text();
    expect(metrics).toMatch(/tessera_auth_failures_total\{reason="missing"\} [1-9]/);
  });
});

/** Sends the head of an HTTP produce declaring `contentLength` bytes (no body) and returns what the broker answers first. */
async function rawHttpHead(url: string, contentLength: number): Promise<string> {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  socket.on('error', () => undefined);
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  socket.write(`POST ${BROKER_ROUTES.produceBatches} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: ${FRAME_CONTENT_TYPE}\r\nContent-Length: ${contentLength}\r\n\r\n`);
  try {
    await vi.waitFor(() => expect(received).toContain('}'), { timeout: 5_000, interval: 10 });
    return received;
  } finally {
    socket.destroy();
  }
}
