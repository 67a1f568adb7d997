// Proves the broker's data plane over real HTTP: two real brokers (startBroker, in-process, real
// SQLite in a temp dir) and a small stub coordinator (koa, in-memory map this test controls) that
// serves /metadata, /brokers/register, /brokers/heartbeat and /partitions/isr. Covers replication
// before acknowledgement, long-poll, commits, fencing, ISR shrink/expand with catch-up, role
// changes and bad input.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  FRAME_CONTENT_TYPE,
  TesseraError,
  decodeFrame,
  decodeRecordBatch,
  encodeFrame,
  encodeRecordBatch,
  isrChangeRequest,
  openApiDocument,
  parseOrThrow,
  reassignCompleteRequest,
  REPLICATE_FEATURES,
  responseSchemas,
  type BrokerHeartbeatResponse,
  type MetadataResponse,
  type PartitionAssignment,
  type ReplicaReport,
  type TopicMetadata,
} from '@tessera/protocol';
import { createHttpService, createLogger, type HttpService } from '@tessera/service';
import { startBroker, type RunningBroker } from './index.js';
import { oldRecords, writeLegacyReplica } from './test-support/legacy-layout.js';

const LOG_LEVEL = process.env.TESSERA_TEST_LOG_LEVEL ?? 'silent';

/** The coordinator as far as a broker sees it, with a map the test edits directly. */
class StubCoordinator {
  version = 1;
  readonly brokers = new Map<number, string>();
  readonly topics = new Map<string, TopicMetadata>();
  readonly groups: Record<string, number> = {};
  readonly isrRequests: Array<{ topic: string; partition: number; brokerId: number; epoch: number; isr: number[]; version?: number }> = [];
  readonly reports = new Map<number, ReplicaReport[]>();
  /**
   * How /partitions/isr answers: as the real coordinator, as if down, refusing a stale epoch, or
   * (`moved-on`, once) refusing a request decided before a change the broker has not heard of.
   */
  isrMode: 'accept' | 'unavailable' | 'stale' | 'apply-then-vanish' | 'moved-on' = 'accept';
  /** While true the coordinator answers nothing but UNAVAILABLE (it is "down"). */
  down = false;
  readonly reassignRequests: Array<{ topic: string; partition: number; brokerId: number; epoch: number; target: number }> = [];
  /** How many /partitions/reassign-complete calls to answer UNAVAILABLE before acting like the coordinator. */
  reassignFailures = 0;
  private service: HttpService | undefined;
  url = '';

  async start(): Promise<void> {
    const logger = createLogger('coordinator', { stub: true }, { level: LOG_LEVEL });
    const service = createHttpService({ service: 'coordinator', logger, isReady: () => true });
    service.router.use((_ctx, next) => {
      if (this.down) throw new TesseraError('UNAVAILABLE', 'coordinator down (test)');
      return next();
    });
    service.router.get('/metadata', (ctx) => {
      ctx.body = this.metadata();
    });
    // Client authentication off: the broker's own access checks have their own tests.
    service.router.get('/internal/auth', (ctx) => {
      ctx.body = { version: 0, enabled: false, keys: [], principals: [], acls: [] };
    });
    service.router.post('/brokers/register', (ctx) => {
      const body = ctx.state.body as { id: number; url: string };
      this.upsertBroker(body.id, body.url);
      ctx.body = this.heartbeatAnswer();
    });
    service.router.post('/brokers/heartbeat', (ctx) => {
      const body = ctx.state.body as { id: number; url: string; replicas: ReplicaReport[] };
      this.upsertBroker(body.id, body.url);
      this.reports.set(body.id, body.replicas);
      ctx.body = this.heartbeatAnswer();
    });
    service.router.post('/partitions/isr', (ctx) => {
      const request = parseOrThrow(isrChangeRequest, ctx.state.body);
      this.isrRequests.push(request);
      if (this.isrMode === 'unavailable') throw new TesseraError('UNAVAILABLE', 'coordinator unavailable (test)');
      const assignment = this.assignment(request.topic, request.partition);
      if (this.isrMode === 'stale') throw new TesseraError('STALE_EPOCH', 'stale epoch (test)', { epoch: assignment.epoch + 1 });
      if (request.epoch !== assignment.epoch) {
        throw new TesseraError('STALE_EPOCH', 'stale epoch', { epoch: assignment.epoch });
      }
      if (request.brokerId !== assignment.primary) throw new TesseraError('NOT_PRIMARY', 'not primary', { primary: null });
      if (this.isrMode === 'moved-on' && assignment.version !== undefined) {
        this.isrMode = 'accept';
        assignment.version++;
        this.version++;
        throw new TesseraError('STALE_ASSIGNMENT', 'assignment changed (test)', { version: assignment.version });
      }
      assignment.isr = [...request.isr];
      // A map that counts its assignments' changes, as the coordinator's does.
      if (assignment.version !== undefined) assignment.version++;
      this.version++;
      if (this.isrMode === 'apply-then-vanish') {
        // The change is applied, then the coordinator goes away before the broker hears the answer.
        this.down = true;
        ctx.req.socket.destroy();
        ctx.respond = false;
        return;
      }
      ctx.body = assignment;
    });
    service.router.post('/partitions/reassign-complete', (ctx) => {
      const request = parseOrThrow(reassignCompleteRequest, ctx.state.body);
      this.reassignRequests.push(request);
      if (this.reassignFailures > 0) {
        this.reassignFailures--;
        throw new TesseraError('UNAVAILABLE', 'coordinator unavailable (test)');
      }
      const assignment = this.assignment(request.topic, request.partition);
      if (request.epoch !== assignment.epoch) throw new TesseraError('STALE_EPOCH', 'stale epoch', { epoch: assignment.epoch });
      if (request.brokerId !== assignment.primary) throw new TesseraError('NOT_PRIMARY', 'not primary', { primary: null });
      if (assignment.adding !== request.target) throw new TesseraError('INVALID_REQUEST', 'not being added');
      Object.assign(assignment, { secondary: request.target, isr: [assignment.primary, request.target], adding: null });
      this.version++;
      ctx.body = assignment;
    });
    const server = await service.listen(0, '127.0.0.1');
    this.service = service;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    return this.service?.close() ?? Promise.resolve();
  }

  metadata(): MetadataResponse {
    return {
      version: this.version,
      brokers: [...this.brokers].map(([id, url]) => ({ id, url, alive: true })),
      topics: [...this.topics.values()].map((topic) => structuredClone(topic)),
    };
  }

  assignment(topic: string, partition: number): PartitionAssignment {
    const found = this.topics.get(topic)?.partitions[partition];
    if (!found) throw new TesseraError('PARTITION_NOT_FOUND', `${topic}/${partition}`);
    return found;
  }

  /** Adds a topic whose partitions all have this assignment, then tells every broker. */
  async createTopic(
    name: string,
    assignment: Omit<PartitionAssignment, 'partition'>,
    options: { partitions?: number; minInsyncReplicas?: number } = {},
  ): Promise<void> {
    this.topics.set(name, {
      name,
      replicationFactor: assignment.secondary === null ? 1 : 2,
      config: { minInsyncReplicas: options.minInsyncReplicas ?? 1 },
      partitions: Array.from({ length: options.partitions ?? 1 }, (_, partition) => ({ ...assignment, partition, isr: [...assignment.isr] })),
    });
    await this.changed();
  }

  /** Bumps the version and notifies brokers like the real coordinator does. */
  async changed(): Promise<void> {
    this.version++;
    await Promise.allSettled(
      [...this.brokers.values()].map((url) =>
        fetch(`${url}/internal/metadata-changed`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ version: this.version }),
          signal: AbortSignal.timeout(2_000),
        }),
      ),
    );
  }

  private upsertBroker(id: number, url: string): void {
    if (this.brokers.get(id) !== url) {
      this.brokers.set(id, url);
      this.version++;
    }
  }

  private heartbeatAnswer(): BrokerHeartbeatResponse {
    return { metadataVersion: this.version, groups: { ...this.groups }, heartbeatMs: 100, authVersion: 0 };
  }
}

async function post(url: string, body: unknown, raw = false): Promise<{ status: number; body: any }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: raw ? (body as string) : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

function records(n: number, prefix: string) {
  return Array.from({ length: n }, (_, i) => ({ key: `k${i % 3}`, value: `${prefix}-${i}` }));
}

