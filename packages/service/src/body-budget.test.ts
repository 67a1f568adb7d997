// Proves the service's body budget bounds request bodies over HTTP and over a stream together, on
// a real HTTP edge on loopback whose upgrades are served with serveStream: a stream message that
// does not fit is answered UNAVAILABLE without being read and its connection goes on; an HTTP
// body and a stream message hold the same budget; and every byte comes back, whether a message
// was answered, waited for room, or was cut off by its connection closing.
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { StreamClient, acceptUpgrade, encodeMessage, serveStream, type TesseraError } from '@tessera/protocol';
import { createHttpService, type HttpService } from './http.js';
import { createLogger } from './logger.js';

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * An HTTP edge with a body budget of `maxBodyBytes` whose upgrades open a stream answering each
 * body with itself; a body starting with "hold" is answered once `release()` is called.
 */
async function edgeWithStream(maxBodyBytes: number, options: { maxInFlight?: number } = {}) {
  const service: HttpService = createHttpService({
    service: 'broker',
    logger: createLogger('broker', {}, { level: 'silent' }),
    isReady: () => true,
    maxRequestBytes: maxBodyBytes,
    maxBodyBytesInFlight: maxBodyBytes,
  });
  service.router.post('/echo', (ctx) => {
    ctx.body = { frameBytes: ctx.state.frame?.length ?? null };
  });
  let release = () => undefined as void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const server = await service.listen(0, '127.0.0.1');
  const sockets = new Set<Duplex>();
  server.on('upgrade', (_request, socket: Duplex, head: Buffer) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    acceptUpgrade(socket, 'test/1');
    serveStream(socket, head, {
      maxMessageBytes: maxBodyBytes,
      budget: { bodies: service.bodyBudget, refusal: (error: TesseraError) => [Buffer.from(JSON.stringify(error.toBody()))] },
      maxInFlight: options.maxInFlight ?? 8,
      maxInFlightBytes: 4 * maxBodyBytes,
      idleTimeoutMs: 60_000,
      messageTimeoutMs: 60_000,
      serve: async (_id, body) => {
        if (body.subarray(0, 4).toString() === 'hold') await released;
        return [body];
      },
      onBadMessage: () => undefined,
    });
  });
  cleanups.push(async () => {
    for (const socket of sockets) socket.destroy();
    await service.close();
  });
  const streams = new StreamClient({ name: 'test stream', protocol: 'test/1', path: '/stream', maxAnswerBytes: 1 << 20 });
  cleanups.push(() => streams.close());
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port, budget: service.bodyBudget, streams, release };
}

/** A raw upgraded connection (101 read) on which the test writes bytes as it likes. */
async function rawStream(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  cleanups.push(() => void socket.destroy());
  socket.write('GET /stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test/1\r\n\r\n');
  let received = '';
  await new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.includes('\r\n\r\n')) resolve();
    });
    socket.once('error', reject);
  });
  expect(received).toMatch(/^HTTP\/1.1 101 /);
  return socket;
}

/** The first `bytes` bytes of a message of `id` whose body has `bodyBytes` bytes: one that is never finished. */
function beginning(id: number, bodyBytes: number, bytes: number): Buffer {
  return Buffer.concat(encodeMessage(id, undefined, [Buffer.alloc(bodyBytes, 0x61)])).subarray(0, bytes);
}

describe('the body budget', () => {
  it('answers a stream message that does not fit UNAVAILABLE without reading it, and the connection goes on', async () => {
    const { url, port, budget, streams } = await edgeWithStream(1_000);
    // A slow sender's message of 600 bytes holds 600 from its first bytes on.
    const slow = await rawStream(port);
    slow.write(beginning(1, 600, 20));
    await expect.poll(() => budget.heldBytes).toBe(600);

    const refused = JSON.parse((await streams.call(url, [Buffer.alloc(500, 0x62)], 5_000)).toString());
    expect(refused.error).toMatchObject({ code: 'UNAVAILABLE', retriable: true, message: 'too many request bodies are being read (600 bytes); retry' });
    // The refused message's bytes were skipped: the next one on the same connection is read and answered.
    expect((await streams.call(url, [Buffer.from('fits')], 5_000)).toString()).toBe('fits');

    // Once the slow sender goes, its bytes are free again.
    slow.destroy();
    await expect.poll(() => budget.heldBytes).toBe(0);
    expect((await streams.call(url, [Buffer.alloc(900, 0x63)], 5_000)).length).toBe(900);
    expect(budget.heldBytes).toBe(0);
  });

  it('holds HTTP bodies and stream messages against the same budget', async () => {
    const { url, port, budget, streams } = await edgeWithStream(1_000);
    // A stream message being read refuses an HTTP body that would pass the budget...
    const slowStream = await rawStream(port);
    slowStream.write(beginning(1, 700, 10));
    await expect.poll(() => budget.heldBytes).toBe(700);
    const refusedHttp = await fetch(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'application/vnd.tessera.frame' }, body: Buffer.alloc(400) });
    expect(refusedHttp.status).toBe(503);
    expect(((await refusedHttp.json()) as { error: unknown }).error).toMatchObject({ code: 'UNAVAILABLE', retriable: true });
    slowStream.destroy();
    await expect.poll(() => budget.heldBytes).toBe(0);

    // ...and an HTTP body being read refuses a stream message.
    const slowHttp = net.connect(port, '127.0.0.1');
    cleanups.push(() => void slowHttp.destroy());
    slowHttp.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.tessera.frame\r\nContent-Length: 800\r\n\r\nabc');
    await expect.poll(() => budget.heldBytes).toBe(800);
    const refusedStream = JSON.parse((await streams.call(url, [Buffer.alloc(300)], 5_000)).toString());
    expect(refusedStream.error).toMatchObject({ code: 'UNAVAILABLE', retriable: true });
    slowHttp.destroy();
    await expect.poll(() => budget.heldBytes).toBe(0);
  });

  it('gives back the bytes of a message in service once it is answered, and of one waiting or cut off once its connection closes', async () => {
    const { port, budget, release } = await edgeWithStream(1_000, { maxInFlight: 1 });
    const socket = await rawStream(port);
    // One message in service (held until released), one waiting for the slot, one begun.
    const held = Buffer.concat(encodeMessage(1, undefined, [Buffer.from('hold'), Buffer.alloc(96)]));
    const waiting = Buffer.concat(encodeMessage(2, undefined, [Buffer.alloc(100)]));
    socket.write(Buffer.concat([held, waiting, beginning(3, 200, 50)]));
    await expect.poll(() => budget.heldBytes).toBe(400);
    // A reset, not a hang-up: the server would still serve a peer that only stopped sending.
    socket.resetAndDestroy();
    await expect.poll(() => budget.heldBytes).toBe(100);
    release();
    await expect.poll(() => budget.heldBytes).toBe(0);
  });
});
