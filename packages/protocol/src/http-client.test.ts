import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRetriable, isTesseraError } from './errors.js';
import { isNetworkError, JsonHttpClient } from './http-client.js';
import { refusedUrl, startLoopbackServer, type LoopbackServer } from './test-support/loopback-server.js';

// The HTTP client against a real node:http server on loopback: JSON both ways, error bodies
// back to TesseraErrors, and calls without an answer as retriable network errors with the
// Node code (refused, reset, timed out), aborted calls as non-retriable.
describe('JsonHttpClient', () => {
  let server: LoopbackServer;
  let base: string;
  const client = new JsonHttpClient({ timeoutMs: 2_000, headers: { 'x-extra': 'yes' } });

  beforeAll(async () => {
    server = await startLoopbackServer((req, res, body, url) => {
      if (url.pathname !== '/echo') return void res.writeHead(404).end();
      const text = body.toString('utf8');
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ method: req.method, body: text === '' ? null : JSON.parse(text), query: Object.fromEntries(url.searchParams), extra: req.headers['x-extra'], type: req.headers['content-type'] ?? null }));
    });
    base = server.base;
  });

  afterAll(async () => {
    client.close();
    await server.close();
  });

  it('sends and parses JSON, with query parameters and the configured headers', async () => {
    expect(await client.post(`${base}/echo`, { a: [1, 'é'] }, { searchParams: { x: 1, y: 'two' } })).toEqual({
      method: 'POST',
      body: { a: [1, 'é'] },
      query: { x: '1', y: 'two' },
      extra: 'yes',
      type: 'application/json',
    });
    expect(await client.get(`${base}/echo`)).toMatchObject({ method: 'GET', body: null, type: null });
    expect(await client.delete(`${base}/empty`)).toBeUndefined();
    expect(await client.get(`${base}/unicode`)).toEqual({ text: 'é'.repeat(100_000) });
  });

  it('turns error bodies into the TesseraError the server meant', async () => {
    const error = await client.post(`${base}/error`, {}).catch((e: unknown) => e);
    expect(isTesseraError(error, 'NOT_PRIMARY')).toBe(true);
    expect((error as { details: unknown }).details).toEqual({ primary: null });
    const internal = await client.get(`${base}/plain-500`).catch((e: unknown) => e);
    expect(isTesseraError(internal, 'INTERNAL')).toBe(true);
    const notJson = await client.get(`${base}/not-json`).catch((e: unknown) => e);
    expect(isTesseraError(notJson, 'INTERNAL')).toBe(true);
  });

  it('reports calls without an answer as retriable network errors with their code', async () => {
    const timedOut = await client.get(`${base}/slow`, { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(isNetworkError(timedOut)).toBe(true);
    expect((timedOut as { code?: string }).code).toBe('ETIMEDOUT');
    expect(isRetriable(timedOut)).toBe(true);

    const reset = await client.get(`${base}/reset`).catch((e: unknown) => e);
    expect(isNetworkError(reset)).toBe(true);
    expect(isRetriable(reset)).toBe(true);

    const url = await refusedUrl('/x');
    const refused = await client.get(url).catch((e: unknown) => e);
    expect((refused as { code?: string }).code).toBe('ECONNREFUSED');
    expect(isRetriable(refused)).toBe(true);
    expect((refused as Error).message).toContain(`GET ${url}: ECONNREFUSED`);
  });

  it('stops at once when its signal aborts, and that is not retriable', async () => {
    const controller = new AbortController();
    const call = client.get(`${base}/slow`, { signal: controller.signal }).catch((e: unknown) => e);
    setTimeout(() => controller.abort(), 20);
    const error = await call;
    expect(isNetworkError(error)).toBe(true);
    expect(isRetriable(error)).toBe(false);
  });
});
