// Proves the HTTP edge stops the service on a broken invariant inside a request (instead of
// answering a retriable 500 and going on), observes a failed request with the status it was
// answered, and reads frame bodies as bytes, JSON as JSON, also
// when a cluster member signed them (the signature check reads the body first).
import net, { type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterSigner, DataHttpClient, FRAME_CONTENT_TYPE, InvariantError, TesseraError } from '@tessera/protocol';
import { createHttpService, type HttpService } from './http.js';
import { createLogger } from './logger.js';

const services: HttpService[] = [];
afterEach(async () => {
  await Promise.all(services.splice(0).map((service) => service.close()));
});

const SECRET = 'a-cluster-secret-of-enough-length';

async function serve(
  onInvariantBroken: (error: Error) => void,
  clusterSecrets?: string[],
  limits: { maxRequestBytes?: number; maxBodyBytesInFlight?: number } = {},
): Promise<{ url: string; service: HttpService }> {
  const service = createHttpService({
    service: 'broker',
    logger: createLogger('broker', {}, { level: 'silent' }),
    isReady: () => true,
    onInvariantBroken,
    ...(clusterSecrets ? { clusterSecrets } : {}),
    ...limits,
  });
  services.push(service);
  service.router.post('/broken', () => {
    throw new InvariantError('offset 3 appended at LEO 5');
  });
  service.router.post('/refused', () => {
    throw new TesseraError('NOT_PRIMARY', 'not here');
  });
  service.router.post('/unavailable', () => {
    throw new TesseraError('UNAVAILABLE', 'not now');
  });
  service.router.post('/echo', (ctx) => {
    ctx.body = { json: ctx.state.body ?? null, frameBytes: ctx.state.frame?.length ?? null };
  });
  service.router.post('/internal/echo', (ctx) => {
    ctx.body = { frame: ctx.state.frame?.toString('base64') ?? null, member: ctx.state.clusterNode ?? null };
  });
  const server = await service.listen(0, '127.0.0.1');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, service };
}

describe('the HTTP edge', () => {
  it('hands a broken invariant to onInvariantBroken, and answers ordinary errors as before', async () => {
    const broken: Error[] = [];
    const { url } = await serve((error) => broken.push(error));
    await fetch(`${url}/broken`, { method: 'POST' });
    expect(broken.map((e) => e.message)).toEqual(['invariant violated: offset 3 appended at LEO 5']);
    const refused = await fetch(`${url}/refused`, { method: 'POST' });
    expect(refused.status).toBe(421);
    expect(broken).toHaveLength(1);
  });

  it('observes a request that failed with the status it was answered, not the status before the error', async () => {
    const { url } = await serve(() => undefined);
    expect((await fetch(`${url}/unavailable`, { method: 'POST' })).status).toBe(503);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/tessera_broker_request_duration_seconds_count\{method="POST",route="\/unavailable",status="503"\} 1/);
    expect(metrics).not.toMatch(/route="\/unavailable",status="404"/);
  });

  it('answers UNAVAILABLE without reading, while the bodies being read hold the whole budget', async () => {
    const { url } = await serve(() => undefined, undefined, { maxRequestBytes: 1_000, maxBodyBytesInFlight: 2_000 });
    const { port } = new URL(url);
    // Two slow senders, each declaring 1,000 bytes and sending 10 of them.
    const slow = await Promise.all(
      [1, 2].map(async () => {
        const socket = net.connect(Number(port), '127.0.0.1');
        await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
        socket.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"' + 'a'.repeat(9));
        return socket;
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    const refused = await fetch(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: { code: string; retriable: boolean } }).error).toMatchObject({ code: 'UNAVAILABLE', retriable: true });
    // The senders finish (or go): the budget is free again.
    for (const socket of slow) socket.destroy();
    await expect
      .poll(async () => (await fetch(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' })).status, { timeout: 5_000 })
      .toBe(200);
  });

  it('routes paths as written: an internal route in other letters is not found, rather than past the cluster-only check', async () => {
    const { url } = await serve(() => undefined, [SECRET]);
    const shouted = await fetch(`${url}/INTERNAL/echo`, { method: 'POST', headers: { 'content-type': FRAME_CONTENT_TYPE }, body: Buffer.from([1]) });
    expect(shouted.status).toBe(404);
    const unsigned = await fetch(`${url}/internal/echo`, { method: 'POST', headers: { 'content-type': FRAME_CONTENT_TYPE }, body: Buffer.from([1]) });
    expect(unsigned.status).toBe(401);
  });

  it('reads a frame body as bytes and a JSON body as JSON', async () => {
    const { url } = await serve(() => undefined);
    const frame = await fetch(`${url}/echo`, { method: 'POST', headers: { 'content-type': FRAME_CONTENT_TYPE }, body: Buffer.from([0, 0, 0, 2, 123, 125, 9]) });
    expect(await frame.json()).toEqual({ json: null, frameBytes: 7 });
    const json = await fetch(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    expect(await json.json()).toEqual({ json: { a: 1 }, frameBytes: null });
  });

  it('hands a signed frame of bytes that are not UTF-8 to the handler exactly as sent', async () => {
    const { url } = await serve(() => undefined, [SECRET]);
    const bytes = Buffer.from([0, 0, 0, 2, 123, 125, 0xff, 0xfe, 0x80, 0xc3, 0x28]);
    const member = new DataHttpClient({ timeoutMs: 2_000, signer: new ClusterSigner([SECRET], 'broker-2') });
    try {
      const answer = await member.post(`${url}/internal/echo`, bytes, FRAME_CONTENT_TYPE);
      expect(JSON.parse(answer.body.toString('utf8'))).toEqual({ frame: bytes.toString('base64'), member: 'broker-2' });
    } finally {
      await member.close();
    }
  });
});