/** Records and group offsets of one replica as stored in its broker's database (read-only, beside the broker). */
function onDisk(dataDir: string, topic: string, partition: number) {
  const db = new Database(path.join(dataDir, 'broker.db'), { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT data FROM batches WHERE topic = ? AND partition = ? ORDER BY base_offset').all(topic, partition) as Array<{ data: Buffer }>;
    const values = rows.flatMap((row) => decodeRecordBatch(row.data).records.map((r) => r.value?.toString() ?? null));
    const groups = db.prepare('SELECT group_id, offset, generation FROM group_offsets WHERE topic = ? AND partition = ?').all(topic, partition);
    const epochs = db.prepare('SELECT epoch, start_offset FROM epochs WHERE topic = ? AND partition = ? ORDER BY epoch').all(topic, partition);
    const held = db.prepare('SELECT COUNT(*) AS n FROM partitions WHERE topic = ? AND partition = ?').get(topic, partition) as { n: number };
    return { values, groups, epochs, held: held.n > 0 };
  } finally {
    db.close();
  }
}

/** Sends one replication exchange holding `pushes` (each with its batches) and returns the answer to each. */
async function exchange(target: string, pushes: Array<{ head: Record<string, unknown>; batches: Buffer[] }>): Promise<any[]> {
  const head = { from: 1, pushes: pushes.map((p) => ({ commits: [], hw: 0, ...p.head, bytes: p.batches.reduce((n, b) => n + b.length, 0) })) };
  const response = await fetch(`${target}/internal/replicate`, {
    method: 'POST',
    headers: { 'content-type': FRAME_CONTENT_TYPE },
    body: Buffer.concat(encodeFrame(head, pushes.flatMap((p) => p.batches))),
  });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { answers: any[]; features: string[] };
  // Every answer names the push fields this broker takes beyond the first release.
  expect(body.features).toEqual([...REPLICATE_FEATURES]);
  return body.answers;
}

/** A batch of one record at `offset` written in `epoch`, value `v<offset>`. */
function rec(offset: number, epoch: number): Buffer {
  return encodeRecordBatch([{ key: null, value: Buffer.from(`v${offset}`), timestamp: 1 }], { baseOffset: offset, partitionLeaderEpoch: epoch });
}

describe('broker over HTTP with a stub coordinator', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-broker-'));
  const dataDir = (id: number) => path.join(root, `broker-${id}`);
  const coordinator = new StubCoordinator();
  const brokers = new Map<number, RunningBroker>();
  const fatal: Error[] = [];

  async function start(id: number, port = 0): Promise<RunningBroker> {
    const broker = await startBroker({
      id,
      port,
      host: '127.0.0.1',
      dataDir: dataDir(id),
      coordinatorUrl: coordinator.url,
      heartbeatMs: 100,
      replicaTimeoutMs: 400,
      maxValueBytes: 1_000,
      retentionCheckMs: 100,
      storageReserveBytes: 1024 * 1024,
      storageMinFreeBytes: 4 * 1024 * 1024,
      // Tiny replication pushes (one batch each), so flushes and catch-ups are pushed in many chunks.
      limits: { catchUpBatchBytes: 1 },
      // A broken invariant fails the test run instead of exiting the test process.
      onFatal: (error) => {
        fatal.push(error);
      },
      logger: createLogger('broker', { brokerId: id }, { level: LOG_LEVEL }),
    });
    brokers.set(id, broker);
    await vi.waitFor(
      async () => {
        const response = await fetch(`${broker.url}/ready`);
        expect(response.status).toBe(200);
      },
      { timeout: 10_000, interval: 50 },
    );
    return broker;
  }

  beforeAll(async () => {
    await coordinator.start();
    await start(1);
    await start(2);
  });

  afterAll(async () => {
    expect(fatal).toEqual([]);
    await Promise.allSettled([...brokers.values()].map((broker) => broker.close()));
    await coordinator.stop();
    fs.rmSync(root, { recursive: true, force: true });
  });

  const url = (id: number) => brokers.get(id)!.url;

  it('acknowledges a produce only once the secondary stored it, and serves it by fetch', async () => {
    await coordinator.createTopic('orders', { primary: 1, secondary: 2, epoch: 0, isr: [1, 2] });
    const produced = await post(`${url(1)}/topics/orders/partitions/0/records`, { records: records(3, 'a') });
    expect(produced.status).toBe(200);
    expect(produced.body).toEqual({ topic: 'orders', partition: 0, baseOffset: 0, count: 3, epoch: 0 });
    // Acknowledged means on both replicas: the secondary's database already holds the records.
    expect(onDisk(dataDir(2), 'orders', 0).values).toEqual(['a-0', 'a-1', 'a-2']);

    const fetched = await post(`${url(1)}/fetch`, { partitions: [{ topic: 'orders', partition: 0, offset: 1 }] });
    expect(fetched.status).toBe(200);
    expect(fetched.body.partitions[0]).toMatchObject({ topic: 'orders', partition: 0, highWatermark: 3, logStartOffset: 0 });
    expect(fetched.body.partitions[0].records.map((r: { offset: number; value: string }) => [r.offset, r.value])).toEqual([
      [1, 'a-1'],
      [2, 'a-2'],
    ]);
    expect(fetched.body.partitions[0].records[0]).toMatchObject({ key: 'k1', headers: null });
  });

  it('groups concurrent produces into batches and answers each with its own offsets', async () => {
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => post(`${url(1)}/topics/orders/partitions/0/records`, { records: records(5, `c${i}`) })),
    );
    const bases = answers.map((a) => a.body.baseOffset as number).sort((x, y) => x - y);
    expect(answers.every((a) => a.status === 200 && a.body.count === 5)).toBe(true);
    expect(bases).toEqual(Array.from({ length: 20 }, (_, i) => 3 + i * 5));
    expect(onDisk(dataDir(2), 'orders', 0).values).toHaveLength(103);
  });

  it('answers NOT_PRIMARY with the primary on the secondary, and 404 for unknown partitions', async () => {
    const onSecondary = await post(`${url(2)}/topics/orders/partitions/0/records`, { records: records(1, 'x') });
    expect(onSecondary.status).toBe(421);
    expect(onSecondary.body.error).toMatchObject({ code: 'NOT_PRIMARY', retriable: true, primary: { id: 1, url: url(1) } });
    const unknown = await post(`${url(1)}/topics/nope/partitions/0/records`, { records: records(1, 'x') });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({ code: 'PARTITION_NOT_FOUND', retriable: true });
    // A partition the map has, on a broker that holds no replica of it: NOT_PRIMARY naming where it is.
    await coordinator.createTopic('elsewhere', { primary: 2, secondary: null, epoch: 0, isr: [2] });
    const elsewhere = await post(`${url(1)}/topics/elsewhere/partitions/0/records`, { records: records(1, 'x') });
    expect(elsewhere.body.error).toMatchObject({ code: 'NOT_PRIMARY', primary: { id: 2, url: url(2) } });
    const fetched = await post(`${url(2)}/fetch`, { partitions: [{ topic: 'orders', partition: 0, offset: 0 }, { topic: 'nope', partition: 0, offset: 0 }] });
    expect(fetched.body.partitions.map((p: { error?: { code: string } }) => p.error?.code)).toEqual(['NOT_PRIMARY', 'PARTITION_NOT_FOUND']);
  });

  it('wakes a long-polling fetch when a produce arrives', async () => {
    const hw = (await post(`${url(1)}/fetch`, { partitions: [{ topic: 'orders', partition: 0, offset: 0 }], maxRecords: 1 })).body
      .partitions[0].highWatermark as number;
    const waiting = post(`${url(1)}/fetch`, { partitions: [{ topic: 'orders', partition: 0, offset: hw }], waitMs: 30_000 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await post(`${url(1)}/topics/orders/partitions/0/records`, { records: [{ value: 'wake-up' }] });
    const answer = await waiting;
    expect(answer.status).toBe(200);
    expect(answer.body.partitions[0].records.map((r: { value: string }) => r.value)).toEqual(['wake-up']);
  });

  it('answers an out-of-range fetch offset inline', async () => {
    const fetched = await post(`${url(1)}/fetch`, { partitions: [{ topic: 'orders', partition: 0, offset: 10_000 }] });
    expect(fetched.body.partitions[0].error).toMatchObject({ code: 'OFFSET_OUT_OF_RANGE', highWatermark: 104, logStartOffset: 0 });
  });

  it('stores commits on both replicas and refuses every generation but the current one', async () => {
    coordinator.groups.g1 = 2;
    // Wait until a heartbeat answer carried the generation to broker 1.
    await vi.waitFor(
      async () => {
        const stale = await post(`${url(1)}/commit`, { group: 'g1', generation: 1, offsets: [{ topic: 'orders', partition: 0, offset: 1 }] });
        expect(stale.body.results[0].error).toMatchObject({ code: 'GENERATION_MISMATCH', generation: 2 });
      },
      { timeout: 5_000, interval: 50 },
    );
    const ok = await post(`${url(1)}/commit`, { group: 'g1', generation: 2, offsets: [{ topic: 'orders', partition: 0, offset: 3 }] });
    expect(ok.body).toEqual({ results: [{ topic: 'orders', partition: 0 }] });
    expect(onDisk(dataDir(2), 'orders', 0).groups).toEqual([{ group_id: 'g1', offset: 3, generation: 2 }]);
    // A future generation is refused and stored nowhere, so it cannot fence the real members out.
    const future = await post(`${url(1)}/commit`, {
      group: 'g1',
      generation: Number.MAX_SAFE_INTEGER,
      offsets: [{ topic: 'orders', partition: 0, offset: 0 }],
    });
    expect(future.body.results[0].error).toMatchObject({ code: 'GENERATION_MISMATCH', generation: 2 });
    expect(onDisk(dataDir(1), 'orders', 0).groups).toEqual([{ group_id: 'g1', offset: 3, generation: 2 }]);
    // The real member's next commit still works; a newer generation counts once the coordinator says so.
    expect((await post(`${url(1)}/commit`, { group: 'g1', generation: 2, offsets: [{ topic: 'orders', partition: 0, offset: 4 }] })).body).toEqual({
      results: [{ topic: 'orders', partition: 0 }],
    });
    const unknown = await post(`${url(1)}/commit`, { group: 'nobody-told', generation: 1, offsets: [{ topic: 'orders', partition: 0, offset: 1 }] });
    expect(unknown.body.results[0].error.code).toBe('GENERATION_MISMATCH');
    const offsets = await post(`${url(1)}/offsets`, { group: 'g1', partitions: [{ topic: 'orders', partition: 0 }, { topic: 'orders', partition: 1 }] });
    expect(offsets.body.partitions[0]).toMatchObject({ offset: 4, highWatermark: 104 });
    expect(offsets.body.partitions[1].error.code).toBe('PARTITION_NOT_FOUND');
    const none = await post(`${url(1)}/offsets`, { group: 'other', partitions: [{ topic: 'orders', partition: 0 }] });
    expect(none.body.partitions[0].offset).toBeNull();
  });

  it("stores the coordinator's reset at a newer generation, which then fences the older one, and a delete mark reads as no offset", async () => {
    coordinator.groups.g2 = 3;
    const commit = (generation: number, offset: number) =>
      post(`${url(1)}/commit`, { group: 'g2', generation, offsets: [{ topic: 'orders', partition: 0, offset }] });
    await vi.waitFor(async () => expect((await commit(3, 1)).body).toEqual({ results: [{ topic: 'orders', partition: 0 }] }), { timeout: 5_000, interval: 50 });
    // The coordinator bumped the group to 5 and resets it; this broker still believes 3.
    const reset = await post(`${url(1)}/internal/group-offsets`, { group: 'g2', generation: 5, offsets: [{ topic: 'orders', partition: 0, offset: 2 }] });
    expect(reset.body).toEqual({ results: [{ topic: 'orders', partition: 0 }] });
    for (const id of [1, 2]) expect(onDisk(dataDir(id), 'orders', 0).groups).toContainEqual({ group_id: 'g2', offset: 2, generation: 5 });
    // A member of generation 3 (dropped meanwhile, still running) cannot overwrite it.
    expect((await commit(3, 9)).body.results[0].error).toMatchObject({ code: 'GENERATION_MISMATCH', generation: 5 });
    const beyond = await post(`${url(1)}/internal/group-offsets`, { group: 'g2', generation: 5, offsets: [{ topic: 'orders', partition: 0, offset: 1_000 }] });
    expect(beyond.body.results[0].error.code).toBe('OFFSET_OUT_OF_RANGE');
    // A delete leaves a mark on both replicas that reads as nothing committed.
    await post(`${url(1)}/internal/group-offsets`, { group: 'g2', generation: 6, offsets: [{ topic: 'orders', partition: 0, offset: -1 }] });
    for (const id of [1, 2]) expect(onDisk(dataDir(id), 'orders', 0).groups).toContainEqual({ group_id: 'g2', offset: -1, generation: 6 });
    expect((await post(`${url(1)}/offsets`, { group: 'g2', partitions: [{ topic: 'orders', partition: 0 }] })).body.partitions[0].offset).toBeNull();
    // A member's commit may not leave the mark (nor any negative offset).
    expect((await commit(3, -1)).status).toBe(400);
    // A group created again under the name starts over at generation 1, and the mark does not fence it.
    coordinator.groups.g2 = 1;
    await vi.waitFor(async () => expect((await commit(1, 2)).body).toEqual({ results: [{ topic: 'orders', partition: 0 }] }), { timeout: 5_000, interval: 50 });
  });

  it('exposes produce, fetch, batch, replication and group-lag metrics for Prometheus', async () => {
    const text = await (await fetch(`${url(1)}/metrics`)).text();
    expect(text).toMatch(/^tessera_broker_records_produced_total\{topic="orders"\} 104$/m);
    expect(text).toMatch(/^tessera_broker_records_fetched_total\{topic="orders"\} \d+$/m);
    expect(text).toMatch(/^tessera_broker_write_batch_records_bucket\{le="\+Inf"\} \d+$/m);
    expect(text).toMatch(/^tessera_broker_replication_latency_seconds_count [1-9]\d*$/m);
    expect(text).toMatch(/^tessera_broker_group_lag_records\{group="g1",topic="orders",partition="0"\} 100$/m);
    // g1 committed offset 4: its lag in seconds is the age of record 4, written earlier in this file.
    const lagSeconds = Number(/^tessera_broker_group_lag_seconds\{group="g1",topic="orders",partition="0"\} (\S+)$/m.exec(text)?.[1]);
    expect(lagSeconds).toBeGreaterThan(0);
    expect(lagSeconds).toBeLessThan(600);
    expect(text).toMatch(/^tessera_broker_replication_lag_records\{topic="orders",partition="0"\} 0$/m);
    expect(text).toMatch(/^tessera_broker_long_polls_open 0$/m);
    // The filesystem of its data directory, for the disk-nearly-full alert.
    expect(Number(/^tessera_data_dir_free_bytes (\S+)$/m.exec(text)?.[1])).toBeGreaterThan(0);
    expect(Number(/^tessera_data_dir_size_bytes (\S+)$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(Number(/^tessera_data_dir_free_bytes (\S+)$/m.exec(text)?.[1]));
    expect(text).toMatch(/^tessera_broker_partitions\{role="primary"\} 1$/m);
  });

  it('serves its OpenAPI description, and produce and fetch answers match its response schemas', async () => {
    const served = await fetch(`${url(1)}/openapi.json`);
    expect(served.status).toBe(200);
    expect(await served.json()).toEqual(openApiDocument('broker'));
    await coordinator.createTopic('described', { primary: 1, secondary: null, epoch: 0, isr: [1] });
    const produced = await post(`${url(1)}/topics/described/partitions/0/records`, { records: records(2, 'd') });
    expect(produced.status).toBe(200);
    expect(() => responseSchemas.produceResponse.parse(produced.body)).not.toThrow();
    const fetched = await post(`${url(1)}/fetch`, { partitions: [{ topic: 'described', partition: 0, offset: 0 }], maxRecords: 2 });
    expect(fetched.body.partitions[0].records).toHaveLength(2);
    expect(() => responseSchemas.fetchResponse.parse(fetched.body)).not.toThrow();
    const offsets = await post(`${url(1)}/offsets`, { group: 'g1', partitions: [{ topic: 'orders', partition: 0 }] });
    expect(() => responseSchemas.committedOffsetsResponse.parse(offsets.body)).not.toThrow();
  });

  it('stores the bytes of produced batches exactly, several partitions per frame, refuses values over maxValueBytes, and fetches them back as frames or base64 JSON', async () => {
    await coordinator.createTopic('binary', { primary: 1, secondary: 2, epoch: 0, isr: [1, 2] }, { partitions: 2 });
    const oneMiB = Buffer.alloc(1024 * 1024, 7);
    oneMiB[0] = 0xff;
    const records = [
      { key: Buffer.from([0, 1, 2]), value: Buffer.from([0xc3, 0x28, 0x00, 0xff]), headers: [{ key: 'h', value: Buffer.from([0x80]) }], timestamp: 5 },
      { key: null, value: Buffer.alloc(0), headers: [{ key: 'null', value: null }], timestamp: 6 },
      { key: Buffer.from('text key'), value: Buffer.from('plain text ✓'), timestamp: 7 },
    ];
    const first = encodeRecordBatch(records);
    const big = encodeRecordBatch([{ key: null, value: oneMiB, timestamp: 8 }]);
    const corrupt = encodeRecordBatch([{ key: null, value: Buffer.from('x'), timestamp: 9 }]);
    corrupt[corrupt.length - 1] ^= 1;
    const frame = (parts: Array<[number, Buffer[]]>) =>
      Buffer.concat(encodeFrame({ partitions: parts.map(([partition, bs]) => ({ topic: 'binary', partition, bytes: bs.reduce((n, b) => n + b.length, 0) })) }, parts.flatMap(([, bs]) => bs)));
    const produce = async (body: Buffer) => {
      const response = await fetch(`${url(1)}/produce`, { method: 'POST', headers: { 'content-type': FRAME_CONTENT_TYPE }, body });
      return { status: response.status, body: (await response.json()) as any };
    };

    // This broker takes values up to 1,000 bytes (maxValueBytes): a frame is held to it like JSON.
    const tooBig = await produce(frame([[0, [big]]]));
    expect(tooBig.body.partitions[0]).toMatchObject({ topic: 'binary', partition: 0, error: { code: 'PAYLOAD_TOO_LARGE' } });
    expect(tooBig.body.partitions[0].error.message).toContain('larger than 1000');

    const answer = await produce(frame([[0, [first]], [1, [corrupt]]]));
    expect(answer.status).toBe(200);
    // Each partition on its own: partition 0 stored its batch, partition 1 refused its corrupt one.
    expect(answer.body.partitions[0]).toEqual({ topic: 'binary', partition: 0, baseOffset: 0, lastOffset: 2, epoch: 0 });
    expect(answer.body.partitions[1]).toMatchObject({ topic: 'binary', partition: 1, error: { code: 'INVALID_REQUEST' } });
    expect(answer.body.partitions[1].error.message).toContain('CRC');
    expect((await produce(Buffer.from('not a frame'))).status).toBe(400);

    const response = await fetch(`${url(1)}/fetch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: FRAME_CONTENT_TYPE },
      body: JSON.stringify({ partitions: [{ topic: 'binary', partition: 0, offset: 1 }, { topic: 'binary', partition: 1, offset: 0 }] }),
    });
    expect(response.headers.get('content-type')).toContain(FRAME_CONTENT_TYPE);
    const { head, tail } = decodeFrame(Buffer.from(await response.arrayBuffer()));
    const parts = (head as { partitions: Array<{ bytes: number; highWatermark: number }> }).partitions;
    expect(parts.map((p) => p.highWatermark)).toEqual([3, 0]);
    // Whole stored batches: the first begins before the requested offset.
    const fetched = [];
    for (let at = 0; at < parts[0].bytes; ) {
      const { header, records: decoded } = decodeRecordBatch(tail, at);
      fetched.push(...decoded);
      at += 12 + header.batchLength;
    }
    expect(fetched.map((r) => r.offset)).toEqual([0, 1, 2]);
    expect(fetched.map((r) => [r.key, r.value, r.headers, r.timestamp])).toEqual(records.map((r) => [r.key, r.value, r.headers ?? [], r.timestamp]));

    // JSON for curl users: base64 (and marked) where the bytes are not UTF-8, text otherwise.
    const json = await post(`${url(1)}/fetch`, { partitions: [{ topic: 'binary', partition: 0, offset: 0 }], maxRecords: 3 });
    expect(json.body.partitions[0].records).toEqual([
      { offset: 0, timestamp: 5, key: 'AAEC', value: 'wygA/w==', headers: { h: 'gA==' }, encoding: 'base64' },
      { offset: 1, timestamp: 6, key: null, value: '', headers: { null: null } },
      { offset: 2, timestamp: 7, key: 'text key', value: 'plain text ✓', headers: null },
    ]);
    // And the JSON produce route takes base64 values.
    const viaJson = await post(`${url(1)}/topics/binary/partitions/1/records`, { records: [{ value: Buffer.from([0xfe, 0]).toString('base64'), valueEncoding: 'base64' }] });
    expect(viaJson.body).toMatchObject({ baseOffset: 0, count: 1 });
    expect((await post(`${url(1)}/topics/binary/partitions/1/records`, { records: [{ value: '%%%', valueEncoding: 'base64' }] })).status).toBe(400);
    const back = await post(`${url(1)}/fetch`, { partitions: [{ topic: 'binary', partition: 1, offset: 0 }] });
    expect(back.body.partitions[0].records[0]).toMatchObject({ value: '/gA=', encoding: 'base64' });
  });

  it('stores each batch of an idempotent producer once, refuses gaps and old epochs, and keeps the producer state across failover and restart', async () => {
    await coordinator.createTopic('idem', { primary: 1, secondary: 2, epoch: 0, isr: [1, 2] });
    // A fresh encoding per send: the broker stamps offsets into the bytes it is given.
    const batch = (producerEpoch: number, baseSequence: number, values: string[]) =>
      encodeRecordBatch(
        values.map((value) => ({ key: null, value: Buffer.from(value), timestamp: 1 })),
        { producerId: 42, producerEpoch, baseSequence },
      );
    const produce = async (broker: number, bytes: Buffer) => {
      const body = Buffer.concat(encodeFrame({ partitions: [{ topic: 'idem', partition: 0, bytes: bytes.length }] }, [bytes]));
      const response = await fetch(`${url(broker)}/produce`, { method: 'POST', headers: { 'content-type': FRAME_CONTENT_TYPE }, body });
      expect(response.status).toBe(200);
      return ((await response.json()) as any).partitions[0];
    };

    expect(await produce(1, batch(0, 0, ['a', 'b', 'c']))).toMatchObject({ baseOffset: 0, lastOffset: 2 });
    // The same batch again (its answer lost): the offsets of the first time, nothing stored.
    expect(await produce(1, batch(0, 0, ['a', 'b', 'c']))).toMatchObject({ baseOffset: 0, lastOffset: 2 });
    expect((await produce(1, batch(0, 5, ['gap']))).error).toMatchObject({ code: 'OUT_OF_ORDER_SEQUENCE', retriable: false });
    expect(await produce(1, batch(0, 3, ['d', 'e']))).toMatchObject({ baseOffset: 3, lastOffset: 4 });
    expect(await produce(1, batch(1, 0, ['f']))).toMatchObject({ baseOffset: 5, lastOffset: 5 });
    expect((await produce(1, batch(0, 5, ['old epoch']))).error).toMatchObject({ code: 'PRODUCER_FENCED', retriable: false });

    // Leadership moves to broker 2, whose producer state came with the replicated batches.
    const assignment = coordinator.assignment('idem', 0);
    Object.assign(assignment, { primary: 2, secondary: 1, epoch: 1, isr: [2, 1] });
    await coordinator.changed();
    await vi.waitFor(async () => expect(await produce(2, batch(1, 0, ['f']))).toMatchObject({ baseOffset: 5, lastOffset: 5 }), { timeout: 10_000, interval: 50 });
    expect(await produce(2, batch(1, 1, ['g']))).toMatchObject({ baseOffset: 6, lastOffset: 6 });

    // Broker 1 restarts and leads again: its state was stored with its log.
    const port = Number(new URL(url(1)).port);
    await brokers.get(1)!.close();
    brokers.delete(1);
    Object.assign(assignment, { primary: 1, secondary: 2, epoch: 2, isr: [1] });
    await coordinator.changed();
    await start(1, port);
    await vi.waitFor(async () => expect(await produce(1, batch(1, 1, ['g']))).toMatchObject({ baseOffset: 6, lastOffset: 6 }), { timeout: 10_000, interval: 50 });
    expect((await produce(1, batch(1, 3, ['gap']))).error).toMatchObject({ code: 'OUT_OF_ORDER_SEQUENCE' });
    expect(onDisk(dataDir(1), 'idem', 0).values).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g']);
    // The topic goes, so its replicas take no part in the later scenarios.
    await vi.waitFor(() => expect(coordinator.assignment('idem', 0).isr).toEqual([1, 2]), { timeout: 15_000, interval: 50 });
    coordinator.topics.delete('idem');
    await coordinator.changed();
    await vi.waitFor(() => expect(onDisk(dataDir(2), 'idem', 0).held).toBe(false));
  });

  it('stores a JSON produce once per Idempotency-Key, on the primary and after a move to the secondary, and refuses bad keys, reserved producer ids and producer batches without a sequence', async () => {
    await coordinator.createTopic('keyed', { primary: 1, secondary: 2, epoch: 0, isr: [1, 2] });
    const produce = async (broker: number, key: string | undefined, values: string[]) => {
      const response = await fetch(`${url(broker)}/topics/keyed/partitions/0/records`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key === undefined ? {} : { 'idempotency-key': key }) },
        body: JSON.stringify({ records: values.map((value) => ({ value })) }),
      });
      return { status: response.status, body: (await response.json()) as any };
    };
    expect((await produce(1, 'order-1', ['a', 'b'])).body).toMatchObject({ baseOffset: 0, count: 2 });
    expect((await produce(1, 'order-1', ['a', 'b'])).body).toMatchObject({ baseOffset: 0, count: 2 });
    expect((await produce(1, 'order-2', ['c'])).body).toMatchObject({ baseOffset: 2, count: 1 });
    expect((await produce(1, undefined, ['d'])).body).toMatchObject({ baseOffset: 3, count: 1 });
    expect((await produce(1, undefined, ['d'])).body).toMatchObject({ baseOffset: 4, count: 1 });
    const bad = await produce(1, 'x'.repeat(257), ['e']);
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'INVALID_REQUEST', message: expect.stringContaining('Idempotency-Key') });
    // A producer's own batch cannot take an id of the keyed range.
    const reserved = encodeRecordBatch([{ key: null, value: Buffer.from('r'), timestamp: 1 }], { producerId: 2 ** 52 + 1, producerEpoch: 0, baseSequence: 0 });
    const frame = Buffer.concat(encodeFrame({ partitions: [{ topic: 'keyed', partition: 0, bytes: reserved.length }] }, [reserved]));
    const refused = await fetch(`${url(1)}/produce`, { method: 'POST', headers: { 'content-type': FRAME_CONTENT_TYPE }, body: frame });
    expect(((await refused.json()) as any).partitions[0].error).toMatchObject({ code: 'INVALID_REQUEST', message: expect.stringContaining('reserved') });
    // A batch with a producer id but no sequence would be taken for a duplicate of any other such batch: refused.
    for (const fields of [{ producerEpoch: 0, baseSequence: -1 }, { producerEpoch: -1, baseSequence: 0 }]) {
      const unsequenced = encodeRecordBatch([{ key: null, value: Buffer.from('u'), timestamp: 1 }], { producerId: 7, ...fields });
      const body = Buffer.concat(encodeFrame({ partitions: [{ topic: 'keyed', partition: 0, bytes: unsequenced.length }] }, [unsequenced]));
      const answer = await fetch(`${url(1)}/produce`, { method: 'POST', headers: { 'content-type': FRAME_CONTENT_TYPE }, body });
      expect(((await answer.json()) as any).partitions[0].error).toMatchObject({ code: 'INVALID_REQUEST', message: expect.stringContaining('base sequence of 0 or more') });
    }

    // The keys came to the secondary with the batches: after a move it answers them as the primary did.
    const assignment = coordinator.assignment('keyed', 0);
    Object.assign(assignment, { primary: 2, secondary: 1, epoch: 1, isr: [2, 1] });
    await coordinator.changed();
    await vi.waitFor(async () => expect((await produce(2, 'order-2', ['c'])).body).toMatchObject({ baseOffset: 2, count: 1 }), { timeout: 10_000, interval: 50 });
    expect((await produce(2, 'order-3', ['f'])).body).toMatchObject({ baseOffset: 5, count: 1 });
    const stored = onDisk(dataDir(2), 'keyed', 0).values;
    expect(stored).toEqual(['a', 'b', 'c', 'd', 'd', 'f']);
    // Consumers see the key as a record header.
    const fetched = await post(`${url(2)}/fetch`, { partitions: [{ topic: 'keyed', partition: 0, offset: 0 }] });
    expect(fetched.body.partitions[0].records[0].headers).toEqual({ 'Idempotency-Key': 'order-1' });
    // The topic goes, so its replicas take no part in the later scenarios.
    coordinator.topics.delete('keyed');
    await coordinator.changed();
    await vi.waitFor(() => expect(onDisk(dataDir(1), 'keyed', 0).held).toBe(false));
  });

  it('refuses NOT_ENOUGH_REPLICAS when minInsyncReplicas is 2 and the ISR has one member', async () => {
    await coordinator.createTopic('strict', { primary: 1, secondary: null, epoch: 0, isr: [1] }, { minInsyncReplicas: 2 });
    const refused = await post(`${url(1)}/topics/strict/partitions/0/records`, { records: records(1, 's') });
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe('NOT_ENOUGH_REPLICAS');
  });

  it('fences a push of a stale epoch, and answers OFFSET_MISMATCH with its log so a primary can truncate it', async () => {
    // The primary is a broker that does not run: this test's pushes are the only ones broker 2
    // gets (a running primary's own sync push could truncate the log between them).
    await coordinator.createTopic('fenced', { primary: 9, secondary: 2, epoch: 5, isr: [9, 2] });
    const base = { topic: 'fenced', partition: 0, primaryId: 9 };

    const [stale] = await exchange(url(2), [{ head: { ...base, epoch: 4, baseOffset: 0 }, batches: [rec(0, 4)] }]);
    expect(stale.error).toMatchObject({ code: 'STALE_EPOCH', epoch: 5 });

    const [ok] = await exchange(url(2), [{ head: { ...base, epoch: 5, baseOffset: 0 }, batches: [rec(0, 5), rec(1, 5), rec(2, 5)] }]);
    expect(ok).toEqual({ leo: 3, epoch: 5 });
    const [gap] = await exchange(url(2), [{ head: { ...base, epoch: 5, baseOffset: 7 }, batches: [rec(7, 5)] }]);
    expect(gap.error).toMatchObject({ code: 'OFFSET_MISMATCH', leo: 3, epochs: [[5, 0]] });
    // A newer primary truncates the tail it does not share and writes its own epoch, but only
    // while the log still ends where the mismatch answer showed it.
    const truncate = { ...base, epoch: 6, baseOffset: 1, truncateTo: 1 };
    const [notSeen] = await exchange(url(2), [{ head: { ...truncate, truncateSeen: { leo: 2, epoch: 5 } }, batches: [rec(1, 6)] }]);
    expect(notSeen.error).toMatchObject({ code: 'OFFSET_MISMATCH', leo: 3 });
    const [truncated] = await exchange(url(2), [{ head: { ...truncate, truncateSeen: { leo: 3, epoch: 5 } }, batches: [rec(1, 6)] }]);
    expect(truncated).toEqual({ leo: 2, epoch: 6 });
    expect(onDisk(dataDir(2), 'fenced', 0)).toMatchObject({ values: ['v0', 'v1'], epochs: [{ epoch: 5, start_offset: 0 }, { epoch: 6, start_offset: 1 }] });
    // A push whose previous record has another epoch than ours is refused, so diverged logs of one length are caught.
    const [otherPrev] = await exchange(url(2), [{ head: { ...base, epoch: 6, baseOffset: 2, prevEpoch: 5 }, batches: [] }]);
    expect(otherPrev.error).toMatchObject({ code: 'OFFSET_MISMATCH', leo: 2, epochs: [[5, 0], [6, 1]] });
    // One exchange carries several pushes, each answered on its own: this one applies, the next is stale.
    const [samePrev, nowStale] = await exchange(url(2), [
      { head: { ...base, epoch: 6, baseOffset: 2, prevEpoch: 6 }, batches: [rec(2, 6)] },
      { head: { ...base, epoch: 5, baseOffset: 3 }, batches: [] },
    ]);
    expect(samePrev).toEqual({ leo: 3, epoch: 6 });
    // The truncating push again, arriving late (held up while the push above was applied): it
    // would cut record 2, which the primary counts as replicated; refused.
    const [late] = await exchange(url(2), [{ head: { ...truncate, truncateSeen: { leo: 3, epoch: 5 } }, batches: [rec(1, 6)] }]);
    expect(late.error).toMatchObject({ code: 'OFFSET_MISMATCH', leo: 3, epochs: [[5, 0], [6, 1]] });
    // Having seen epoch 6, the replica refuses epoch 5 now.
    expect(nowStale.error).toMatchObject({ code: 'STALE_EPOCH', epoch: 6 });
    // A push whose batches do not follow each other is bad input, refused before anything is stored.
    const [broken] = await exchange(url(2), [{ head: { ...base, epoch: 6, baseOffset: 3 }, batches: [rec(3, 6), rec(5, 6)] }]);
    expect(broken.error).toMatchObject({ code: 'INVALID_REQUEST' });
    expect(onDisk(dataDir(2), 'fenced', 0).values).toEqual(['v0', 'v1', 'v2']);
  });

  it("takes the primary's log start from its pushes, and starts empty there when its whole log lies below it", async () => {
    // The primary is a broker that does not run (3), so only this test's pushes reach broker 2.
    await coordinator.createTopic('trimmed', { primary: 3, secondary: 2, epoch: 1, isr: [3, 2] });
    const base = { topic: 'trimmed', partition: 0, primaryId: 3, epoch: 1 };
    const [ok] = await exchange(url(2), [{ head: { ...base, baseOffset: 0, hw: 4 }, batches: [rec(0, 1), rec(1, 1), rec(2, 1), rec(3, 1)] }]);
    expect(ok).toEqual({ leo: 4, epoch: 1 });
    // An empty push moves the log start (retention on the primary): batches below it go, the rest stays.
    const [moved] = await exchange(url(2), [{ head: { ...base, baseOffset: 4, prevEpoch: 1, hw: 4, logStartOffset: 2 }, batches: [] }]);
    expect(moved).toEqual({ leo: 4, epoch: 1 });
    // A follower never goes below a log start it took, and a push may not ask for records before it.
    const [behind] = await exchange(url(2), [{ head: { ...base, baseOffset: 1, truncateTo: 1, hw: 4, logStartOffset: 2 }, batches: [rec(1, 1)] }]);
    expect(behind.error).toMatchObject({ code: 'OFFSET_MISMATCH', leo: 4 });
    // The primary's log start is past this whole log (it was away while retention ran): it starts empty there.
    const [reset] = await exchange(url(2), [{ head: { ...base, baseOffset: 10, hw: 11, logStartOffset: 10 }, batches: [rec(10, 1)] }]);
    expect(reset).toEqual({ leo: 11, epoch: 1 });
    expect(onDisk(dataDir(2), 'trimmed', 0).epochs).toEqual([{ epoch: 1, start_offset: 10 }]);
    // The background pass deletes what lies below the log start; what is left is the new log.
    await vi.waitFor(() => expect(onDisk(dataDir(2), 'trimmed', 0).values).toEqual(['v10']), { timeout: 5_000, interval: 50 });
  });

  it('answers bad requests with 4xx error bodies and stores nothing of them', async () => {
    const produce = `${url(1)}/topics/orders/partitions/0/records`;
    const cases: Array<[string, unknown, number, string, boolean?]> = [
      [produce, '{not json', 400, 'INVALID_REQUEST', true],
      [produce, {}, 400, 'INVALID_REQUEST'],
      [produce, { records: [] }, 400, 'INVALID_REQUEST'],
      [produce, { records: [{ value: 5 }] }, 400, 'INVALID_REQUEST'],
      [produce, { records: [{ value: 'x' }], extra: 1 }, 400, 'INVALID_REQUEST'],
      [`${url(1)}/topics/orders/partitions/abc/records`, { records: [{ value: 'x' }] }, 400, 'INVALID_REQUEST'],
      [`${url(1)}/topics/bad%20name/partitions/0/records`, { records: [{ value: 'x' }] }, 400, 'INVALID_REQUEST'],
      [`${url(1)}/topics/orders/partitions/-1/records`, { records: [{ value: 'x' }] }, 400, 'INVALID_REQUEST'],
      [produce, { records: [{ value: 'ok' }, { value: 'y'.repeat(1_001) }] }, 413, 'PAYLOAD_TOO_LARGE'],
      [produce, { records: [{ value: 'é'.repeat(501) }] }, 413, 'PAYLOAD_TOO_LARGE'],
      [`${url(1)}/fetch`, { partitions: [] }, 400, 'INVALID_REQUEST'],
      [`${url(1)}/fetch`, { partitions: [{ topic: 'orders', partition: 0, offset: -1 }] }, 400, 'INVALID_REQUEST'],
      [`${url(1)}/commit`, { group: 'g', offsets: [] }, 400, 'INVALID_REQUEST'],
      [`${url(1)}/offsets`, { group: '..', partitions: [{ topic: 'orders', partition: 0 }] }, 400, 'INVALID_REQUEST'],
      [`${url(2)}/internal/replicate`, { topic: 'orders' }, 400, 'INVALID_REQUEST'],
      [`${url(2)}/internal/metadata-changed`, { version: 'x' }, 400, 'INVALID_REQUEST'],
      [`${url(1)}/no/such/route`, {}, 404, 'NOT_FOUND'],
    ];
    const leoBefore = onDisk(dataDir(1), 'orders', 0).values.length;
    for (const [target, body, status, code, raw] of cases) {
      const answer = await post(target, body, raw);
      expect({ target, body, status: answer.status, code: answer.body?.error?.code }).toEqual({ target, body, status, code });
      expect(typeof answer.body.error.message).toBe('string');
    }
    expect(onDisk(dataDir(1), 'orders', 0).values.length).toBe(leoBefore);
    const health = await fetch(`${url(1)}/health`);
    expect(health.status).toBe(200);
  });

  it('shrinks the ISR through the coordinator when the secondary stops, then catches it up and expands the ISR', async () => {
    await coordinator.createTopic('failover', { primary: 1, secondary: 2, epoch: 0, isr: [1, 2] });
    expect((await post(`${url(1)}/topics/failover/partitions/0/records`, { records: records(10, 'before') })).status).toBe(200);

    const secondaryPort = Number(new URL(url(2)).port);
    await brokers.get(2)!.close();
    brokers.delete(2);

    // The produce waits for the secondary, then for the coordinator to accept ISR [1], then succeeds alone.
    const alone = await post(`${url(1)}/topics/failover/partitions/0/records`, { records: records(5, 'alone') });
    expect(alone.status).toBe(200);
    expect(alone.body).toMatchObject({ baseOffset: 10, count: 5 });
    expect(coordinator.isrRequests).toContainEqual({ brokerId: 1, topic: 'failover', partition: 0, epoch: 0, isr: [1] });
    expect(coordinator.assignment('failover', 0).isr).toEqual([1]);
    // orders was idle, so its ISR is still whole; every later produce there would shrink it too.
    for (let i = 0; i < 3; i++) {
      expect((await post(`${url(1)}/topics/failover/partitions/0/records`, { records: records(2, `more${i}`) })).status).toBe(200);
    }

    // The secondary comes back on the same port and data dir; the primary catches it up and expands the ISR.
    await start(2, secondaryPort);
    await vi.waitFor(() => expect(coordinator.assignment('failover', 0).isr).toEqual([1, 2]), { timeout: 15_000, interval: 50 });
    expect(coordinator.isrRequests).toContainEqual({ brokerId: 1, topic: 'failover', partition: 0, epoch: 0, isr: [1, 2] });
    expect(onDisk(dataDir(2), 'failover', 0).values).toEqual(onDisk(dataDir(1), 'failover', 0).values);
    expect(onDisk(dataDir(2), 'failover', 0).values).toHaveLength(21);

    // Back in the ISR, produces are replicated synchronously again.
    expect((await post(`${url(1)}/topics/failover/partitions/0/records`, { records: records(1, 'after') })).status).toBe(200);
    expect(onDisk(dataDir(2), 'failover', 0).values.at(-1)).toBe('after-0');
  });

  it('catches up a replica being added while produces go on, and makes it the secondary only through reassign-complete', async () => {
    // Proves the move path on the primary: the target is caught up like an out-of-ISR secondary
    // (never counted for the HW), and the swap request is asked again when unanswered.
    await coordinator.createTopic('adding', { primary: 1, secondary: null, epoch: 0, isr: [1] });
    expect((await post(`${url(1)}/topics/adding/partitions/0/records`, { records: records(20, 'before') })).status).toBe(200);
    coordinator.reassignFailures = 1;
    Object.assign(coordinator.assignment('adding', 0), { adding: 2 });
    await coordinator.changed();
    // Produces during the catch-up are acknowledged on the primary alone (the target does not count).
    expect((await post(`${url(1)}/topics/adding/partitions/0/records`, { records: records(5, 'during') })).status).toBe(200);
    await vi.waitFor(() => expect(coordinator.assignment('adding', 0)).toMatchObject({ secondary: 2, isr: [1, 2], adding: null }), {
      timeout: 15_000,
      interval: 50,
    });
    expect(coordinator.reassignRequests.length).toBeGreaterThanOrEqual(2);
    expect(coordinator.reassignRequests.at(-1)).toEqual({ brokerId: 1, topic: 'adding', partition: 0, epoch: 0, target: 2 });
    // From the swap on, every produce is replicated to the new secondary before it is acknowledged.
    expect((await post(`${url(1)}/topics/adding/partitions/0/records`, { records: records(1, 'after') })).status).toBe(200);
    expect(onDisk(dataDir(2), 'adding', 0).values).toEqual(onDisk(dataDir(1), 'adding', 0).values);
    expect(onDisk(dataDir(2), 'adding', 0).values).toHaveLength(26);
  });

  it('moves leadership to the secondary at a new epoch, truncating the old primary to the common prefix', async () => {
    await coordinator.createTopic('moving', { primary: 1, secondary: 2, epoch: 0, isr: [1, 2] });
    expect((await post(`${url(1)}/topics/moving/partitions/0/records`, { records: records(4, 'e0') })).status).toBe(200);
    // The old primary stops with a tail the secondary never got (written by hand, as if it crashed before replicating).
    const oldPort = Number(new URL(url(1)).port);
    await brokers.get(1)!.close();
    brokers.delete(1);
    const db = new Database(path.join(dataDir(1), 'broker.db'));
    const lost = encodeRecordBatch([{ key: null, value: Buffer.from('lost'), timestamp: 1 }], { baseOffset: 4, partitionLeaderEpoch: 0 });
    db.prepare("INSERT INTO batches (topic, partition, base_offset, last_offset, epoch, max_timestamp, data) VALUES ('moving', 0, 4, 4, 0, 1, ?)").run(lost);
    db.close();

    const assignment = coordinator.assignment('moving', 0);
    // Failover as the coordinator does it with broker 1 dead: broker 2 alone at epoch 1.
    Object.assign(assignment, { primary: 2, secondary: null, epoch: 1, isr: [2] });
    await coordinator.changed();
    // The new primary writes as many records as the lost tail: both logs end at 5 but differ at offset 4.
    const onNew = await post(`${url(2)}/topics/moving/partitions/0/records`, { records: records(1, 'e1') });
    expect(onNew.status).toBe(200);
    expect(onNew.body).toMatchObject({ baseOffset: 4, count: 1, epoch: 1 });

    // Broker 1 returns and is assigned as the secondary: the first probe finds two logs of one length.
    Object.assign(assignment, { secondary: 1 });
    await coordinator.changed();
    await start(1, oldPort);
    const onOld = await post(`${url(1)}/topics/moving/partitions/0/records`, { records: records(1, 'x') });
    expect(onOld.body.error).toMatchObject({ code: 'NOT_PRIMARY', primary: { id: 2 } });
    await vi.waitFor(() => expect(coordinator.assignment('moving', 0).isr).toEqual([2, 1]), { timeout: 15_000, interval: 50 });
    const oldPrimary = onDisk(dataDir(1), 'moving', 0);
    expect(oldPrimary.values).toEqual(['e0-0', 'e0-1', 'e0-2', 'e0-3', 'e1-0']);
    expect(oldPrimary.epochs).toEqual([{ epoch: 0, start_offset: 0 }, { epoch: 1, start_offset: 4 }]);
  });

  it('never acknowledges alone before the coordinator accepted the ISR shrink, and answers NOT_PRIMARY when it refuses', async () => {
    await coordinator.createTopic('guarded', { primary: 1, secondary: 2, epoch: 0, isr: [1, 2] });
    expect((await post(`${url(1)}/topics/guarded/partitions/0/records`, { records: records(1, 'g') })).status).toBe(200);
    const secondaryPort = Number(new URL(url(2)).port);
    const guardedIsrRequests = () => coordinator.isrRequests.filter((r) => r.topic === 'guarded');

    coordinator.isrMode = 'unavailable';
    await brokers.get(2)!.close();
    brokers.delete(2);
    let settled = false;
    const pending = post(`${url(1)}/topics/guarded/partitions/0/records`, { records: records(1, 'pending') }).finally(() => {
      settled = true;
    });
    await vi.waitFor(() => expect(guardedIsrRequests().length).toBeGreaterThanOrEqual(2), { timeout: 15_000, interval: 50 });
    // The shrink was asked twice and not granted: the record is stored but neither acknowledged nor visible.
    expect(settled).toBe(false);
    const meanwhile = await post(`${url(1)}/fetch`, { partitions: [{ topic: 'guarded', partition: 0, offset: 1 }] });
    expect(meanwhile.body.partitions[0]).toMatchObject({ highWatermark: 1, records: [] });
    coordinator.isrMode = 'accept';
    expect((await pending).body).toMatchObject({ baseOffset: 1, count: 1 });
    expect(coordinator.assignment('guarded', 0).isr).toEqual([1]);

    // Back to a full ISR, then a secondary failure whose shrink the coordinator refuses: deposed.
    await start(2, secondaryPort);
    await vi.waitFor(() => expect(coordinator.assignment('guarded', 0).isr).toEqual([1, 2]), { timeout: 15_000, interval: 50 });
    coordinator.isrMode = 'stale';
    await brokers.get(2)!.close();
    brokers.delete(2);
    const refused = await post(`${url(1)}/topics/guarded/partitions/0/records`, { records: records(1, 'refused') });
    expect(refused.status).toBe(421);
    expect(refused.body.error.code).toBe('NOT_PRIMARY');
    coordinator.isrMode = 'accept';
    await start(2, secondaryPort);
    // The topic goes: its deposed primary's ISR requests must not race the next scenario's.
    coordinator.topics.delete('guarded');
    await coordinator.changed();
  });

  it('counts a caught-up secondary for the HW from the moment it asks to expand the ISR, even when the answer is lost', async () => {
    // The coordinator applies the expand and vanishes before answering: it now counts the secondary
    // in the ISR (and would promote it), so the primary must never again acknowledge without it.
    await coordinator.createTopic('expand', { primary: 1, secondary: 2, epoch: 0, isr: [1, 2] });
    const secondaryPort = Number(new URL(url(2)).port);
    await brokers.get(2)!.close();
    brokers.delete(2);
    expect((await post(`${url(1)}/topics/expand/partitions/0/records`, { records: records(3, 'alone') })).status).toBe(200);
    expect(coordinator.assignment('expand', 0).isr).toEqual([1]);

    coordinator.isrMode = 'apply-then-vanish';
    await start(2, secondaryPort);
    await vi.waitFor(() => expect(coordinator.assignment('expand', 0).isr).toEqual([1, 2]), { timeout: 15_000, interval: 50 });
    expect(coordinator.down).toBe(true);

    await brokers.get(2)!.close();
    brokers.delete(2);
    let settled = false;
    const pending = post(`${url(1)}/topics/expand/partitions/0/records`, { records: records(1, 'unsure') }).finally(() => {
      settled = true;
    });
    // Well past the replica timeout: without the secondary and without the coordinator, nothing is acknowledged.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(settled).toBe(false);

    coordinator.isrMode = 'accept';
    coordinator.down = false;
    expect((await pending).status).toBe(200);
    expect(coordinator.assignment('expand', 0).isr).toEqual([1]);
    await start(2, secondaryPort);
  });

  it('asks for an ISR expansion with the version it decided on until the coordinator answers, acknowledging nothing alone meanwhile', async () => {
    // Going back to acknowledging alone after an unanswered expansion would let that request,
    // applied later at the same version, count the secondary in sync while it lacks those records.
    // Produces go on meanwhile, each acknowledged once the secondary holds it.
    await coordinator.createTopic('versioned', { primary: 1, secondary: 2, epoch: 0, isr: [1, 2], version: 4 });
    const secondaryPort = Number(new URL(url(2)).port);
    await brokers.get(2)!.close();
    brokers.delete(2);
    expect((await post(`${url(1)}/topics/versioned/partitions/0/records`, { records: records(2, 'alone') })).status).toBe(200);
    expect(coordinator.assignment('versioned', 0)).toMatchObject({ isr: [1], version: 5 });
    const expansions = () => coordinator.isrRequests.filter((r) => r.topic === 'versioned' && r.isr.length === 2);

    coordinator.isrMode = 'unavailable';
    await start(2, secondaryPort);
    await vi.waitFor(() => expect(expansions().length).toBeGreaterThanOrEqual(3), { timeout: 15_000, interval: 50 });
    expect(expansions().map((r) => r.version)).toEqual(expansions().map(() => 5));
    expect((await post(`${url(1)}/topics/versioned/partitions/0/records`, { records: records(1, 'unsure') })).body).toMatchObject({ baseOffset: 2, count: 1 });
    expect(onDisk(dataDir(2), 'versioned', 0).values).toEqual(['alone-0', 'alone-1', 'unsure-0']);
    const asked = expansions().length;
    await vi.waitFor(() => expect(expansions().length).toBeGreaterThan(asked), { timeout: 15_000, interval: 50 });
    expect(coordinator.assignment('versioned', 0)).toMatchObject({ isr: [1], version: 5 });

    coordinator.isrMode = 'accept';
    await vi.waitFor(() => expect(coordinator.assignment('versioned', 0)).toMatchObject({ isr: [1, 2], version: 6 }), { timeout: 15_000, interval: 50 });
    expect(expansions().map((r) => r.version)).toEqual(expansions().map(() => 5));

    // Refused as decided on an older assignment: the primary fetches the map and asks again with its version.
    await brokers.get(2)!.close();
    brokers.delete(2);
    expect((await post(`${url(1)}/topics/versioned/partitions/0/records`, { records: records(1, 'again') })).status).toBe(200);
    expect(coordinator.assignment('versioned', 0)).toMatchObject({ isr: [1], version: 7 });
    const before = expansions().length;
    coordinator.isrMode = 'moved-on';
    await start(2, secondaryPort);
    await vi.waitFor(() => expect(coordinator.assignment('versioned', 0).isr).toEqual([1, 2]), { timeout: 15_000, interval: 50 });
    expect(expansions().slice(before).map((r) => r.version)).toEqual([7, 8]);
    expect(coordinator.assignment('versioned', 0).version).toBe(9);
    coordinator.topics.delete('versioned');
    await coordinator.changed();
  });

  it('migrates a data dir of the per-partition layout when started on it, and serves every record and committed offset', async () => {
    // Broker 3's data dir holds two replicas written by the former layout.
    const legacy = oldRecords(300, (offset) => (offset < 120 ? 0 : 2));
    writeLegacyReplica(dataDir(3), 'legacy', 0, legacy, { hw: 300, groups: [['readers', 250, 4]] });
    writeLegacyReplica(dataDir(3), 'legacy', 1, oldRecords(5, () => 1), { hw: 5, groups: [] });
    await coordinator.createTopic('legacy', { primary: 3, secondary: null, epoch: 2, isr: [3] }, { partitions: 2 });
    await start(3);
    try {
      const read = await post(`${url(3)}/fetch`, { partitions: [{ topic: 'legacy', partition: 0, offset: 0 }, { topic: 'legacy', partition: 1, offset: 0 }] });
      const [p0, p1] = read.body.partitions;
      expect(p0.highWatermark).toBe(300);
      expect(p0.records.map((r: any) => ({ offset: r.offset, timestamp: r.timestamp, key: r.key, value: r.value, headers: r.headers }))).toEqual(
        legacy.map(({ epoch: _epoch, ...record }) => record),
      );
      expect(p1.records.map((r: any) => r.value)).toEqual(oldRecords(5, () => 1).map((r) => r.value));
      const offsets = await post(`${url(3)}/offsets`, { group: 'readers', partitions: [{ topic: 'legacy', partition: 0 }] });
      expect(offsets.body.partitions[0].offset).toBe(250);
      // The epoch history came along: a write now starts epoch 2 at offset 300 after epochs 0 and 2.
      expect((await post(`${url(3)}/topics/legacy/partitions/0/records`, { records: records(1, 'new') })).body).toMatchObject({ baseOffset: 300, epoch: 2 });
      expect(onDisk(dataDir(3), 'legacy', 0).epochs).toEqual([{ epoch: 0, start_offset: 0 }, { epoch: 2, start_offset: 120 }]);
      expect(fs.existsSync(path.join(dataDir(3), 'legacy', '0.db'))).toBe(false);
    } finally {
      await brokers.get(3)!.close();
      brokers.delete(3);
      coordinator.topics.delete('legacy');
      await coordinator.changed();
    }
  });

  it('refuses a call naming a newer epoch than its own (UNKNOWN_EPOCH, nothing stored), fetches the map it asks for, and serves calls of older maps', async () => {
    await coordinator.createTopic('behind', { primary: 1, secondary: null, epoch: 2, isr: [1] });
    const batch = (value: string) => encodeRecordBatch([{ key: null, value: Buffer.from(value), timestamp: 1 }]);
    const produce = async (epoch: number, value: string) => {
      const body = Buffer.concat(encodeFrame({ partitions: [{ topic: 'behind', partition: 0, epoch, bytes: batch(value).length }] }, [batch(value)]));
      const response = await fetch(`${url(1)}/produce`, { method: 'POST', headers: { 'content-type': FRAME_CONTENT_TYPE }, body });
      return ((await response.json()) as any).partitions[0];
    };
    const read = async (epoch: number) =>
      (await post(`${url(1)}/fetch`, { partitions: [{ topic: 'behind', partition: 0, offset: 0, epoch }] })).body.partitions[0];
    const commit = async (epoch: number) =>
      (await post(`${url(1)}/commit`, { group: 'g-behind', generation: 0, offsets: [{ topic: 'behind', partition: 0, offset: 0, epoch }] })).body.results[0];
    const positions = async (epoch: number) =>
      (await post(`${url(1)}/list-offsets`, { partitions: [{ topic: 'behind', partition: 0, epoch, at: 'latest' }] })).body.partitions[0];
    const committed = async (epoch: number) =>
      (await post(`${url(1)}/offsets`, { group: 'g-behind', partitions: [{ topic: 'behind', partition: 0, epoch }] })).body.partitions[0];
    // The coordinator's own store of a group's offsets (a reset), at a generation it just made.
    const reset = async (epoch: number) =>
      (await post(`${url(1)}/internal/group-offsets`, { group: 'g-reset', generation: 1, offsets: [{ topic: 'behind', partition: 0, offset: 0, epoch }] })).body.results[0];
    // The coordinator's purge of the topic (the log start moves to the HW).
    const purge = async (epoch: number) => await post(`${url(1)}/internal/purge`, { topic: 'behind', partition: 0, epoch });
    coordinator.groups['g-behind'] = 0;

    // A caller whose map is older than the broker's is served as one that names no epoch.
    expect(await produce(1, 'older-map')).toMatchObject({ baseOffset: 0, epoch: 2 });
    expect((await read(1)).records.map((r: { value: string }) => r.value)).toEqual(['older-map']);

    // The coordinator moves on (epoch 3) without telling the broker, and cannot answer it for a
    // while: only the callers know of epoch 3.
    coordinator.assignment('behind', 0).epoch = 3;
    coordinator.down = true;
    const refused = await produce(3, 'newer-map');
    expect(refused.error).toMatchObject({ code: 'UNKNOWN_EPOCH', retriable: true, epoch: 2 });
    expect((await read(3)).error).toMatchObject({ code: 'UNKNOWN_EPOCH', epoch: 2 });
    expect((await commit(3)).error).toMatchObject({ code: 'UNKNOWN_EPOCH' });
    expect((await positions(3)).error).toMatchObject({ code: 'UNKNOWN_EPOCH' });
    expect((await committed(3)).error).toMatchObject({ code: 'UNKNOWN_EPOCH' });
    expect((await reset(3)).error).toMatchObject({ code: 'UNKNOWN_EPOCH' });
    const purgeRefused = await purge(3);
    expect(purgeRefused.status).toBe(409);
    expect(purgeRefused.body.error).toMatchObject({ code: 'UNKNOWN_EPOCH' });
    expect(onDisk(dataDir(1), 'behind', 0).values).toEqual(['older-map']);
    expect(onDisk(dataDir(1), 'behind', 0).groups).toEqual([]);
    coordinator.down = false;

    // The refusals made the broker fetch the map: the same calls go through at epoch 3 (the
    // refused purge moved nothing: the log still starts at 0).
    await vi.waitFor(async () => expect(await produce(3, 'newer-map')).toMatchObject({ baseOffset: 1, epoch: 3 }));
    expect((await read(3)).records.map((r: { value: string }) => r.value)).toEqual(['older-map', 'newer-map']);
    expect((await commit(3)).error).toBeUndefined();
    expect(await positions(3)).toMatchObject({ offset: 2 });
    expect(await committed(3)).toMatchObject({ offset: 0 });
    expect((await reset(3)).error).toBeUndefined();
    expect((await purge(3)).body).toMatchObject({ logStartOffset: 2, highWatermark: 2 });
  });

  it('drops what it kept of a deleted topic when a topic of the same name is made again above its epochs, though it never heard of the deletion', async () => {
    await coordinator.createTopic('remade', { primary: 1, secondary: null, epoch: 0, isr: [1] });
    expect((await post(`${url(1)}/topics/remade/partitions/0/records`, { records: records(3, 'old') })).body).toMatchObject({ baseOffset: 0 });
    const commit = await post(`${url(1)}/commit`, { group: 'readers', generation: 0, offsets: [{ topic: 'remade', partition: 0, offset: 2 }] });
    expect(commit.status).toBe(200);
    // Deleted and made again with the same placement; this broker hears only of the new one.
    coordinator.topics.set('remade', {
      name: 'remade',
      replicationFactor: 1,
      config: { minInsyncReplicas: 1 },
      firstEpoch: 1,
      partitions: [{ partition: 0, primary: 1, secondary: null, epoch: 1, isr: [1] }],
    });
    await coordinator.changed();
    await vi.waitFor(() => expect(onDisk(dataDir(1), 'remade', 0)).toMatchObject({ values: [], groups: [] }));
    const read = await post(`${url(1)}/fetch`, { partitions: [{ topic: 'remade', partition: 0, offset: 0 }] });
    expect(read.body.partitions[0]).toMatchObject({ records: [], highWatermark: 0 });
    expect((await post(`${url(1)}/topics/remade/partitions/0/records`, { records: records(1, 'new') })).body).toMatchObject({ baseOffset: 0, epoch: 1 });
    expect(onDisk(dataDir(1), 'remade', 0)).toMatchObject({ values: ['new-0'], epochs: [{ epoch: 1, start_offset: 0 }] });
  });

  it('drops the replicas of a deleted topic', async () => {
    coordinator.topics.delete('strict');
    coordinator.topics.delete('fenced');
    await coordinator.changed();
    await vi.waitFor(() => {
      expect(onDisk(dataDir(1), 'strict', 0)).toMatchObject({ values: [], held: false });
      expect(onDisk(dataDir(2), 'fenced', 0)).toMatchObject({ values: [], epochs: [], held: false });
    });
    const answer = await post(`${url(1)}/topics/strict/partitions/0/records`, { records: records(1, 'x') });
    expect(answer.body.error.code).toBe('PARTITION_NOT_FOUND');
  });
});
