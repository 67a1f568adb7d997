// The generic stream on two real endpoints on loopback (a node:http server serving upgrades with
// serveStream, and StreamClient): a call with another credential moves to a new connection and
// the old one closes once answered, an aborted call rejects without harming the connection, and
// a connection never has more requests served at once than its bound.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { StreamClient } from './stream-client.js';
import { acceptUpgrade, serveStream } from './stream-server.js';

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A server whose stream answers each body with itself after `delayMs`, and records each upgrade's credential. */
async function echoServer(delayMs = 0, maxInFlight = 64, maxInFlightBytes = 1 << 20) {
  const seen = { credentials: [] as Array<string | undefined>, closed: 0, serving: 0, mostServing: 0 };
  const server = http.createServer((_request, response) => response.writeHead(404).end());
  const sockets = new Set<Duplex>();
  server.on('upgrade', (request: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    seen.credentials.push(request.headers.authorization);
    sockets.add(socket);
    socket.on('close', () => seen.closed++);
    acceptUpgrade(socket, 'test/1');
    serveStream(socket, head, {
      maxMessageBytes: 1 << 20,
      maxInFlight,
      maxInFlightBytes,
      idleTimeoutMs: 60_000,
      serve: async (_id, body) => {
        seen.serving++;
        seen.mostServing = Math.max(seen.mostServing, seen.serving);
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        seen.serving--;
        return [body];
      },
      onBadMessage: () => undefined,
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const streams = new StreamClient({ name: 'test stream', protocol: 'test/1', path: '/stream', maxAnswerBytes: 1 << 20 });
  cleanups.push(() => streams.close());
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, streams };
}

describe('StreamClient', () => {
  it('opens a new connection for a new credential and closes the old one once its calls are answered', async () => {
    const { url, seen, streams } = await echoServer(20);
    const first = streams.call(url, [Buffer.from('one')], 2_000, 'Bearer a');
    expect((await streams.call(url, [Buffer.from('two')], 2_000, 'Bearer a')).toString()).toBe('two');
    const second = streams.call(url, [Buffer.from('three')], 2_000, 'Bearer b');
    expect((await first).toString()).toBe('one');
    expect((await second).toString()).toBe('three');
    expect(seen.credentials).toEqual(['Bearer a', 'Bearer b']);
    await expect.poll(() => seen.closed).toBe(1);
  });

  it('rejects an aborted call with its reason and keeps serving the others on the connection', async () => {
    const { url, seen, streams } = await echoServer(50);
    const controller = new AbortController();
    const aborted = streams.call(url, [Buffer.from('abandoned')], 2_000, undefined, controller.signal);
    const kept = streams.call(url, [Buffer.from('kept')], 2_000);
    controller.abort(new Error('consumer closed'));
    await expect(aborted).rejects.toThrow('consumer closed');
    expect((await kept).toString()).toBe('kept');
    expect((await streams.call(url, [Buffer.from('after')], 2_000)).toString()).toBe('after');
    expect(seen.credentials).toHaveLength(1);
  });

  it('never serves more requests of one connection at once than its bound, and answers them all', async () => {
    const { url, seen, streams } = await echoServer(10, 2);
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => streams.call(url, [Buffer.from(`m${i}`)], 5_000)));
    expect(answers.map(String)).toEqual(Array.from({ length: 12 }, (_, i) => `m${i}`));
    expect(seen.mostServing).toBe(2);
  });

  it('never serves more bytes of one connection at once than its bound, and serves a request larger than the bound alone', async () => {
    const { url, seen, streams } = await echoServer(10, 64, 2_500);
    const bodies = [...Array.from({ length: 6 }, (_, i) => Buffer.alloc(1_000, i)), Buffer.alloc(4_000, 9)];
    const answers = await Promise.all(bodies.map((body) => streams.call(url, [body], 5_000)));
    answers.forEach((answer, i) => expect(answer.equals(bodies[i]!)).toBe(true));
    expect(seen.mostServing).toBe(2);
  });
});
