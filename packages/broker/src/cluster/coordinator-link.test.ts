// Proves the broker's link to the coordinator keeps heartbeating while a cluster map is being
// applied (a map that drops a large replica deletes its whole log first), and fetches again a
// map whose requested refresh failed, though the version did not change: a real HTTP server
// plays the coordinator and counts the heartbeats.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '@tessera/service';
import { CoordinatorLink } from './coordinator-link.js';

const logger = createLogger('broker', { test: 'coordinator-link' }, { level: process.env.TESSERA_TEST_LOG_LEVEL ?? 'silent' });
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A link of broker 1 to the coordinator `server` plays, heartbeating every 20 ms, started; `apply` takes each map. */
function startLink(server: http.Server, apply: () => Promise<void>): CoordinatorLink {
  const link = new CoordinatorLink({
    brokerId: 1,
    url: 'http://127.0.0.1:1',
    coordinatorUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    heartbeatMs: 20,
    timeoutMs: 2_000,
    logger,
    reports: () => [],
    apply,
  });
  link.start();
  cleanups.push(() => link.stop());
  return link;
}

describe('CoordinatorLink', () => {
  it('keeps heartbeating while a cluster map takes long to apply', async () => {
    let heartbeats = 0;
    const server = http.createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        response.setHeader('content-type', 'application/json');
        if (request.url === '/metadata') return response.end(JSON.stringify({ version: 2, brokers: [], topics: [] }));
        if (request.url === '/brokers/heartbeat') heartbeats++;
        response.end(JSON.stringify({ metadataVersion: 2 }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    let applying = 0;
    let finishApplying!: () => void;
    // The first map takes until the test lets it finish.
    const link = startLink(server, () => {
      applying++;
      return new Promise<void>((resolve) => (finishApplying = resolve));
    });
    await expect.poll(() => applying, { timeout: 5_000 }).toBe(1);
    const before = heartbeats;
    await expect.poll(() => heartbeats - before, { timeout: 5_000 }).toBeGreaterThanOrEqual(5);
    // One map at a time: no second apply while the first runs.
    expect(applying).toBe(1);
    finishApplying();
    await expect.poll(() => link.loaded, { timeout: 5_000 }).toBe(true);
  });

  it('fetches the map again after a requested refresh failed, though its version did not change', async () => {
    let metadataGets = 0;
    let failMetadata = false;
    const server = http.createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        response.setHeader('content-type', 'application/json');
        if (request.url === '/metadata') {
          metadataGets++;
          if (failMetadata) {
            // Not retriable, so the HTTP client gives up at once and the refresh fails.
            response.statusCode = 400;
            return response.end(JSON.stringify({ error: { code: 'INVALID_REQUEST', message: 'not now', retriable: false } }));
          }
          return response.end(JSON.stringify({ version: 2, brokers: [], topics: [] }));
        }
        response.end(JSON.stringify({ metadataVersion: 2 }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    let applied = 0;
    const link = startLink(server, async () => {
      applied++;
    });
    await expect.poll(() => link.loaded, { timeout: 5_000 }).toBe(true);

    failMetadata = true;
    const before = metadataGets;
    link.requestMetadataRefresh('test');
    await expect.poll(() => metadataGets, { timeout: 5_000 }).toBeGreaterThan(before);
    failMetadata = false;
    const appliedBefore = applied;
    await expect.poll(() => applied, { timeout: 5_000 }).toBe(appliedBefore + 1);
    // Owed once: no fetch on every heartbeat after it.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(applied).toBe(appliedBefore + 1);
  });
});
