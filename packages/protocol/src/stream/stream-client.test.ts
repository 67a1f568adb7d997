// The generic stream on two real endpoints on loopback (a node:http server serving upgrades with
// serveStream, and StreamClient): a call with another credential moves to a new connection and
// the old one closes once its calls are answered; an aborted call rejects without harming the
// connection and its late answer is dropped; a connection never has more requests, or more
// bytes, in service than its bounds, a long poll that says it waits gives its slot back, and a
// peer that reads no answers stops having its requests read; an unfinished message closes the
// connection in time, and a message refused for the budget ends its deadline as one read does;
// a peer that offers no stream (or an upgrade refused on the way) is
// remembered for a while, then asked again.
import { spawn } from 'node:child_process';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { TesseraError } from '../errors.js';
import { encodeMessage } from './framing.js';
import { StreamClient, StreamUnsupported } from './stream-client.js';
import { acceptUpgrade, serveStream, type SharedBodyBudget } from './stream-server.js';

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface EchoOptions {
  /** How long the answer to `body` takes (default 0). */
  delayMs?: (body: string) => number;
  maxInFlight?: number;
  maxInFlightBytes?: number;
  messageTimeoutMs?: number;
  /** What a "wait" body waits for before its answer. */
  waitFor?: Promise<void>;
  /** A shared body budget that refuses every body larger than this (default: no budget). */
  refuseBodiesOverBytes?: number;
}

/** A shared body budget that takes any body up to `maxBodyBytes` and refuses a larger one. */
function refusingBudget(maxBodyBytes: number): SharedBodyBudget {
  return {
    tryTake: (bytes) => bytes <= maxBodyBytes,
    release: () => undefined,
    refusal: () => new TesseraError('UNAVAILABLE', 'refused for the budget'),
  };
}

/**
 * A server whose stream answers each body with itself, and records each upgrade's credential and
 * what is in service. A body starting with "wait" says it waits (a long poll) before its delay.
 */
