// The HTTP edge's bounds and logs against a real server on loopback: connections beyond the
// bound are closed, a 4xx is one log line without a stack while a 5xx keeps its stack, and a
// cluster-only route refuses an unsigned caller before any handler runs.
import { once } from 'node:events';
import net from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterSigner, JsonHttpClient, TesseraError } from '@tessera/protocol';
import { createHttpService, type HttpService } from './http.js';

const SECRET = 'a-cluster-secret-of-enough-length';
const running: Array<{ service: HttpService; client?: JsonHttpClient }> = [];

afterEach(async () => {
  for (const { service, client } of running.splice(0)) {
    client?.close();
    await service.close();
  }
});

async function start(options: { maxConnections?: number; clusterSecrets?: string[]; ready?: boolean } = {}) {
  let ready = options.ready ?? true;
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split('\n').filter((line) => line.length > 0));
      done();
    },
  });
  const service = createHttpService({
    service: 'broker',
    logger: pino({ level: 'info' }, sink),
    isReady: () => ready,
    serverLimits: { maxConnections: options.maxConnections ?? 100 },
    ...(options.clusterSecrets ? { clusterSecrets: options.clusterSecrets } : {}),
  });
  let handled = 0;
  service.router.post('/internal/replicate', (ctx) => {
    handled++;
    ctx.body = { ok: true };
  });
  service.router.get('/boom', () => {
    throw new Error('a bug');
  });
  service.router.get('/later', () => {
    throw new TesseraError('UNAVAILABLE', 'not yet');
  });
  const server = await service.listen(0, '127.0.0.1');
  const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  const client = new JsonHttpClient({ timeoutMs: 2_000 });
  running.push({ service, client });
  return { service, url, client, lines, handledCount: () => handled, setReady: (value: boolean) => (ready = value) };
}

describe('the HTTP edge', () => {
  it('closes connections beyond maxConnections at once and serves again once they are gone', async () => {
    const { url, client } = await start({ maxConnections: 5 });
    const port = Number(new URL(url).port);
    const held = await Promise.all(Array.from({ length: 5 }, async () => {
      const socket = net.connect(port, '127.0.0.1');
      await once(socket, 'connect');
      return socket;
    }));
    const extra = net.connect(port, '127.0.0.1');
    extra.resume();
    extra.on('error', () => undefined);
    await once(extra, 'close');
    for (const socket of held) socket.destroy();
    await expect.poll(() => client.get(`${url}/health`).catch(() => undefined), { timeout: 5_000 }).toMatchObject({ status: 'ok' });
  });

  it('logs a 4xx as one line without a stack, a 5xx with its stack, and a not-ready probe not at all', async () => {
    const { url, client, lines } = await start();
    await expect(client.post(`${url}/nowhere`, {})).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(client.get(`${url}/boom`)).rejects.toMatchObject({ code: 'INTERNAL' });
    await expect(client.get(`${url}/later`)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    const notServed = lines.map((line) => JSON.parse(line)).filter((entry) => entry.msg === 'request not served');
    expect(notServed).toEqual([expect.objectContaining({ level: 40, code: 'UNAVAILABLE', path: '/later' })]);
    expect(notServed[0].err.stack).toContain('not yet');
    const refused = lines.map((line) => JSON.parse(line)).filter((entry) => entry.msg === 'request refused');
    expect(refused).toEqual([expect.objectContaining({ status: 404, code: 'NOT_FOUND', path: '/nowhere' })]);
    expect(refused[0].err).toBeUndefined();
    const failed = lines.map((line) => JSON.parse(line)).filter((entry) => entry.msg === 'request failed');
    expect(failed).toHaveLength(1);
    expect(failed[0].err.stack).toContain('a bug');
  });

  it('answers a not-ready probe 503 UNAVAILABLE without a log line', async () => {
    const { url, lines, setReady } = await start({ ready: false, clusterSecrets: [SECRET] });
    const before = lines.length;
    const probe = await fetch(`${url}/ready`);
    expect(probe.status).toBe(503);
    expect(((await probe.json()) as { error: { code: string } }).error.code).toBe('UNAVAILABLE');
    expect(lines.slice(before)).toEqual([]);
    setReady(true);
    expect((await fetch(`${url}/ready`)).status).toBe(200);
  });

  it('refuses an unsigned or wrongly signed caller of a cluster-only route before its handler, and admits a member', async () => {
    const { url, client, handledCount } = await start({ clusterSecrets: [SECRET] });
    await expect(client.post(`${url}/internal/replicate`, { x: 1 })).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
    const forger = new JsonHttpClient({ timeoutMs: 2_000, signer: new ClusterSigner(['another-secret-of-enough-length'], 'broker-1') });
    await expect(forger.post(`${url}/internal/replicate`, { x: 1 })).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
    forger.close();
    expect(handledCount()).toBe(0);
    const member = new JsonHttpClient({ timeoutMs: 2_000, signer: new ClusterSigner([SECRET], 'broker-1') });
    expect(await member.post(`${url}/internal/replicate`, { x: 1 })).toEqual({ ok: true });
    member.close();
    expect(handledCount()).toBe(1);
  });
});
