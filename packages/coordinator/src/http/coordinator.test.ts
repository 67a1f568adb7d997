// Proves the coordinator's HTTP API end to end: a real coordinator in this process on an
// ephemeral port with a temp data dir, fake brokers registered by plain HTTP calls, and a tiny
// HTTP server standing in for brokers where the coordinator calls them (notifications, produce,
// a group's offsets).
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeFrame, decodeRecordBatch, openApiDocument, partitionForKey, responseSchemas, type ErrorBody, type GroupMembership, type InitProducerResponse, type MetadataResponse, type TopicDescription } from '@tessera/protocol';
import { defaultConfig, startCoordinator, type CoordinatorConfig, type RunningCoordinator } from '../index.js';

// ---- harness ---------------------------------------------------------------------------

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-coordinator-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function coordinator(overrides: Partial<CoordinatorConfig> = {}, dataDir = tempDir()): Promise<RunningCoordinator> {
  const running = await startCoordinator(
    // Client authentication has its own tests (auth.test.ts); these call the API anonymously.
    defaultConfig({ port: 0, dataDir, logLevel: 'silent', notifyTimeoutMs: 500, auth: false, ...overrides }),
  );
  let closed = false;
  cleanups.push(async () => {
    if (!closed) await running.close();
  });
  return {
    url: running.url,
    close: async () => {
      closed = true;
      await running.close();
    },
  };
}

interface Answer<T = unknown> {
  status: number;
  body: T;
}