async function echoServer(options: EchoOptions = {}) {
  const seen = { credentials: [] as Array<string | undefined>, closed: 0, served: 0, badMessages: [] as string[], serving: new Set<string>(), mostServing: 0, servedWith: new Map<string, string[]>() };
  const server = http.createServer((_request, response) => response.writeHead(404).end());
  const sockets = new Set<Duplex>();
  server.on('upgrade', (request: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    seen.credentials.push(request.headers.authorization);
    sockets.add(socket);
    socket.on('close', () => seen.closed++);
    acceptUpgrade(socket, 'test/1');
    serveStream(socket, head, {
      maxMessageBytes: 1 << 20,
      maxInFlight: options.maxInFlight ?? 64,
      maxInFlightBytes: options.maxInFlightBytes ?? 1 << 20,
      idleTimeoutMs: 60_000,
      messageTimeoutMs: options.messageTimeoutMs ?? 60_000,
      budget: options.refuseBodiesOverBytes === undefined ? undefined : { bodies: refusingBudget(options.refuseBodiesOverBytes), refusal: (error) => [Buffer.from(error.message)] },
      serve: async (_id, body, waiting) => {
        seen.served++;
        const text = body.toString().slice(0, 20);
        if (text.startsWith('wait')) {
          waiting();
          await options.waitFor;
        } else {
          seen.serving.add(text);
          seen.mostServing = Math.max(seen.mostServing, seen.serving.size);
          seen.servedWith.set(text, [...seen.serving].filter((other) => other !== text));
        }
        await new Promise((resolve) => setTimeout(resolve, options.delayMs?.(text) ?? 0));
        seen.serving.delete(text);
        return [body];
      },
      onBadMessage: (_reason, detail) => seen.badMessages.push(detail),
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const streams = new StreamClient({ name: 'test stream', protocol: 'test/1', path: '/stream', maxAnswerBytes: 1 << 20 });
  cleanups.push(() => streams.close());
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, port, seen, streams };
}

describe('StreamClient and serveStream', () => {
  it('takes a peer that answers the upgrade with 404 to offer no stream for a while, then asks it again', async () => {
    let upgrades = 0;
    const server = http.createServer((_request, response) => response.writeHead(404).end());
    server.on('upgrade', (_request: http.IncomingMessage, socket: Duplex) => {
      upgrades++;
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const streams = new StreamClient({ name: 'test stream', protocol: 'test/1', path: '/stream', maxAnswerBytes: 1 << 20, unsupportedForMs: 300 });
    cleanups.push(() => streams.close());
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    expect(streams.offersStream(url)).toBe(true);
    await expect(streams.call(url, [Buffer.from('one')], 2_000)).rejects.toBeInstanceOf(StreamUnsupported);
    expect(streams.offersStream(url)).toBe(false);
    expect(streams.offersStream('http://127.0.0.1:1')).toBe(true); // only that peer
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect(streams.offersStream(url)).toBe(true);
    await expect(streams.call(url, [Buffer.from('two')], 2_000)).rejects.toBeInstanceOf(StreamUnsupported);
    expect(upgrades).toBe(2);
  });

  it('takes an upgrade refused on the way (a proxy: 400, 405, 426 or 501 without a Tessera error) as no stream, and keeps a Tessera refusal as the error it names', async () => {
    const refusals: Record<string, { status: number; body: string }> = {
      '/proxy-400': { status: 400, body: '<html><body>Bad Request</body></html>' },
      '/proxy-405': { status: 405, body: '' },
      '/proxy-426': { status: 426, body: 'upgrades are not passed here' },
      '/proxy-501': { status: 501, body: '{"message":"not implemented"}' },
      '/tessera-400': { status: 400, body: JSON.stringify({ error: { code: 'INVALID_REQUEST', message: 'bad upgrade header', retriable: false } }) },
    };
    const server = http.createServer((_request, response) => response.writeHead(404).end());
    server.on('upgrade', (request: http.IncomingMessage, socket: Duplex) => {
      const base = (request.url ?? '').replace(/\/stream$/, '');
      const { status, body } = refusals[base]!;
      socket.end(`HTTP/1.1 ${status} Refused\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const streams = new StreamClient({ name: 'test stream', protocol: 'test/1', path: '/stream', maxAnswerBytes: 1 << 20 });
    cleanups.push(() => streams.close());
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    for (const base of ['/proxy-400', '/proxy-405', '/proxy-426', '/proxy-501']) {
      await expect(streams.call(origin + base, [Buffer.from('one')], 2_000), base).rejects.toBeInstanceOf(StreamUnsupported);
      expect(streams.offersStream(origin + base), base).toBe(false);
    }
    const refused = await streams.call(origin + '/tessera-400', [Buffer.from('one')], 2_000).catch((error: unknown) => error);
    expect(refused).toMatchObject({ code: 'INVALID_REQUEST', message: 'bad upgrade header' });
    expect(streams.offersStream(origin + '/tessera-400')).toBe(true);
  });

  it('opens a new connection for a new credential and closes the old one once its calls are answered', async () => {
    const { url, seen, streams } = await echoServer({ delayMs: (body) => (body === 'slow' ? 300 : 0) });
    const slow = streams.call(url, [Buffer.from('slow')], 2_000, 'Bearer a');
    expect((await streams.call(url, [Buffer.from('two')], 2_000, 'Bearer a')).toString()).toBe('two');
    // The old connection still has "slow" in flight when the credential changes.
    expect((await streams.call(url, [Buffer.from('three')], 2_000, 'Bearer b')).toString()).toBe('three');
    expect(seen.closed).toBe(0);
    expect((await slow).toString()).toBe('slow');
    expect(seen.credentials).toEqual(['Bearer a', 'Bearer b']);
    await expect.poll(() => seen.closed).toBe(1);
  });

  it('lets a program that never closes its client exit once its calls are answered', async () => {
    const { url } = await echoServer();
    // The built module, as a user's program loads it; the server keeps idle streams for a minute.
    const moduleUrl = new URL('../../dist/stream/stream-client.js', import.meta.url).href;
    const program = `
      const { StreamClient } = await import(${JSON.stringify(moduleUrl)});
      const streams = new StreamClient({ name: 'test stream', protocol: 'test/1', path: '/stream', maxAnswerBytes: 1 << 20 });
      console.log(String(await streams.call(${JSON.stringify(url)}, [Buffer.from('hello')], 5_000)));
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', program], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exitCode = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill();
        resolve(null);
      }, 20_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    expect(output.trim()).toBe('hello');
    expect(exitCode).toBe(0);
  });

  it('rejects an aborted call with its reason, drops its late answer and keeps serving the connection', async () => {
    const { url, seen, streams } = await echoServer({ delayMs: (body) => (body === 'abandoned' ? 150 : 0) });
    expect((await streams.call(url, [Buffer.from('first')], 2_000)).toString()).toBe('first');
    const controller = new AbortController();
    const aborted = streams.call(url, [Buffer.from('abandoned')], 2_000, undefined, controller.signal);
    await new Promise((resolve) => setTimeout(resolve, 30)); // on the wire and in service
    controller.abort(new Error('consumer closed'));
    await expect(aborted).rejects.toThrow('consumer closed');
    await new Promise((resolve) => setTimeout(resolve, 200)); // its answer has come and gone
    expect((await streams.call(url, [Buffer.from('after')], 2_000)).toString()).toBe('after');
    expect(seen.credentials).toHaveLength(1);
    expect(seen.closed).toBe(0);
  });

  it('never has more requests in service on a connection than its bound; a waiting request gives its slot back', async () => {
    let release = () => undefined as void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const { url, seen, streams } = await echoServer({ delayMs: () => 10, maxInFlight: 2, waitFor: released });
    // Four long polls first, answered only once the test says so: were they counted, nothing else could start.
    const polls = Array.from({ length: 4 }, (_, i) => streams.call(url, [Buffer.from(`wait${i}`)], 5_000));
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => streams.call(url, [Buffer.from(`m${i}`)], 5_000)));
    expect(answers.map(String)).toEqual(Array.from({ length: 12 }, (_, i) => `m${i}`));
    expect(seen.mostServing).toBe(2);
    release();
    expect((await Promise.all(polls)).map(String)).toEqual(['wait0', 'wait1', 'wait2', 'wait3']);
  });

  it('counts the bytes of waiting requests against the bound, so large long polls cannot pile up in memory', async () => {
    let release = () => undefined as void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const { url, seen, streams } = await echoServer({ maxInFlightBytes: 25_000, waitFor: released });
    // Each waits (a long poll) and is padded to 10,000 bytes: two fit in the bound, the third waits to be read.
    const polls = Array.from({ length: 4 }, (_, i) => streams.call(url, [Buffer.from(`wait${i}`), Buffer.alloc(10_000 - 5, 32)], 5_000));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(seen.served).toBe(2);
    release();
    expect((await Promise.all(polls)).map((answer) => answer.subarray(0, 5).toString())).toEqual(['wait0', 'wait1', 'wait2', 'wait3']);
    expect(seen.served).toBe(4);
  });

  it('never has more bytes in service than its bound, and serves a request larger than the bound alone', async () => {
    const { url, seen, streams } = await echoServer({ delayMs: () => 20, maxInFlightBytes: 2_500 });
    const bodies = [...Array.from({ length: 6 }, (_, i) => Buffer.alloc(1_000, 97 + i)), Buffer.alloc(4_000, 122)];
    const answers = await Promise.all(bodies.map((body) => streams.call(url, [body], 5_000)));
    answers.forEach((answer, i) => expect(answer.equals(bodies[i]!)).toBe(true));
    expect(seen.mostServing).toBe(2);
    expect(seen.servedWith.get('z'.repeat(20))).toEqual([]);
  });

  it('stops serving a peer that reads none of its answers once they fill its bound', async () => {
    const { port, seen } = await echoServer({ maxInFlightBytes: 64 * 1024 });
    const socket = net.connect(port, '127.0.0.1');
    cleanups.push(() => void socket.destroy());
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write('GET /stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test/1\r\n\r\n');
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    socket.pause(); // reads nothing from now on
    const body = Buffer.alloc(30 * 1024, 1);
    for (let id = 1; id <= 2_000; id++) socket.write(Buffer.concat(encodeMessage(id, undefined, [body])));
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const servedAfterOneSecond = seen.served;
    await new Promise((resolve) => setTimeout(resolve, 500));
    // The kernel's buffers take some answers; after that the unsent ones hold the connection's
    // bytes, and nothing more is served (without the bound all 2,000, 60 MB, would be).
    expect(servedAfterOneSecond).toBeGreaterThan(0);
    expect(servedAfterOneSecond).toBeLessThan(1_000);
    expect(seen.served).toBe(servedAfterOneSecond);
    // Reading again lets the rest through.
    socket.resume();
    await expect.poll(() => seen.served, { timeout: 10_000 }).toBe(2_000);
  });

  it('keeps a busy connection whose chunks always end inside a message (each message has its own deadline)', async () => {
    const { port, seen } = await echoServer({ messageTimeoutMs: 150 });
    const socket = net.connect(port, '127.0.0.1');
    cleanups.push(() => void socket.destroy());
    let closed = false;
    socket.once('close', () => (closed = true));
    socket.write('GET /stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test/1\r\n\r\n');
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    socket.on('data', () => undefined);
    // Every write finishes one message and begins the next, for four times the deadline.
    const message = (id: number) => Buffer.concat(encodeMessage(id, undefined, [Buffer.alloc(100, id % 256)]));
    let id = 1;
    socket.write(message(id).subarray(0, 50));
    for (let round = 0; round < 30; round++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      socket.write(Buffer.concat([message(id).subarray(50), message(id + 1).subarray(0, 50)]));
      id++;
    }
    await expect.poll(() => seen.served).toBe(30);
    expect(closed).toBe(false);
    expect(seen.badMessages).toEqual([]);
  });

  it('gives the call after a refused one its own deadline, when the refused one ends in the chunk that begins it', async () => {
    const { port, seen } = await echoServer({ messageTimeoutMs: 600, refuseBodiesOverBytes: 1_000 });
    const socket = net.connect(port, '127.0.0.1');
    cleanups.push(() => void socket.destroy());
    let closed = false;
    socket.once('close', () => (closed = true));
    const answers: Buffer[] = [];
    socket.write('GET /stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test/1\r\n\r\n');
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    socket.on('data', (chunk: Buffer) => answers.push(chunk));
    // The refused call takes 450 ms to arrive, its last chunk begins the next call, which takes
    // 450 ms more: 900 ms from the refused call's first byte, 450 ms from its own.
    const refused = Buffer.concat(encodeMessage(1, undefined, [Buffer.alloc(5_000, 1)]));
    const next = Buffer.concat(encodeMessage(2, undefined, [Buffer.alloc(100, 2)]));
    socket.write(refused.subarray(0, 100));
    await new Promise((resolve) => setTimeout(resolve, 450));
    socket.write(Buffer.concat([refused.subarray(100), next.subarray(0, 50)]));
    await new Promise((resolve) => setTimeout(resolve, 450));
    socket.write(next.subarray(50));
    await expect.poll(() => seen.served).toBe(1);
    expect(closed).toBe(false);
    expect(seen.badMessages).toEqual([]);
    await expect.poll(() => Buffer.concat(answers).includes('refused for the budget')).toBe(true);
  });

  it('closes a connection whose message stays unfinished', async () => {
    const { port, seen } = await echoServer({ messageTimeoutMs: 200 });
    const socket = net.connect(port, '127.0.0.1');
    cleanups.push(() => void socket.destroy());
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write('GET /stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test/1\r\n\r\n');
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    const message = Buffer.concat(encodeMessage(1, undefined, [Buffer.alloc(100, 1)]));
    socket.write(message.subarray(0, 50)); // the rest never comes
    await closed;
    expect(seen.badMessages).toEqual(['a message unfinished after 200 ms']);
    expect(seen.served).toBe(0);
  });
});
