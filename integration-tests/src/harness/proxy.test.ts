// Proves the fault proxy forwards, cuts, blackholes and delays a real TCP link.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TcpProxy } from './proxy.js';

let server: http.Server;
let proxy: TcpProxy;

beforeAll(async () => {
  server = http.createServer((_req, res) => res.end('pong'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  proxy = new TcpProxy((server.address() as AddressInfo).port);
  await proxy.start();
});

afterAll(async () => {
  await proxy.stop();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const ping = () => fetch(`${proxy.url}/`, { signal: AbortSignal.timeout(500) }).then((r) => r.text());

describe('TcpProxy', () => {
  it('forwards in pass mode', async () => {
    expect(await ping()).toBe('pong');
  });

  it('refuses connections when cut', async () => {
    proxy.set('cut');
    await expect(ping()).rejects.toThrow();
    proxy.set('pass');
    expect(await ping()).toBe('pong');
  });

  it('holds connections without answering when blackholed', async () => {
    proxy.set('blackhole');
    await expect(ping()).rejects.toThrow(/abort|timeout/i);
    proxy.set('pass');
    expect(await ping()).toBe('pong');
  });

  it('still delivers when delayed', async () => {
    proxy.set('delay', 50);
    expect(await fetch(`${proxy.url}/`).then((r) => r.text())).toBe('pong');
    proxy.set('pass');
  });
});
