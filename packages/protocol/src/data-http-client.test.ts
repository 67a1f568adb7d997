import { getEventListeners } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, FRAME_CONTENT_TYPE } from './batch/frame.js';
import { DataHttpClient } from './data-http-client.js';
import { isRetriable, isTesseraError } from './errors.js';
import { isNetworkError } from './http-client.js';
import { refusedUrl, startLoopbackServer, type LoopbackServer } from './test-support/loopback-server.js';

// The data-path client against a real node:http server on loopback: JSON and frames both
// ways over kept-alive connections, error bodies back to TesseraErrors, calls without an
// answer as retriable network errors (ETIMEDOUT, ECONNREFUSED, a reset), aborts not retriable;
// a caller's long-lived signal keeps nothing of the calls made under it.
describe('DataHttpClient', () => {
  let server: LoopbackServer;
  let base: string;
  const client = new DataHttpClient({ timeoutMs: 2_000, headers: { 'x-extra': 'yes' } });

  beforeAll(async () => {
    server = await startLoopbackServer((req, res, body, url) => {
      if (url.pathname === '/echo-json') {
        res.setHeader('content-type', 'application/json; charset=utf-8');
        res.end(JSON.stringify({ got: JSON.parse(body.toString()), type: req.headers['content-type'], extra: req.headers['x-extra'] }));
      } else if (url.pathname === '/echo-frame') {
        const { head, tail } = decodeFrame(body);
        res.setHeader('content-type', FRAME_CONTENT_TYPE);
        res.end(Buffer.concat(encodeFrame({ echoed: head, accept: req.headers.accept }, [tail])));
      } else if (url.pathname === '/trickle') {
        // Headers at once, then one byte every 20 ms for 5 s: no gap is long enough for a body timeout.
        res.writeHead(200, { 'content-type': 'application/json' });
        const timer = setInterval(() => res.write(' '), 20);
        const end = setTimeout(() => res.end('{}'), 5_000);
        res.on('close', () => {
          clearInterval(timer);
          clearTimeout(end);
        });
      } else {
        res.writeHead(404).end();
      }
    });
    base = server.base;
  });

  afterAll(async () => {
    await client.close();
    await server.close();
  });

  it('sends JSON and frames, reuses its connection, and passes the accept header', async () => {
    server.sockets.clear();
    expect(await client.postJson(`${base}/echo-json`, { a: ['é', 1] })).toEqual({ got: { a: ['é', 1] }, type: 'application/json', extra: 'yes' });
    const bytes = Buffer.from([0, 255, 1, 0xc3]);
    const answer = await client.postFrame(`${base}/echo-frame`, encodeFrame({ n: 1 }, [bytes]), { accept: FRAME_CONTENT_TYPE });
    expect(answer.contentType).toBe(FRAME_CONTENT_TYPE);
    const { head, tail } = decodeFrame(answer.body);
    expect(head).toEqual({ echoed: { n: 1 }, accept: FRAME_CONTENT_TYPE });
    expect(tail.equals(bytes)).toBe(true);
    for (let i = 0; i < 10; i++) await client.postJson(`${base}/echo-json`, { i });
    // Kept alive: twelve sequential calls, not twelve connections (undici may open a second before the first is free).
    expect(server.sockets.size).toBeLessThanOrEqual(2);
  });

  it('turns error answers into the TesseraError the server meant', async () => {
    const error = await client.postJson(`${base}/error`, {}).catch((e: unknown) => e);
    expect(isTesseraError(error, 'NOT_PRIMARY')).toBe(true);
    expect((error as { details: unknown }).details).toEqual({ primary: null });
    const internal = await client.postJson(`${base}/plain-500`, {}).catch((e: unknown) => e);
    expect(isTesseraError(internal, 'INTERNAL')).toBe(true);
    const notJson = await client.postJson(`${base}/not-json`, {}).catch((e: unknown) => e);
    expect(isTesseraError(notJson, 'INTERNAL')).toBe(true);
  });

  it('reports calls without an answer as retriable network errors', async () => {
    const timedOut = await client.postJson(`${base}/slow`, {}, { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(isNetworkError(timedOut)).toBe(true);
    expect((timedOut as { code?: string }).code).toBe('ETIMEDOUT');
    expect(isRetriable(timedOut)).toBe(true);

    const trickled = await client.postJson(`${base}/trickle`, {}, { timeoutMs: 300 }).catch((e: unknown) => e);
    expect((trickled as { code?: string }).code).toBe('ETIMEDOUT');
    expect((trickled as Error).message).toContain('no answer within 300 ms');
    expect(isRetriable(trickled)).toBe(true);

    const reset = await client.postJson(`${base}/reset`, {}).catch((e: unknown) => e);
    expect(isNetworkError(reset)).toBe(true);
    expect(isRetriable(reset)).toBe(true);

    const url = await refusedUrl('/x');
    const refused = await client.postJson(url, {}).catch((e: unknown) => e);
    expect((refused as { code?: string }).code).toBe('ECONNREFUSED');
    expect(isRetriable(refused)).toBe(true);
    expect((refused as Error).message).toContain(`POST ${url}: ECONNREFUSED`);
  });

  it('leaves nothing on a signal that many calls are made under, and still times out as ETIMEDOUT under it', async () => {
    const stop = new AbortController();
    const listenersBefore = getEventListeners(stop.signal, 'abort').length;
    const keysBefore = Reflect.ownKeys(stop.signal);
    for (let i = 0; i < 200; i++) await client.postJson(`${base}/echo-json`, { i }, { signal: stop.signal });
    const timedOut = await client.postJson(`${base}/slow`, {}, { timeoutMs: 100, signal: stop.signal }).catch((e: unknown) => e);
    expect((timedOut as { code?: string }).code).toBe('ETIMEDOUT');
    expect(isRetriable(timedOut)).toBe(true);
    // Node keeps each signal AbortSignal.any made on its sources, under a key of its own: none was made.
    expect(getEventListeners(stop.signal, 'abort').length).toBe(listenersBefore);
    expect(Reflect.ownKeys(stop.signal)).toEqual(keysBefore);
  });

  it('stops at once when its signal aborts, and that is not retriable', async () => {
    const controller = new AbortController();
    const call = client.postJson(`${base}/slow`, {}, { signal: controller.signal }).catch((e: unknown) => e);
    setTimeout(() => controller.abort(), 20);
    const started = Date.now();
    const error = await call;
    expect(Date.now() - started).toBeLessThan(900);
    expect(isRetriable(error)).toBe(false);
  });
});