async function call<T = any>(base: string, method: string, route: string, body?: unknown, raw?: string): Promise<Answer<T>> {
  const response = await fetch(`${base}${route}`, {
    method,
    headers: body === undefined && raw === undefined ? {} : { 'content-type': 'application/json' },
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
}

function errorCode(answer: Answer): string | undefined {
  return (answer.body as ErrorBody | undefined)?.error?.code;
}

/** A partition named in a call to a broker, with the offset to store (the coordinator's store of a group's offsets). */
type NamedPartition = { topic: string; partition: number; epoch?: number; offset?: number };

/** The routes of a group's offsets on a broker: committed offsets, the offset lookup, and the coordinator's store. */
const OFFSET_ROUTES = new Set(['/offsets', '/list-offsets', '/internal/group-offsets']);

/** Answers `res` as a broker refuses bad input: 400 INVALID_REQUEST with one issue. */
function refuseAsInvalid(res: http.ServerResponse, issue: { path: string; message: string }): void {
  res.statusCode = 400;
  res.end(JSON.stringify({ error: { code: 'INVALID_REQUEST', message: `invalid request body: ${issue.path}: ${issue.message}`, retriable: false, issues: [issue] } }));
}

/** As a broker of the release before partition epochs refuses them: its strict schema does not know the key. */
const EPOCH_UNKNOWN_KEY = { path: 'partitions.0', message: 'Unrecognized key: "epoch"' };

/**
 * A stand-in broker: answers metadata notifications, produce requests and a group's offsets calls,
 * recording them. Its partitions hold offsets 2 to 9; the offset lookup by time answers 5.
 * `behindOnce`: the first offsets call of each route naming epochs is answered UNKNOWN_EPOCH for
 * each partition, as by a broker that has not applied the map yet. `refusesGroup`: every offsets
 * call is refused as bad input for its group name (a refusal that does not concern epochs).
 * `refusesStore`: storing group offsets is refused for each partition (a full disk; read at each
 * call, so a test may clear it). `deposed`:
 * every offsets call is answered NOT_PRIMARY for each partition, as by a primary that stepped
 * down. `close` stops it, so calls to it are refused.
 */
async function fakeBroker(
  options: { notPrimaryFirst?: boolean; earlierRelease?: boolean; behindOnce?: boolean; refusesGroup?: boolean; refusesStore?: boolean; deposed?: boolean } = {},
) {
  const notifications: number[] = [];
  /** The epoch each produce request named for each of its partitions, in arrival order. */
  const epochs: Array<number | undefined> = [];
  const produced: Array<{ topic: string; partition: number; records: Array<{ key?: string | null; value: string }> }> = [];
  /** The offsets calls, in arrival order: the route, the partitions it named, and the group and generation it named. */
  const offsetCalls: Array<{ route: string; partitions: NamedPartition[]; group?: string; generation?: number }> = [];
  /** The group offsets the coordinator stored, by `topic/partition`. */
  const stored = new Map<string, number>();
  /** The epoch each purge call named, in arrival order. */
  const purgeEpochs: Array<number | undefined> = [];
  const behindOn = new Set<string>();
  const nextOffset = new Map<string, number>();
  let refusedOnce = false;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      res.setHeader('content-type', 'application/json');
      if (req.url === '/internal/metadata-changed') {
        const body = JSON.parse(raw.toString('utf8'));
        notifications.push(body.version);
        res.end(JSON.stringify({ version: body.version }));
        return;
      }
      // Produce as a broker takes it: a frame of RecordBatches per partition, answered per partition.
      if (req.url === '/produce') {
        const { head, tail } = decodeFrame(raw);
        const partitions = (head as { partitions: Array<{ topic: string; partition: number; epoch?: number; bytes: number }> }).partitions;
        for (const { epoch } of partitions) epochs.push(epoch);
        if (options.earlierRelease && partitions.some((p) => p.epoch !== undefined)) {
          refuseAsInvalid(res, EPOCH_UNKNOWN_KEY);
          return;
        }
        let at = 0;
        const answers = partitions.map(({ topic, partition, bytes }) => {
          const part = tail.subarray(at, at + bytes);
          at += bytes;
          if (options.notPrimaryFirst && !refusedOnce) {
            refusedOnce = true;
            return { topic, partition, error: { code: 'NOT_PRIMARY', message: 'not yet', retriable: true, primary: null } };
          }
          const records = decodeRecordBatch(part).records.map((r) => ({ key: r.key?.toString() ?? null, value: r.value!.toString() }));
          const key = `${topic}/${partition}`;
          const baseOffset = nextOffset.get(key) ?? 0;
          nextOffset.set(key, baseOffset + records.length);
          produced.push({ topic, partition, records });
          return { topic, partition, baseOffset, lastOffset: baseOffset + records.length - 1, epoch: 0 };
        });
        res.end(JSON.stringify({ partitions: answers }));
        return;
      }
      // A purge moves the log start to the HW (10); `behindOnce` and `earlierRelease` as for offsets calls.
      if (req.url === '/internal/purge') {
        const body = JSON.parse(raw.toString('utf8')) as { partition: number; epoch?: number };
        purgeEpochs.push(body.epoch);
        if (options.earlierRelease && body.epoch !== undefined) return refuseAsInvalid(res, { path: '', message: 'Unrecognized key: "epoch"' });
        if (options.behindOnce && body.epoch !== undefined && !behindOn.has(`purge ${body.partition}`)) {
          behindOn.add(`purge ${body.partition}`);
          res.statusCode = 409;
          res.end(JSON.stringify({ error: { code: 'UNKNOWN_EPOCH', message: 'this broker has not applied the map yet', retriable: true, epoch: 0 } }));
          return;
        }
        res.end(JSON.stringify({ logStartOffset: 10, highWatermark: 10 }));
        return;
      }
      if (OFFSET_ROUTES.has(req.url ?? '')) {
        const route = req.url!;
        const body = JSON.parse(raw.toString('utf8')) as { partitions?: NamedPartition[]; offsets?: NamedPartition[]; group?: string; generation?: number };
        const partitions = body.partitions ?? body.offsets ?? [];
        offsetCalls.push({ route, partitions, group: body.group, generation: body.generation });
        const namesEpochs = partitions.some((p) => p.epoch !== undefined);
        if (options.earlierRelease && namesEpochs) return refuseAsInvalid(res, EPOCH_UNKNOWN_KEY);
        if (options.refusesGroup) return refuseAsInvalid(res, { path: 'group', message: 'Too big: expected string to have <=200 characters' });
        if (options.deposed) {
          const refused = partitions.map(({ topic, partition }) => ({ topic, partition, error: { code: 'NOT_PRIMARY', message: 'stepped down', retriable: true, primary: null } }));
          res.end(JSON.stringify(route === '/internal/group-offsets' ? { results: refused } : { partitions: refused }));
          return;
        }
        const behind = options.behindOnce === true && namesEpochs && !behindOn.has(route);
        if (behind) behindOn.add(route);
        const error = behind ? { error: { code: 'UNKNOWN_EPOCH', message: 'this broker has not applied the map yet', retriable: true, epoch: 0 } } : {};
        const answers = partitions.map(({ topic, partition, offset }) => {
          const key = `${topic}/${partition}`;
          if (route === '/internal/group-offsets') {
            if (options.refusesStore) return { topic, partition, error: { code: 'STORAGE_FULL', message: 'the disk is full', retriable: true } };
            if (!behind) stored.set(key, offset!);
            return { topic, partition, ...error };
          }
          const position = { topic, partition, logStartOffset: 2, highWatermark: 10, ...error };
          return route === '/offsets' ? { ...position, offset: stored.get(key) ?? null } : { ...position, offset: 5, timestamp: 1_000 };
        });
        res.end(JSON.stringify(route === '/internal/group-offsets' ? { results: answers } : { partitions: answers }));
        return;
      }
      res.statusCode = 404;
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = () =>
    new Promise<void>((resolve) => {
      if (!server.listening) return resolve();
      server.close(() => resolve());
      server.closeAllConnections();
    });
  cleanups.push(close);
  return { url, notifications, produced, epochs, offsetCalls, stored, purgeEpochs, close };
}

/** A url that accepts connections and never answers: notifications to it must time out, not block. */
async function hangingUrl(): Promise<string> {
  const server = http.createServer(() => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A url nothing listens on: calls to it are refused at once. */
async function closedPortUrl(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** Polls `check` until it returns a value (no timing assertion: only an overall deadline). */
async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, deadlineMs = 10_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() - start > deadlineMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function register(base: string, id: number, url: string) {
  const answer = await call(base, 'POST', '/brokers/register', { id, url });
  expect(answer.status).toBe(200);
  return answer.body;
}

/** Keeps the given brokers heartbeating until stopped. */
function heartbeats(base: string, brokers: Map<number, string>, everyMs = 30) {
  const timer = setInterval(() => {
    for (const [id, url] of brokers) void call(base, 'POST', '/brokers/heartbeat', { id, url, replicas: [] }).catch(() => {});
  }, everyMs);
  cleanups.push(() => clearInterval(timer));
  return { stop: () => clearInterval(timer) };
}

// ---- topics ----------------------------------------------------------------------------

describe('topics', () => {
  it('creates balanced topics, notifies live brokers (ignoring failures), lists, describes and deletes', async () => {
    const c = await coordinator();
    const broker = await fakeBroker();
    await register(c.url, 1, broker.url);
    await register(c.url, 2, broker.url);
    await register(c.url, 3, await closedPortUrl());
    await register(c.url, 4, await hangingUrl());

    const created = await call<TopicDescription>(c.url, 'POST', '/topics', { name: 'orders', partitions: 12 });
    expect(created.status).toBe(201);
    expect(created.body.replicationFactor).toBe(2);
    expect(created.body.config.minInsyncReplicas).toBe(1);
    for (const id of [1, 2, 3, 4]) {
      expect(created.body.partitions.filter((p) => p.primary === id)).toHaveLength(3);
      expect(created.body.partitions.filter((p) => p.primary === id || p.secondary === id)).toHaveLength(6);
    }
    for (const p of created.body.partitions) {
      expect(p.secondary).not.toBe(p.primary);
      expect(p).toMatchObject({ epoch: 0, isr: [p.primary, p.secondary], status: 'online', highWatermark: null });
    }
    const metadata = await call<MetadataResponse>(c.url, 'GET', '/metadata');
    // Both registrations reached the fake broker's url; the closed port's and the silent broker's failures were ignored.
    expect(broker.notifications).toEqual([metadata.body.version, metadata.body.version]);

    const single = await call<TopicDescription>(c.url, 'POST', '/topics', { name: 'logs', partitions: 2, replicationFactor: 1 });
    expect(single.status).toBe(201);
    for (const p of single.body.partitions) expect(p).toMatchObject({ secondary: null, isr: [p.primary] });

    expect(errorCode(await call(c.url, 'POST', '/topics', { name: 'orders', partitions: 1 }))).toBe('TOPIC_EXISTS');
    expect((await call(c.url, 'GET', '/topics')).body).toEqual({
      topics: [
        { name: 'logs', partitions: 2, replicationFactor: 1 },
        { name: 'orders', partitions: 12, replicationFactor: 2 },
      ],
    });
    const filtered = await call<MetadataResponse>(c.url, 'GET', '/metadata?topics=logs');
    expect(filtered.body.topics.map((t) => t.name)).toEqual(['logs']);
    expect(filtered.body.brokers.map((b) => b.id)).toEqual([1, 2, 3, 4]);
    expect((await call(c.url, 'GET', '/topics/orders')).body).toEqual(created.body);

    const before = (await call<MetadataResponse>(c.url, 'GET', '/metadata')).body.version;
    expect((await call(c.url, 'DELETE', '/topics/orders')).status).toBe(204);
    expect(errorCode(await call(c.url, 'GET', '/topics/orders'))).toBe('TOPIC_NOT_FOUND');
    expect(errorCode(await call(c.url, 'DELETE', '/topics/orders'))).toBe('TOPIC_NOT_FOUND');
    const after = (await call<MetadataResponse>(c.url, 'GET', '/metadata')).body.version;
    expect(after).toBeGreaterThan(before);
    expect(broker.notifications.at(-1)).toBe(after);

    const events = (await call(c.url, 'GET', '/cluster/events?limit=3')).body.events;
    expect(events.map((e: { type: string }) => e.type)).toEqual(['topic_created', 'topic_created', 'topic_deleted']);
  });

  it('shows retention in force (the topic\'s own or the cluster default), alters it, keeps it across a restart, and refuses bad settings', async () => {
    const dataDir = tempDir();
    let c = await coordinator({ defaultRetentionMs: 60_000, defaultRetentionBytes: -1 }, dataDir);
    const broker = await fakeBroker();
    await register(c.url, 1, broker.url);
    await register(c.url, 2, broker.url);
    const created = await call<TopicDescription>(c.url, 'POST', '/topics', { name: 'kept', partitions: 1, config: { retentionBytes: 1_000_000 } });
    expect(created.body.config).toEqual({ minInsyncReplicas: 1, retentionMs: 60_000, retentionBytes: 1_000_000 });
    expect((await call<TopicDescription>(c.url, 'POST', '/topics', { name: 'plain', partitions: 1 })).body.config).toEqual({
      minInsyncReplicas: 1,
      retentionMs: 60_000,
      retentionBytes: -1,
    });

    const before = (await call<MetadataResponse>(c.url, 'GET', '/metadata')).body.version;
    const altered = await call<TopicDescription>(c.url, 'PATCH', '/topics/kept', { config: { retentionMs: -1 } });
    expect(altered.status).toBe(200);
    expect(altered.body.config).toEqual({ minInsyncReplicas: 1, retentionMs: -1, retentionBytes: 1_000_000 });
    // The brokers hear of it with the next map, at once.
    const metadata = (await call<MetadataResponse>(c.url, 'GET', '/metadata')).body;
    expect(metadata.version).toBeGreaterThan(before);
    expect(metadata.topics.find((t) => t.name === 'kept')!.config).toEqual(altered.body.config);
    expect(broker.notifications.at(-1)).toBe(metadata.version);

    for (const [body, status, code] of [
      [{ config: {} }, 400, 'INVALID_REQUEST'],
      [{ config: { retentionMs: -2 } }, 400, 'INVALID_REQUEST'],
      [{ config: { retentionBytes: 1.5 } }, 400, 'INVALID_REQUEST'],
      [{ config: { minInsyncReplicas: 2 } }, 400, 'INVALID_REQUEST'],
      [{ retentionMs: 5 }, 400, 'INVALID_REQUEST'],
    ] as const) {
      const answer = await call(c.url, 'PATCH', '/topics/kept', body);
      expect([answer.status, errorCode(answer)], JSON.stringify(body)).toEqual([status, code]);
    }
    expect(errorCode(await call(c.url, 'PATCH', '/topics/missing', { config: { retentionMs: 1 } }))).toBe('TOPIC_NOT_FOUND');
    expect(errorCode(await call(c.url, 'POST', '/topics/missing/purge'))).toBe('TOPIC_NOT_FOUND');

    await c.close();
    c = await coordinator({ defaultRetentionMs: 120_000, defaultRetentionBytes: -1 }, dataDir);
    // A topic's own settings stay; one that sets none follows the cluster's new default.
    expect((await call<TopicDescription>(c.url, 'GET', '/topics/kept')).body.config).toEqual({ minInsyncReplicas: 1, retentionMs: -1, retentionBytes: 1_000_000 });
    expect((await call<TopicDescription>(c.url, 'GET', '/topics/plain')).body.config.retentionMs).toBe(120_000);
  });

  it('refuses a replication factor above the live broker count with 503 NOT_ENOUGH_BROKERS', async () => {
    const c = await coordinator();
    await register(c.url, 1, await closedPortUrl());
    const answer = await call(c.url, 'POST', '/topics', { name: 't', partitions: 1, replicationFactor: 2 });
    expect(answer.status).toBe(503);
    expect(errorCode(answer)).toBe('NOT_ENOUGH_BROKERS');
  });
});

// ---- validation --------------------------------------------------------------------------

describe('validation at the edge', () => {
  it('answers bad input with a 4xx error body and stays up', async () => {
    const c = await coordinator();
    await register(c.url, 1, await closedPortUrl());
    const cases: Array<[Answer, number, string]> = [
      [await call(c.url, 'POST', '/topics', { name: 'a b', partitions: 1, replicationFactor: 1 }), 400, 'INVALID_REQUEST'],
      [await call(c.url, 'POST', '/topics', { name: 'ok', partitions: 0, replicationFactor: 1 }), 400, 'INVALID_REQUEST'],
      [await call(c.url, 'POST', '/topics', { name: 'ok', partitions: 1025, replicationFactor: 1 }), 400, 'INVALID_REQUEST'],
      [await call(c.url, 'POST', '/topics', { name: 'ok', partitions: 1, replicationFactor: 3 }), 400, 'INVALID_REQUEST'],
      [
        await call(c.url, 'POST', '/topics', { name: 'ok', partitions: 1, replicationFactor: 1, config: { minInsyncReplicas: 2 } }),
        400,
        'INVALID_REQUEST',
      ],
      [await call(c.url, 'POST', '/topics', undefined, '{"name": "x", '), 400, 'INVALID_REQUEST'],
      [await call(c.url, 'POST', '/topics', undefined, ''), 400, 'INVALID_REQUEST'],
      [await call(c.url, 'POST', '/topics', undefined, JSON.stringify({ name: 'big', pad: 'x'.repeat(17 * 1024 * 1024) })), 413, 'PAYLOAD_TOO_LARGE'],
      [await call(c.url, 'GET', `/topics/${encodeURIComponent('no/pe')}`), 400, 'INVALID_REQUEST'],
      [await call(c.url, 'GET', `/topics/${'x'.repeat(201)}`), 400, 'INVALID_REQUEST'],
      [await call(c.url, 'GET', '/metadata?topics=ok,b%20ad'), 400, 'INVALID_REQUEST'],
      [await call(c.url, 'GET', '/cluster/events?limit=0'), 400, 'INVALID_REQUEST'],
      [await call(c.url, 'POST', '/brokers/register', { id: -1, url: 'http://127.0.0.1:1' }), 400, 'INVALID_REQUEST'],
      [await call(c.url, 'POST', '/brokers/heartbeat', { id: 1, url: 'not a url', replicas: [] }), 400, 'INVALID_REQUEST'],
      [await call(c.url, 'POST', '/topics/missing/records', { records: [{ value: 'v' }] }), 404, 'TOPIC_NOT_FOUND'],
      [await call(c.url, 'POST', '/topics/missing/records', { records: [] }), 400, 'INVALID_REQUEST'],
      [await call(c.url, 'POST', '/groups/g/join', { topic: 'missing' }), 404, 'TOPIC_NOT_FOUND'],
      [await call(c.url, 'POST', '/groups/b%20ad/join', { topic: 'missing' }), 400, 'INVALID_REQUEST'],
      // A push subscription's own group: its brokers commit its progress, no member may join it.
      [await call(c.url, 'POST', '/groups/subscription.s.0a1b2c3d/join', { topic: 'missing' }), 400, 'INVALID_REQUEST'],
      [await call(c.url, 'POST', '/groups/subscription.s.0a1b2c3d/reset-offsets', { topic: 'missing', to: 'earliest' }), 400, 'INVALID_REQUEST'],
      [await call(c.url, 'GET', '/groups/nobody'), 404, 'GROUP_NOT_FOUND'],
      [await call(c.url, 'GET', '/no/such/route'), 404, 'NOT_FOUND'],
    ];
    for (const [i, [answer, status, code]] of cases.entries()) {
      expect({ case: i, status: answer.status, code: errorCode(answer) }).toEqual({ case: i, status, code });
      expect(typeof (answer.body as ErrorBody).error.message).toBe('string');
    }
    expect((await call(c.url, 'GET', '/topics')).body).toEqual({ topics: [] });
    expect((await call(c.url, 'GET', '/health')).status).toBe(200);
  });
});

// ---- ISR changes -------------------------------------------------------------------------

describe('ISR changes', () => {
  it('accepts shrink and expand from the primary at the current epoch, refuses the rest', async () => {
    const c = await coordinator();
    const closed = await closedPortUrl();
    await register(c.url, 1, closed);
    await register(c.url, 2, closed);
    const topic = (await call<TopicDescription>(c.url, 'POST', '/topics', { name: 't', partitions: 1 })).body;
    const { primary, secondary } = topic.partitions[0] as { primary: number; secondary: number };
    const ask = (over: Record<string, unknown>) =>
      call(c.url, 'POST', '/partitions/isr', { brokerId: primary, topic: 't', partition: 0, epoch: 0, isr: [primary], ...over });

    const stale = await ask({ epoch: 1 });
    expect(stale.status).toBe(409);
    expect(stale.body).toMatchObject({ error: { code: 'STALE_EPOCH', epoch: 0 } });
    const notPrimary = await ask({ brokerId: secondary, isr: [secondary] });
    expect(notPrimary.status).toBe(421);
    expect(notPrimary.body).toMatchObject({ error: { code: 'NOT_PRIMARY', primary: { id: primary, url: closed } } });
    expect(errorCode(await ask({ isr: [secondary] }))).toBe('INVALID_REQUEST');
    expect(errorCode(await ask({ isr: [primary, 99] }))).toBe('INVALID_REQUEST');
    expect(errorCode(await ask({ partition: 5 }))).toBe('PARTITION_NOT_FOUND');
    expect(errorCode(await ask({ topic: 'other' }))).toBe('TOPIC_NOT_FOUND');

    const version = (await call<MetadataResponse>(c.url, 'GET', '/metadata')).body.version;
    const shrunk = await ask({});
    expect(shrunk.status).toBe(200);
    expect(shrunk.body).toEqual({ partition: 0, primary, secondary, epoch: 0, isr: [primary], version: 1 });
    const meta = (await call<MetadataResponse>(c.url, 'GET', '/metadata')).body;
    expect(meta.version).toBe(version + 1);
    expect(meta.topics[0].partitions[0].isr).toEqual([primary]);
    expect((await call(c.url, 'GET', '/topics/t')).body.partitions[0].status).toBe('under-replicated');
    expect((await call(c.url, 'GET', '/cluster/status')).body).toMatchObject({ underReplicated: 1, offline: 0 });

    // An expansion decided before the shrink (a delayed or replayed request) must not undo it.
    const delayed = await ask({ isr: [primary, secondary], version: 0 });
    expect(delayed.status).toBe(409);
    expect(delayed.body).toMatchObject({ error: { code: 'STALE_ASSIGNMENT', version: 1, retriable: true } });
    const expanded = await ask({ isr: [secondary, primary], version: 1 });
    expect(expanded.body).toEqual({ partition: 0, primary, secondary, epoch: 0, isr: [primary, secondary], version: 2 });
    // Asked again with the version it decided on (its answer was lost): the same assignment.
    expect((await ask({ isr: [primary, secondary], version: 1 })).body).toEqual(expanded.body);
    // After a later shrink, that same request is refused; a shrink needs no version (it only removes).
    expect((await ask({ version: 0 })).body).toMatchObject({ isr: [primary], version: 3 });
    expect(errorCode(await ask({ isr: [primary, secondary], version: 1 }))).toBe('STALE_ASSIGNMENT');
    // The primary restarts (registers again) having forgotten an expansion it asked for at version
    // 3: that request, arriving late, is refused, since the restarted primary acknowledged alone.
    await register(c.url, primary, closed);
    expect(errorCode(await ask({ isr: [primary, secondary], version: 3 }))).toBe('STALE_ASSIGNMENT');
    expect((await ask({ isr: [primary, secondary], version: 4 })).body).toMatchObject({ isr: [primary, secondary], version: 5 });
    const events = (await call(c.url, 'GET', '/cluster/events?limit=4')).body.events;
    expect(events.map((e: { type: string; isr: number[] }) => [e.type, e.isr])).toEqual([
      ['isr_change', [primary]],
      ['isr_change', [primary, secondary]],
      ['isr_change', [primary]],
      ['isr_change', [primary, secondary]],
    ]);
  });
});

// ---- failover ----------------------------------------------------------------------------

describe('failover', () => {
  it('promotes in-sync secondaries of a silent broker, takes partitions without a live ISR member offline, and recovers them', async () => {
    // A generous timeout: on a loaded machine the live brokers' heartbeats must never look like silence.
    const c = await coordinator({ heartbeatMs: 50, brokerTimeoutMs: 1_500 });
    const broker = await fakeBroker();
    const urls = new Map([
      [1, broker.url],
      [2, broker.url],
      [3, broker.url],
    ]);
    for (const [id, url] of urls) await register(c.url, id, url);
    const live = heartbeats(c.url, new Map([...urls].filter(([id]) => id !== 1)));
    const silent = heartbeats(c.url, new Map([[1, broker.url]]));
    const before = (await call<TopicDescription>(c.url, 'POST', '/topics', { name: 't', partitions: 6 })).body;
    const led = before.partitions.filter((p) => p.primary === 1);
    expect(led.length).toBe(2);
    // One partition led by broker 1 loses its secondary from the ISR first: it must go offline, not fail over.
    const outOfSync = led[0];
    await call(c.url, 'POST', '/partitions/isr', { brokerId: 1, topic: 't', partition: outOfSync.partition, epoch: 0, isr: [1] });
    const versionBefore = (await call<MetadataResponse>(c.url, 'GET', '/metadata')).body.version;

    silent.stop();
    const after = await waitFor('broker 1 declared dead', async () => {
      const meta = (await call<MetadataResponse>(c.url, 'GET', '/metadata')).body;
      return meta.brokers.find((b) => b.id === 1)?.alive === false ? meta : undefined;
    });
    expect(after.version).toBeGreaterThan(versionBefore);
    const parts = after.topics[0].partitions;
    const promoted = parts[led[1].partition];
    expect(promoted.primary).toBe(led[1].secondary);
    expect(promoted.epoch).toBe(1);
    expect(promoted.isr).toEqual([promoted.primary]);
    expect(promoted.secondary).not.toBeNull();
    expect([1, promoted.primary]).not.toContain(promoted.secondary);
    expect(parts[outOfSync.partition]).toMatchObject({ primary: null, epoch: 1, isr: [] });
    // Partitions broker 1 did not lead keep their epoch.
    for (const p of parts) if (before.partitions[p.partition].primary !== 1) expect(p.epoch).toBe(0);
    const status = (await call(c.url, 'GET', '/cluster/status')).body;
    expect(status.offlinePartitions).toEqual([{ topic: 't', partition: outOfSync.partition }]);
    expect((await call(c.url, 'GET', '/topics/t')).body.partitions[outOfSync.partition].status).toBe('offline');
    const types = (await call(c.url, 'GET', '/cluster/events')).body.events.map((e: { type: string }) => e.type);
    expect(types).toContain('broker_down');
    expect(types).toContain('failover');
    expect(types).toContain('partition_offline');
    const metrics = await (await fetch(`${c.url}/metrics`)).text();
    expect(metrics).toContain('tessera_coordinator_failovers_total 1');
    expect(metrics).toContain('tessera_coordinator_partitions{state="offline"} 1');
    expect(metrics).toContain('tessera_coordinator_brokers{state="dead"} 1');
    // Notifications went out for the failover with the new version.
    await waitFor('failover notification', async () => broker.notifications.includes(after.version));

    // Broker 1 returns: it was the only ISR member of the offline partition, so it leads it again.
    heartbeats(c.url, new Map([[1, broker.url]]));
    const recovered = await waitFor('offline partition recovered', async () => {
      const p = (await call<MetadataResponse>(c.url, 'GET', '/metadata')).body.topics[0].partitions[outOfSync.partition];
      return p.primary !== null ? p : undefined;
    });
    expect(recovered).toMatchObject({ primary: 1, epoch: 2, isr: [1] });
    expect(recovered.secondary).not.toBe(1);

    // Made again under its name, the topic starts above every epoch the deleted one had, so a
    // broker that missed the deletion can tell its old replicas from the new topic's.
    expect((await call(c.url, 'DELETE', '/topics/t')).status).toBe(204);
    const again = (await call<TopicDescription>(c.url, 'POST', '/topics', { name: 't', partitions: 6 })).body;
    for (const p of again.partitions) expect(p.epoch).toBe(3);
    expect((await call<MetadataResponse>(c.url, 'GET', '/metadata')).body.topics[0]).toMatchObject({ name: 't', firstEpoch: 3 });
    // Other names start there too: the floor is one number, above every deleted topic's epochs.
    const other = (await call<TopicDescription>(c.url, 'POST', '/topics', { name: 'u', partitions: 1 })).body;
    expect(other.partitions[0].epoch).toBe(3);
    live.stop();
  });

  it('reports a partition whose secondary died as under-replicated even while its ISR still lists it', async () => {
    // An idle partition's primary never needs to shrink the ISR, so the dead secondary stays
    // listed in it; operators must still see that only one live copy is left.
    const c = await coordinator({ heartbeatMs: 50, brokerTimeoutMs: 1_500 });
    const broker = await fakeBroker();
    for (const id of [1, 2]) await register(c.url, id, broker.url);
    const live = heartbeats(c.url, new Map([[1, broker.url]]));
    const silent = heartbeats(c.url, new Map([[2, broker.url]]));
    const created = (await call<TopicDescription>(c.url, 'POST', '/topics', { name: 'idle', partitions: 2 })).body;
    expect(created.partitions.every((p) => p.status === 'online')).toBe(true);
    const secondaryOnTwo = created.partitions.find((p) => p.secondary === 2)!;

    silent.stop();
    const status = await waitFor('broker 2 declared dead', async () => {
      const body = (await call(c.url, 'GET', '/cluster/status')).body;
      return body.brokers.find((b: { id: number; alive: boolean }) => b.id === 2)?.alive === false ? body : undefined;
    });
    const described = (await call<TopicDescription>(c.url, 'GET', '/topics/idle')).body.partitions[secondaryOnTwo.partition];
    expect(described.isr).toEqual([1, 2]);
    expect(described.status).toBe('under-replicated');
    expect(status.underReplicatedPartitions).toContainEqual({ topic: 'idle', partition: secondaryOnTwo.partition });
    live.stop();
  });

  it('after a restart declares no broker dead before one is heard, then gives the others a full brokerTimeoutMs from then', async () => {
    // Brokers that start after the coordinator (compose waits for its health check) must not
    // find every partition offline; a broker that never returns is still declared dead.
    const dataDir = tempDir();
    const first = await coordinator({ heartbeatMs: 20, brokerTimeoutMs: 300 }, dataDir);
    const broker = await fakeBroker();
    await register(first.url, 1, broker.url);
    await register(first.url, 2, broker.url);
    await call(first.url, 'POST', '/topics', { name: 't', partitions: 2 });
    await first.close();

    const second = await coordinator({ heartbeatMs: 20, brokerTimeoutMs: 300, brokerStartGraceMs: 60_000 }, dataDir);
    // Several broker timeouts without a single heartbeat: nobody is declared dead.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const quiet = (await call(second.url, 'GET', '/cluster/status')).body;
    expect(quiet.brokers.map((b: { alive: boolean }) => b.alive)).toEqual([true, true]);
    expect(quiet.offline).toBe(0);

    heartbeats(second.url, new Map([[1, broker.url]]));
    await waitFor('broker 2 declared dead once broker 1 was heard', async () => {
      const brokers = (await call(second.url, 'GET', '/brokers')).body.brokers;
      return brokers.find((b: { id: number; alive: boolean }) => b.id === 2)?.alive === false;
    });
    const status = (await call(second.url, 'GET', '/cluster/status')).body;
    expect(status.brokers.find((b: { id: number }) => b.id === 1).alive).toBe(true);
    // Broker 1 leads everything now, but broker 2 is dead: nothing to balance with.
    expect(status.offline).toBe(0);
  });

  it('gives every known broker a full brokerTimeoutMs of grace after a restart and restores every partition', async () => {
    const dataDir = tempDir();
    const first = await coordinator({ brokerTimeoutMs: 60_000 }, dataDir);
    const closed = await closedPortUrl();
    await register(first.url, 1, closed);
    await register(first.url, 2, closed);
    await call(first.url, 'POST', '/topics', { name: 't', partitions: 3 });
    await call(first.url, 'POST', '/topics', { name: 'u', partitions: 2, replicationFactor: 1, config: { minInsyncReplicas: 1 } });
    await call(first.url, 'POST', '/partitions/isr', { brokerId: 1, topic: 't', partition: 0, epoch: 0, isr: [1] });
    await call(first.url, 'POST', '/groups/g/join', { topic: 't', memberId: 'member-a' });
    const metadata = (await call<MetadataResponse>(first.url, 'GET', '/metadata')).body;
    const group = (await call(first.url, 'GET', '/groups/g')).body;
    await first.close();

    const second = await coordinator({ brokerTimeoutMs: 60_000 }, dataDir);
    expect((await call(second.url, 'GET', '/metadata')).body).toEqual(metadata);
    expect((await call(second.url, 'GET', '/groups/g')).body).toEqual(group);
    const brokers = (await call(second.url, 'GET', '/brokers')).body.brokers;
    expect(brokers.map((b: { alive: boolean; lastHeartbeatAgoMs: number | null }) => [b.alive, b.lastHeartbeatAgoMs])).toEqual([
      [true, null],
      [true, null],
    ]);
    // The member's session also survived: it can heartbeat at once without rejoining.
    const beat = await call<GroupMembership>(second.url, 'POST', '/groups/g/heartbeat', { memberId: 'member-a', generation: group.generation });
    expect(beat.status).toBe(200);
    expect(beat.body.assignment).toEqual([0, 1, 2]);
  });
});

// ---- groups ------------------------------------------------------------------------------

describe('consumer groups', () => {
  it('joins, rebalances through acknowledgements, leaves, and times out members', async () => {
    const c = await coordinator({ groupSessionTimeoutMs: 60_000 });
    const brokerUrl = await closedPortUrl();
    await register(c.url, 1, brokerUrl);
    await call(c.url, 'POST', '/topics', { name: 't', partitions: 4, replicationFactor: 1 });
    await call(c.url, 'POST', '/topics', { name: 'other', partitions: 1, replicationFactor: 1 });
    const join = (body: Record<string, unknown>) => call<GroupMembership>(c.url, 'POST', '/groups/g/join', { topic: 't', ...body });
    const beat = (m: GroupMembership) =>
      call<GroupMembership>(c.url, 'POST', '/groups/g/heartbeat', { memberId: m.memberId, generation: m.generation });

    let a = (await join({ clientId: 'a' })).body;
    expect(a).toMatchObject({ group: 'g', topic: 't', generation: 1, assignment: [0, 1, 2, 3], members: 1 });
    expect(a.memberId.startsWith('a-')).toBe(true);
    let b = (await join({ clientId: 'b' })).body;
    expect(b.generation).toBe(2);
    expect(b.assignment).toEqual([]); // a still holds everything
    a = (await beat(a)).body; // sees generation 2: half of its partitions are leaving
    expect(a.generation).toBe(2);
    expect(a.assignment).toHaveLength(2);
    a = (await beat(a)).body; // acknowledges generation 2: releases two partitions, generation 3
    expect(a.generation).toBe(3);
    b = (await beat(b)).body;
    expect(b.assignment).toHaveLength(2);
    expect([...a.assignment, ...b.assignment].sort()).toEqual([0, 1, 2, 3]);

    const brokerBeat = await call(c.url, 'POST', '/brokers/heartbeat', { id: 1, url: brokerUrl, replicas: [] });
    expect(brokerBeat.body.groups).toEqual({ g: 3 });
    expect((await call(c.url, 'GET', '/groups')).body).toEqual({ groups: [{ group: 'g', topic: 't', generation: 3, members: 2, emptySinceMs: null }] });

    expect(errorCode(await call(c.url, 'POST', '/groups/g/join', { topic: 'other' }))).toBe('INVALID_REQUEST');
    expect((await call(c.url, 'POST', '/groups/g/leave', { memberId: a.memberId })).status).toBe(204);
    const gone = await beat(a);
    expect(gone.status).toBe(409);
    expect(errorCode(gone)).toBe('UNKNOWN_MEMBER');
    b = (await beat(b)).body;
    expect(b.generation).toBe(4);
    expect(b.assignment).toEqual([0, 1, 2, 3]);

    // A member with a short session that stops heartbeating is removed, and its partitions freed.
    const c3 = (await join({ clientId: 'short', sessionTimeoutMs: 100 })).body;
    expect(c3.members).toBe(2);
    await waitFor('short-session member removed', async () => {
      b = (await beat(b)).body;
      return b.members === 1 ? true : undefined;
    });
    expect(errorCode(await beat(c3))).toBe('UNKNOWN_MEMBER');
    const described = (await call(c.url, 'GET', '/groups/g')).body;
    expect(described.members).toEqual([{ memberId: b.memberId, clientId: 'b', partitions: [0, 1, 2, 3] }]);
    expect(described.unassigned).toEqual([]);

    // Once empty, the group may consume another topic; its generation keeps counting up.
    expect((await call(c.url, 'POST', '/groups/g/leave', { memberId: b.memberId })).status).toBe(204);
    const moved = await call<GroupMembership>(c.url, 'POST', '/groups/g/join', { topic: 'other' });
    expect(moved.body).toMatchObject({ topic: 'other', assignment: [0] });
    expect(moved.body.generation).toBeGreaterThan(b.generation);
  });
});

// ---- group offset resets ---------------------------------------------------------------------

describe('group offset resets', () => {
  /** A coordinator with `broker` as its only broker, and topic `r` (two partitions) deleted and made again, so its epochs are not 0. */
  async function remadeTopic(broker: { url: string }) {
    const c = await coordinator();
    await register(c.url, 1, broker.url);
    // Alive however long a test takes (a broker without heartbeats is declared dead after 3 s).
    heartbeats(c.url, new Map([[1, broker.url]]));
    await call(c.url, 'POST', '/topics', { name: 'r', partitions: 2, replicationFactor: 1 });
    expect((await call(c.url, 'DELETE', '/topics/r')).status).toBe(204);
    await call(c.url, 'POST', '/topics', { name: 'r', partitions: 2, replicationFactor: 1 });
    const epochs = (await call<MetadataResponse>(c.url, 'GET', '/metadata')).body.topics[0].partitions.map((p) => p.epoch);
    expect(epochs.every((epoch) => epoch > 0)).toBe(true);
    return { c, epochs };
  }
  const toTime = { topic: 'r', target: { to: 'timestamp', timestamp: 1_000 }, execute: true };
  /** Each offsets call as its route and the epochs it named. */
  const named = (calls: Array<{ route: string; partitions: NamedPartition[] }>) => calls.map(({ route, partitions }) => [route, partitions.map((p) => p.epoch)]);

  it("names each partition's epoch in the coordinator's map in every call of a reset and a delete to its primary", async () => {
    const broker = await fakeBroker();
    const { c, epochs } = await remadeTopic(broker);
    const reset = await call(c.url, 'POST', '/groups/g/reset-offsets', toTime);
    expect(reset.status).toBe(200);
    expect(reset.body.partitions.map((p: { target: number }) => p.target)).toEqual([5, 5]);
    expect((await call(c.url, 'DELETE', '/groups/g')).status).toBe(204);
    expect(named(broker.offsetCalls)).toEqual([
      ['/offsets', epochs],
      ['/list-offsets', epochs],
      ['/internal/group-offsets', epochs],
      ['/internal/group-offsets', epochs],
    ]);
    expect([...broker.stored]).toEqual([
      ['r/0', -1],
      ['r/1', -1],
    ]);
  });

  it('tries each call a primary refused with UNKNOWN_EPOCH (behind the map) again, and the reset then succeeds', async () => {
    const broker = await fakeBroker({ behindOnce: true });
    const { c, epochs } = await remadeTopic(broker);
    const reset = await call(c.url, 'POST', '/groups/g/reset-offsets', toTime);
    expect(reset.status).toBe(200);
    expect(reset.body).toMatchObject({ executed: true, partitions: [{ partition: 0, target: 5 }, { partition: 1, target: 5 }] });
    expect(named(broker.offsetCalls)).toEqual([
      ['/offsets', epochs],
      ['/offsets', epochs],
      ['/list-offsets', epochs],
      ['/list-offsets', epochs],
      ['/internal/group-offsets', epochs],
      ['/internal/group-offsets', epochs],
    ]);
    expect([...broker.stored]).toEqual([
      ['r/0', 5],
      ['r/1', 5],
    ]);
  });

  it('sends a broker of an earlier release, which refuses the epoch field, the call again without it, and its next calls without it too', async () => {
    const broker = await fakeBroker({ earlierRelease: true });
    const { c, epochs } = await remadeTopic(broker);
    expect((await call(c.url, 'POST', '/groups/g/reset-offsets', toTime)).status).toBe(200);
    expect((await call(c.url, 'POST', '/groups/g/reset-offsets', { ...toTime, target: { to: 'earliest' } })).status).toBe(200);
    const none = [undefined, undefined];
    expect(named(broker.offsetCalls)).toEqual([
      ['/offsets', epochs],
      ['/offsets', none],
      ['/list-offsets', none],
      ['/internal/group-offsets', none],
      ['/offsets', none],
      ['/internal/group-offsets', none],
    ]);
    expect([...broker.stored]).toEqual([
      ['r/0', 2],
      ['r/1', 2],
    ]);
  });

  it('answers a reset one primary refused only once every other primary is done storing it', async () => {
    // Answered earlier, the group would be free while the other primary's tries go on storing
    // the reset's offsets, over what the group's next owner (or a delete) stores.
    const full = await fakeBroker({ refusesStore: true });
    const behind = await fakeBroker({ behindOnce: true });
    const c = await coordinator();
    await register(c.url, 1, full.url);
    await register(c.url, 2, behind.url);
    heartbeats(c.url, new Map([[1, full.url], [2, behind.url]]));
    await call(c.url, 'POST', '/topics', { name: 'r', partitions: 2, replicationFactor: 1 });
    const primaries = (await call<MetadataResponse>(c.url, 'GET', '/metadata')).body.topics[0].partitions.map((p) => p.primary);
    expect([...primaries].sort()).toEqual([1, 2]);
    const reset = await call(c.url, 'POST', '/groups/g/reset-offsets', toTime);
    expect(errorCode(reset)).toBe('STORAGE_FULL');
    // A full disk is not a failover: the store it refused is not sent again.
    expect(full.offsetCalls.filter((sent) => sent.route === '/internal/group-offsets')).toHaveLength(1);
    expect([...behind.stored]).toEqual([[`r/${primaries.indexOf(2)}`, 5]]);
    const calls = behind.offsetCalls.length;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(behind.offsetCalls.length).toBe(calls);
  });

  it("names each partition's epoch in a purge, asks a primary behind the map again, and leaves the epoch out for a broker of an earlier release", async () => {
    const behind = await fakeBroker({ behindOnce: true });
    const { c, epochs } = await remadeTopic(behind);
    const purged = await call(c.url, 'POST', '/topics/r/purge');
    expect(purged.status).toBe(200);
    expect(purged.body.partitions).toEqual([
      { partition: 0, logStartOffset: 10, highWatermark: 10 },
      { partition: 1, logStartOffset: 10, highWatermark: 10 },
    ]);
    // Each partition refused once (UNKNOWN_EPOCH), then purged: four calls, each naming its epoch.
    expect([...behind.purgeEpochs].sort()).toEqual([epochs[0], epochs[0], epochs[1], epochs[1]].sort());

    const earlier = await fakeBroker({ earlierRelease: true });
    const remade = await remadeTopic(earlier);
    expect((await call(remade.c.url, 'POST', '/topics/r/purge')).status).toBe(200);
    // Refused with the field, then without it; a minute passes before it is named to that broker again.
    expect(earlier.purgeEpochs.filter((epoch) => epoch === undefined)).toHaveLength(2);
    expect(earlier.purgeEpochs.filter((epoch) => epoch !== undefined).length).toBeGreaterThanOrEqual(1);
  });

  /**
   * A coordinator with brokers 1 (`first`) and 2 (`second`), each heartbeating on its own, and
   * topic `r` (two partitions, both brokers in each ISR): `moved` is the partition broker 1 leads,
   * which fails over to broker 2 once broker 1 is silent (`silence`) for the broker timeout.
   */
  async function failingOver(first: { url: string }, second: { url: string }) {
    const c = await coordinator({ heartbeatMs: 50, brokerTimeoutMs: 1_500 });
    await register(c.url, 1, first.url);
    await register(c.url, 2, second.url);
    const beats = heartbeats(c.url, new Map([[1, first.url]]));
    heartbeats(c.url, new Map([[2, second.url]]));
    await call(c.url, 'POST', '/topics', { name: 'r', partitions: 2, replicationFactor: 2 });
    const before = (await call<MetadataResponse>(c.url, 'GET', '/metadata')).body.topics[0].partitions;
    const moved = before.find((p) => p.primary === 1)!;
    expect(moved).toMatchObject({ secondary: 2, isr: expect.arrayContaining([1, 2]) });
    const after = async () => (await call<MetadataResponse>(c.url, 'GET', '/metadata')).body.topics[0].partitions;
    return { c, moved, silence: () => beats.stop(), after };
  }

  it('sends a reset its primary refuses with NOT_PRIMARY during a failover again to the new primary at the new epoch, and stores it there', async () => {
    // Broker 1 stepped down and then falls silent: until the coordinator fails its partition
    // over, its tries go to broker 1 and are refused; then they go to broker 2, at the new epoch.
    const first = await fakeBroker({ deposed: true });
    const second = await fakeBroker();
    const { c, moved, silence, after } = await failingOver(first, second);
    silence();
    const reset = await call(c.url, 'POST', '/groups/g/reset-offsets', toTime);
    expect(reset.status).toBe(200);
    expect(reset.body.partitions.map((p: { target: number }) => p.target)).toEqual([5, 5]);
    const partitions = await after();
    expect(partitions[moved.partition]).toMatchObject({ primary: 2, epoch: moved.epoch + 1 });
    // Broker 1 was asked first, and refused: nothing was read or stored there.
    expect(first.offsetCalls.length).toBeGreaterThanOrEqual(1);
    expect(first.offsetCalls.every((sent) => sent.route === '/offsets' && sent.partitions[0].epoch === moved.epoch)).toBe(true);
    expect(named(second.offsetCalls.filter((sent) => sent.route === '/internal/group-offsets'))).toEqual([
      ['/internal/group-offsets', partitions.map((p) => p.epoch)],
    ]);
    expect([...second.stored]).toEqual([
      ['r/0', 5],
      ['r/1', 5],
    ]);
  });

  it('sends a group delete whose primary went away (no answer) again to the new primary once the partition failed over', async () => {
    // Broker 1 stops (its calls are refused at the socket) and falls silent: the delete's store
    // of its partition fails until the coordinator fails it over, then goes to broker 2.
    const first = await fakeBroker();
    const second = await fakeBroker();
    const { c, moved, silence, after } = await failingOver(first, second);
    // Made by a reset: the group exists, with offsets on both primaries.
    expect((await call(c.url, 'POST', '/groups/g/reset-offsets', { topic: 'r', target: { to: 'latest' }, execute: true })).status).toBe(200);
    expect([...first.stored]).toEqual([[`r/${moved.partition}`, 10]]);
    silence();
    await first.close();
    expect((await call(c.url, 'DELETE', '/groups/g')).status).toBe(204);
    const partitions = await after();
    expect(partitions[moved.partition]).toMatchObject({ primary: 2, epoch: moved.epoch + 1 });
    expect([...second.stored].sort()).toEqual([
      ['r/0', -1],
      ['r/1', -1],
    ]);
    // Broker 2's own partition was stored at once; the moved one alone, once it led it.
    const stores = second.offsetCalls.filter((sent) => sent.route === '/internal/group-offsets');
    expect(stores.at(-1)!.partitions).toEqual([{ topic: 'r', partition: moved.partition, epoch: moved.epoch + 1, offset: -1 }]);
  });

  it('fails a reset a primary refuses as bad input for another reason, without sending it again', async () => {
    const broker = await fakeBroker({ refusesGroup: true });
    const { c, epochs } = await remadeTopic(broker);
    const reset = await call(c.url, 'POST', '/groups/g/reset-offsets', toTime);
    expect(errorCode(reset)).toBe('INVALID_REQUEST');
    expect(named(broker.offsetCalls)).toEqual([['/offsets', epochs]]);
    expect(broker.stored.size).toBe(0);
  });
});

// ---- push subscriptions -------------------------------------------------------------------

describe('push subscriptions', () => {
  /** Subscriptions of these tests target a receiver on loopback (nothing delivers here: the brokers are stand-ins). */
  const subscription = (name: string, extra: object = {}) => ({ name, topic: 's', url: 'http://127.0.0.1:9/hook', ...extra });
  const withLoopback = { subscriptionAllowedTargets: 'loopback' };

  /**
   * Keeps broker 1 heartbeating to the coordinator `base()` names, as the primary of topic `s`'s
   * partitions reporting `hws.value` (partition → HW; null: no report of that partition).
   */
  function reportingBeats(base: () => string, url: string, hws: { value: Array<number | null> }) {
    const timer = setInterval(() => {
      const replicas = hws.value.flatMap((hw, partition) => (hw === null ? [] : [{ topic: 's', partition, epoch: 0, leo: hw, hw, role: 'primary' }]));
      void call(base(), 'POST', '/brokers/heartbeat', { id: 1, url, replicas }).catch(() => {});
    }, 30);
    cleanups.push(() => clearInterval(timer));
  }

  /** Waits until the coordinator knows the HW of every partition of topic `s` (its describe shows them). */
  const reported = (base: string) =>
    waitFor('the HWs to be reported', async () => (await call<TopicDescription>(base, 'GET', '/topics/s')).body.partitions.every((p) => p.highWatermark !== null));

  /** The start offsets the brokers are given for subscription `name`. */
  async function startOffsets(base: string, name: string) {
    const state = (await call<{ subscriptions: Array<{ name: string; startOffsets: Record<string, number> }> }>(base, 'GET', '/internal/subscriptions')).body;
    return state.subscriptions.find((s) => s.name === name)?.startOffsets;
  }

  it("marks a deleted subscription's group deleted on every partition, at the generation above its deliveries', tried again until stored, across a restart", async () => {
    const dataDir = tempDir();
    // The disk of broker 1 is full at first: the first try of the marks is refused.
    const options = { refusesStore: true };
    const broker = await fakeBroker(options);
    let c = await coordinator(withLoopback, dataDir);
    await register(c.url, 1, broker.url);
    reportingBeats(() => c.url, broker.url, { value: [7, 9] });
    await call(c.url, 'POST', '/topics', { name: 's', partitions: 2, replicationFactor: 1 });
    await reported(c.url);
    const created = (await call<{ group: string }>(c.url, 'POST', '/subscriptions', subscription('orders-hook'))).body;
    expect(created.group).toMatch(/^subscription\.orders-hook\./);

    expect((await call(c.url, 'DELETE', '/subscriptions/orders-hook')).status).toBe(204);
    // Tried at once, in the background: refused (the disk is full), so nothing is stored yet.
    const marks = () => broker.offsetCalls.filter((sent) => sent.route === '/internal/group-offsets');
    await waitFor('the first try of the marks', async () => marks().length > 0);
    expect(broker.stored.size).toBe(0);
    // The name is free at once; the new subscription has a group of its own.
    const again = await call(c.url, 'POST', '/subscriptions', subscription('orders-hook'));
    expect(again.status).toBe(201);
    expect(again.body.group).not.toBe(created.group);
    expect((await call(c.url, 'DELETE', '/subscriptions/orders-hook')).status).toBe(204);

    // The coordinator restarts with both groups still to mark, and the disk has room again.
    await c.close();
    options.refusesStore = false;
    c = await coordinator(withLoopback, dataDir);
    await waitFor('both groups marked', async () => new Set(marks().filter((sent) => sent.generation === 1).map((sent) => sent.group)).size === 2);
    for (const group of [created.group, again.body.group]) {
      const stored = marks().filter((sent) => sent.group === group && sent.generation === 1);
      // Every partition of the topic, with the deletion mark, at the generation above the deliveries' (0).
      expect(stored.at(-1)!.partitions).toEqual([
        { topic: 's', partition: 0, epoch: 0, offset: -1 },
        { topic: 's', partition: 1, epoch: 0, offset: -1 },
      ]);
    }
    expect(marks().every((sent) => sent.generation === 1)).toBe(true);
    expect([...broker.stored].sort()).toEqual([
      ['s/0', -1],
      ['s/1', -1],
    ]);
  });

  it("marks a deleted subscription's group on the partitions with a live primary while another is offline, and that one once its primary is back", async () => {
    const dataDir = tempDir();
    const brokers = [await fakeBroker(), await fakeBroker()];
    let c = await coordinator({ ...withLoopback, heartbeatMs: 30, brokerTimeoutMs: 1_000 }, dataDir);
    const beating = brokers.map((broker, i) => {
      const timer = setInterval(() => void call(c.url, 'POST', '/brokers/heartbeat', { id: i + 1, url: broker.url, replicas: [] }).catch(() => {}), 30);
      cleanups.push(() => clearInterval(timer));
      return timer;
    });
    for (const [i, broker] of brokers.entries()) await register(c.url, i + 1, broker.url);
    await call(c.url, 'POST', '/topics', { name: 's', partitions: 2, replicationFactor: 1 });
    const placed = (await call<TopicDescription>(c.url, 'GET', '/topics/s')).body.partitions;
    const onTwo = placed.find((p) => p.primary === 2)!.partition;
    const onOne = placed.find((p) => p.primary === 1)!.partition;
    expect((await call(c.url, 'POST', '/subscriptions', subscription('orders-hook', { fromBeginning: true }))).status).toBe(201);

    // Broker 2 goes silent: its partition has no live primary.
    clearInterval(beating[1]);
    await waitFor('broker 2 declared dead', async () => (await call<TopicDescription>(c.url, 'GET', '/topics/s')).body.partitions[onTwo].status === 'offline');
    expect((await call(c.url, 'DELETE', '/subscriptions/orders-hook')).status).toBe(204);
    // The partition led by a live broker is marked at once; the offline one's is not held back by it, nor sent.
    await waitFor('the mark on the live partition', async () => brokers[0].stored.get(`s/${onOne}`) === -1);
    expect(brokers[1].stored.size).toBe(0);

    // Back (the coordinator restarted meanwhile): the partition left is marked, and only it.
    await c.close();
    c = await coordinator({ ...withLoopback, heartbeatMs: 30, brokerTimeoutMs: 1_000 }, dataDir);
    const timer = setInterval(() => void call(c.url, 'POST', '/brokers/heartbeat', { id: 2, url: brokers[1].url, replicas: [] }).catch(() => {}), 30);
    cleanups.push(() => clearInterval(timer));
    // Tried at the start (before broker 2 is heard again, so still left) and then every 10 s.
    await waitFor('the mark on the partition back', async () => brokers[1].stored.get(`s/${onTwo}`) === -1, 20_000);
    const marksOnOne = brokers[0].offsetCalls.filter((sent) => sent.route === '/internal/group-offsets');
    expect(marksOnOne.map((sent) => sent.partitions.map((p) => p.partition))).toEqual([[onOne]]);
  }, 40_000);

  it('refuses a creation from the end that waited for the reports while another took its name', async () => {
    const broker = await fakeBroker();
    const c = await coordinator(withLoopback);
    await register(c.url, 1, broker.url);
    const hws: { value: Array<number | null> } = { value: [null, null] };
    reportingBeats(() => c.url, broker.url, hws);
    await call(c.url, 'POST', '/topics', { name: 's', partitions: 2, replicationFactor: 1 });
    // The first waits for its topic's ends; meanwhile another creates the name from the beginning.
    const fromEnd = call(c.url, 'POST', '/subscriptions', subscription('dup', { url: 'http://127.0.0.1:9/first' }));
    const fromBeginning = await call(c.url, 'POST', '/subscriptions', subscription('dup', { fromBeginning: true, url: 'http://127.0.0.1:9/second' }));
    expect(fromBeginning.status).toBe(201);
    hws.value = [3, 4];
    const late = await fromEnd;
    expect(late.status).toBe(409);
    expect(late.body.error).toMatchObject({ code: 'SUBSCRIPTION_EXISTS' });
    expect(await startOffsets(c.url, 'dup')).toEqual({});
  });

  it('refuses to start a subscription at the end of its topic, as retriable, while the end of a partition is not known (after a restart), and starts at the HWs once reported', async () => {
    const dataDir = tempDir();
    const broker = await fakeBroker();
    let c = await coordinator(withLoopback, dataDir);
    await register(c.url, 1, broker.url);
    const hws: { value: Array<number | null> } = { value: [7, 9] };
    reportingBeats(() => c.url, broker.url, hws);
    await call(c.url, 'POST', '/topics', { name: 's', partitions: 2, replicationFactor: 1 });
    // Right after the topic was created its primaries have not reported yet: the creation waits for them.
    expect((await call(c.url, 'POST', '/subscriptions', subscription('before'))).status).toBe(201);
    expect(await startOffsets(c.url, 'before')).toEqual({ '0': 7, '1': 9 });

    // The reports are in memory only: after a restart, no partition's end is known until its primary reports it.
    hws.value = [null, null];
    await c.close();
    c = await coordinator(withLoopback, dataDir);
    const refused = await call(c.url, 'POST', '/subscriptions', subscription('after'));
    expect(refused.status).toBe(503);
    expect(refused.body.error).toMatchObject({ code: 'UNAVAILABLE', retriable: true });
    expect(refused.body.error.message).toBe(
      'cannot start subscription after at the end of topic s: the end of partitions 0, 1 is not known yet ' +
        '(no report from the primary since the coordinator started, or no live primary); retry in a few seconds, or create it from the beginning (fromBeginning, --from-beginning)',
    );
    // From the beginning needs no end.
    expect((await call(c.url, 'POST', '/subscriptions', subscription('everything', { fromBeginning: true }))).status).toBe(201);
    expect(await startOffsets(c.url, 'everything')).toEqual({});

    // One partition reported: the other is still named.
    hws.value = [12, null];
    const partly = await waitFor('partition 0 reported', async () => {
      const answer = await call(c.url, 'POST', '/subscriptions', subscription('after'));
      return /partition 1 is not known/.test(answer.body?.error?.message ?? '') ? answer : undefined;
    });
    expect(errorCode(partly)).toBe('UNAVAILABLE');
    hws.value = [12, 15];
    await reported(c.url);
    expect((await call(c.url, 'POST', '/subscriptions', subscription('after'))).status).toBe(201);
    expect(await startOffsets(c.url, 'after')).toEqual({ '0': 12, '1': 15 });
  });
});

// ---- routed produce ----------------------------------------------------------------------

describe('routed produce', () => {
  it('hashes keys to partitions, keeps input order per partition, and answers offsets in request order', async () => {
    const c = await coordinator();
    const broker = await fakeBroker({ notPrimaryFirst: true });
    await register(c.url, 1, broker.url);
    await call(c.url, 'POST', '/topics', { name: 'p', partitions: 3, replicationFactor: 1 });
    const records = ['k1', 'k2', 'k3', 'k1', 'k4', 'k2'].map((key, i) => ({ key, value: `v${i}` }));
    const answer = await call(c.url, 'POST', '/topics/p/records', { records: [...records, { value: 'keyless', partition: 2 }] });
    expect(answer.status).toBe(200);
    const offsets = answer.body.offsets as Array<{ partition: number; offset: number }>;
    records.forEach((r, i) => expect(offsets[i].partition).toBe(partitionForKey(r.key, 3)));
    expect(offsets[6].partition).toBe(2);
    for (const partition of [0, 1, 2]) {
      const sent = broker.produced.filter((x) => x.partition === partition).flatMap((x) => x.records.map((r) => r.value));
      const expected = [...records, { value: 'keyless', partition: 2 }]
        .map((r, i) => ({ r, i }))
        .filter(({ i }) => offsets[i].partition === partition);
      expect(sent).toEqual(expected.map(({ r }) => r.value));
      expect(expected.map(({ i }) => offsets[i].offset)).toEqual(expected.map((_, n) => n));
    }
    expect(errorCode(await call(c.url, 'POST', '/topics/p/records', { records: [{ value: 'x', partition: 3 }] }))).toBe('INVALID_REQUEST');
  });

  it('names each partition\'s epoch to its primary, and sends a broker of an earlier release, which refuses the field, its records without it', async () => {
    const c = await coordinator();
    const current = await fakeBroker();
    await register(c.url, 1, current.url);
    await call(c.url, 'POST', '/topics', { name: 'p', partitions: 1, replicationFactor: 1 });
    expect((await call(c.url, 'POST', '/topics/p/records', { records: [{ value: 'a' }] })).status).toBe(200);
    const epoch = (await call<MetadataResponse>(c.url, 'GET', '/metadata')).body.topics[0].partitions[0].epoch;
    expect(current.epochs).toEqual([epoch]);

    const older = await coordinator();
    const earlier = await fakeBroker({ earlierRelease: true });
    await register(older.url, 1, earlier.url);
    await call(older.url, 'POST', '/topics', { name: 'q', partitions: 1, replicationFactor: 1 });
    for (const value of ['b', 'c']) expect((await call(older.url, 'POST', '/topics/q/records', { records: [{ value }] })).status).toBe(200);
    expect(earlier.produced.flatMap((x) => x.records.map((r) => r.value))).toEqual(['b', 'c']);
    // Refused once with the epoch, then sent without it, and so is the next request.
    const qEpoch = (await call<MetadataResponse>(older.url, 'GET', '/metadata')).body.topics[0].partitions[0].epoch;
    expect(earlier.epochs).toEqual([qEpoch, undefined, undefined]);
  });

  it('answers the first failed partition error when a primary cannot be reached', async () => {
    const c = await coordinator();
    await register(c.url, 1, await closedPortUrl());
    await call(c.url, 'POST', '/topics', { name: 'p', partitions: 1, replicationFactor: 1 });
    const answer = await call(c.url, 'POST', '/topics/p/records', { records: [{ value: 'x' }] });
    expect(answer.status).toBe(503);
    expect(answer.body.error).toMatchObject({ code: 'UNAVAILABLE', retriable: true });
    expect(answer.body.error.message).toContain('partition 0');
  });
});

// ---- moves: rebalance and drain ------------------------------------------------------------

describe('moves', () => {
  it('adds a replica for a joining broker, swaps it in only when its primary says it caught up, drains, and keeps a move across a restart', async () => {
    // Proves the coordinator side of a move: `adding` in the map, the reassign-complete checks
    // (epoch, primary, target), the atomic swap, drain, and a move surviving a coordinator restart.
    const dataDir = tempDir();
    let c = await coordinator({ heartbeatMs: 20, brokerTimeoutMs: 2_000, maxConcurrentMoves: 1 }, dataDir);
    const port = Number(new URL(c.url).port);
    const broker = await fakeBroker();
    await register(c.url, 1, broker.url);
    await register(c.url, 2, broker.url);
    heartbeats(c.url, new Map([[1, broker.url], [2, broker.url]]));
    await call(c.url, 'POST', '/topics', { name: 't', partitions: 2 });

    await register(c.url, 3, broker.url);
    heartbeats(c.url, new Map([[3, broker.url]]));
    const adding = await waitFor('a replica being added to broker 3', async () => {
      const meta = (await call<MetadataResponse>(c.url, 'GET', '/metadata')).body;
      return meta.topics[0].partitions.find((p) => p.adding === 3);
    });
    const primary = adding.primary!;
    const ask = (over: Record<string, unknown>) =>
      call(c.url, 'POST', '/partitions/reassign-complete', { brokerId: primary, topic: 't', partition: adding.partition, epoch: adding.epoch, target: 3, ...over });
    expect(errorCode(await ask({ epoch: adding.epoch + 1 }))).toBe('STALE_EPOCH');
    expect(errorCode(await ask({ brokerId: 3 }))).toBe('NOT_PRIMARY');
    expect(errorCode(await ask({ target: adding.secondary }))).toBe('INVALID_REQUEST');
    expect(errorCode(await ask({ extra: 1 }))).toBe('INVALID_REQUEST');
    // Decided on an assignment from before the replica was being added: refused.
    expect(errorCode(await ask({ version: adding.version! - 1 }))).toBe('STALE_ASSIGNMENT');
    const swapped = await ask({ version: adding.version });
    expect(swapped.status).toBe(200);
    expect(swapped.body).toEqual({ partition: adding.partition, primary, secondary: 3, epoch: adding.epoch, isr: [primary, 3], version: adding.version! + 1 });
    // Asked again (its answer was lost): the same assignment. The move's completion that follows
    // changes nothing of the assignment, so its version stays (a primary deciding on it is not refused).
    const again = await ask({ version: adding.version });
    expect(again.body).toEqual(swapped.body);
    await waitFor('the move to complete', async () =>
      (await call(c.url, 'GET', '/cluster/events?limit=50')).body.events.some((e: { type: string }) => e.type === 'rebalance_move_completed'),
    );
    const after = (await call<MetadataResponse>(c.url, 'GET', '/metadata')).body.topics[0].partitions[adding.partition];
    expect(after.version).toBe(swapped.body.version);
    await waitFor('the rebalance to complete', async () => {
      const types = (await call(c.url, 'GET', '/cluster/events?limit=50')).body.events.map((e: { type: string }) => e.type);
      return types.includes('rebalance_move_completed') && types.at(-1) === 'rebalance_completed';
    });
    const brokers = (await call(c.url, 'GET', '/brokers')).body.brokers;
    expect(brokers.find((b: { id: number }) => b.id === 3)).toMatchObject({ state: 'alive', draining: false, replicas: 1, adding: 0 });

    expect(errorCode(await call(c.url, 'POST', '/brokers/99/drain'))).toBe('NOT_FOUND');
    expect(errorCode(await call(c.url, 'POST', '/brokers/abc/drain'))).toBe('INVALID_REQUEST');
    const drained = await call(c.url, 'POST', '/brokers/3/drain');
    expect(drained.body).toMatchObject({ id: 3, draining: true });
    const leaving = await waitFor('a replica being added in place of broker 3', async () => {
      const meta = (await call<MetadataResponse>(c.url, 'GET', '/metadata')).body;
      return meta.topics[0].partitions.find((p) => p.secondary === 3 && typeof p.adding === 'number');
    });

    // The move survives a coordinator restart.
    await c.close();
    c = await coordinator({ port, heartbeatMs: 20, brokerTimeoutMs: 2_000, maxConcurrentMoves: 1 }, dataDir);
    // The first call may meet a keep-alive socket of the closed process: ask until the new one answers.
    const base = c.url;
    const metadata = await waitFor('the restarted coordinator', () => call<MetadataResponse>(base, 'GET', '/metadata').catch(() => undefined));
    const restored = metadata.body.topics[0].partitions[leaving.partition];
    expect(restored.adding).toBe(leaving.adding);
    const done = await call(c.url, 'POST', '/partitions/reassign-complete', {
      brokerId: leaving.primary,
      topic: 't',
      partition: leaving.partition,
      epoch: leaving.epoch,
      target: leaving.adding,
    });
    expect(done.body).toMatchObject({ secondary: leaving.adding, isr: [leaving.primary, leaving.adding] });
    await waitFor('broker 3 to hold nothing', async () => {
      const status = (await call(c.url, 'GET', '/brokers')).body.brokers.find((b: { id: number }) => b.id === 3);
      return status.replicas === 0 && status.adding === 0 ? status : undefined;
    });
  });

  it('evacuates a draining broker that was dead when the drain began, once it is back', async () => {
    // While broker 3 is dead its partitions are left to failover and the replacement of dead
    // secondaries: the rebalance must not end with nothing moved, or broker 3 keeps them for good.
    const c = await coordinator({ heartbeatMs: 20, brokerTimeoutMs: 400, maxConcurrentMoves: 1, leadershipBalanceDelayMs: 600_000 });
    const broker = await fakeBroker();
    for (const id of [1, 2, 3]) await register(c.url, id, broker.url);
    heartbeats(c.url, new Map([[1, broker.url], [2, broker.url]]));
    const third = heartbeats(c.url, new Map([[3, broker.url]]));
    await call(c.url, 'POST', '/topics', { name: 't', partitions: 6 });
    third.stop();
    await waitFor('broker 3 dead', async () => (await call(c.url, 'GET', '/brokers')).body.brokers.find((b: { id: number }) => b.id === 3).state === 'dead');
    expect((await call(c.url, 'POST', '/brokers/3/drain')).body).toMatchObject({ id: 3, draining: true });
    // A few turns of the move driver with broker 3 dead.
    await new Promise((resolve) => setTimeout(resolve, 300));
    heartbeats(c.url, new Map([[3, broker.url]]));
    const moving = await waitFor('a replica being added in place of broker 3', async () => {
      const meta = (await call<MetadataResponse>(c.url, 'GET', '/metadata')).body;
      return meta.topics[0].partitions.find((p) => p.secondary === 3 && typeof p.adding === 'number');
    });
    expect(moving.adding).not.toBe(3);
  });
});

// ---- producer ids ------------------------------------------------------------------------

describe('POST /producers', () => {
  it('hands out ids above every id handed out before, also after coordinator.db is restored from a backup', async () => {
    const dataDir = tempDir();
    const backup = path.join(tempDir(), 'coordinator-backup.db');
    const c = await coordinator({}, dataDir);
    const allocate = async () => {
      const answer = await call<InitProducerResponse>(c.url, 'POST', '/producers');
      expect(answer.status).toBe(200);
      expect(answer.body.producerEpoch).toBe(0);
      return answer.body.producerId;
    };
    const handedOut = [await allocate(), await allocate()];
    // The online backup of docs/operations.md, with SQLite's backup API while the coordinator runs.
    const db = new Database(path.join(dataDir, 'coordinator.db'));
    await db.backup(backup);
    db.close();
    for (let i = 0; i < 3; i++) handedOut.push(await allocate());
    for (let i = 1; i < handedOut.length; i++) expect(handedOut[i]).toBeGreaterThan(handedOut[i - 1]!);
    await c.close();

    fs.copyFileSync(backup, path.join(dataDir, 'coordinator.db'));
    const restored = await coordinator({}, dataDir);
    const answer = await call<InitProducerResponse>(restored.url, 'POST', '/producers');
    expect(answer.body.producerId).toBeGreaterThan(Math.max(...handedOut));
    expect(answer.body.producerId).toBeLessThan(2 ** 52);
  });
});

// ---- the API description -------------------------------------------------------------------

describe('GET /openapi.json', () => {
  it('serves the OpenAPI description, and real answers match its response schemas', async () => {
    const c = await coordinator();
    const broker = await fakeBroker();
    for (const id of [1, 2]) await register(c.url, id, broker.url);
    const served = await call(c.url, 'GET', '/openapi.json');
    expect(served.status).toBe(200);
    expect(served.body).toEqual(openApiDocument('coordinator'));

    await call(c.url, 'POST', '/topics', { name: 'described', partitions: 2 });
    await call(c.url, 'POST', '/groups/g/join', { topic: 'described', memberId: 'm' });
    const answers: Array<[string, { parse(value: unknown): unknown }]> = [
      ['/metadata', responseSchemas.metadataResponse],
      ['/topics', responseSchemas.topicListResponse],
      ['/topics/described', responseSchemas.topicDescription],
      ['/brokers', responseSchemas.brokerListResponse],
      ['/cluster/status', responseSchemas.clusterStatusResponse],
      ['/cluster/events', responseSchemas.clusterEventsResponse],
      ['/groups', responseSchemas.groupListResponse],
      ['/groups/g', responseSchemas.groupDescription],
      ['/health', responseSchemas.healthResponse],
      ['/topics/missing', responseSchemas.errorBody],
    ];
    for (const [route, schema] of answers) {
      const answer = await call(c.url, 'GET', route);
      expect(() => schema.parse(answer.body), `${route}: ${JSON.stringify(answer.body)}`).not.toThrow();
    }
  });
});
