// Proves the test port picker's two promises: every port is below the ephemeral range and free
// when handed out, and no port is handed out twice in one process, single or in a range.
import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, freePortRange } from './ports.js';

const servers: net.Server[] = [];
afterAll(async () => {
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
});

function bind(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      servers.push(server);
      resolve();
    });
  });
}

describe('freePort and freePortRange', () => {
  it('hand out bindable ports below the ephemeral range, never the same one twice', async () => {
    const seen = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const base = i % 2 === 0 ? await freePort() : await freePortRange(3);
      const ports = i % 2 === 0 ? [base] : [base, base + 1, base + 2];
      for (const port of ports) {
        expect(port).toBeGreaterThanOrEqual(1024);
        expect(port).toBeLessThan(32_768);
        expect(seen.has(port), `port ${port} handed out twice`).toBe(false);
        seen.add(port);
      }
    }
    // The last range is free for its service to bind, all three ports of it.
    const base = await freePortRange(3);
    for (let port = base; port < base + 3; port++) await bind(port);
  });

  it('refuses a count that is not a small positive integer', async () => {
    await expect(freePortRange(0)).rejects.toThrow(RangeError);
    await expect(freePortRange(1.5)).rejects.toThrow(RangeError);
  });
});
