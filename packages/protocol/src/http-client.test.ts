import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRetriable, isTesseraError } from './errors.js';
import { isNetworkError, JsonHttpClient } from './http-client.js';

// The HTTP client against a real node:http server on loopback: JSON both ways, error bodies
// back to TesseraErrors, and calls without an answer as retriable network errors with the
// Node code (refused, reset, timed out), aborted calls as non-retriable.
describe('JsonHttpClient', () => {
  let server: http.Server;
  let base: string;
  const client = new JsonHttpClient({ timeoutMs: 2_000, headers: { 'x-extra': 'yes' } });

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'http://localhost');
        switch (url.pathname) {
          case '/echo':
            res.setHeader('content-type', 'application/json');
            res.end(JSON.stringify({ method: req.method, body: body === '' ? null : JSON.parse(body), query: Object.fromEntries(url.searchParams), extra: req.headers['x-extra'], type: req.headers['content-type'] ?? null }));
            return;
          case '/error':
            res.statusCode = 421;
            res.end(JSON.stringify({ error: { code: 'NOT_PRIMARY', message: 'not me', retriable: true, primary: null } }));
            return;
          case '/plain-500':
            res.statusCode = 500;
            res.end('boom');
            return;
          case '/not-json':
            res.end('hello');
            return;
          case '/empty':
            res.statusCode = 204;
            res.end();
            return;
          case '/slow':
            setTimeout(() => res.end('{}'), 1_000);
            return;
          case '/reset':
            req.socket.destroy();
            return;
          case '/unicode':
            res.end(JSON.stringify({ text: 'é'.repeat(100_000) }));
            return;
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    client.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
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

    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const refused = await client.get(`http://127.0.0.1:${port}/x`).catch((e: unknown) => e);
    expect((refused as { code?: string }).code).toBe('ECONNREFUSED');
    expect(isRetriable(refused)).toBe(true);
    expect((refused as Error).message).toContain(`GET http://127.0.0.1:${port}/x: ECONNREFUSED`);
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
