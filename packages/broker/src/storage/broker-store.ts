/**
 * The broker's storage: ONE SQLite database (WAL) for every partition replica this broker
 * holds, `DATA/broker.db`. Logs are stored by batch (one row per RecordBatch, its bytes as
 * they came from the producer with the offsets and epoch the primary assigned), so nothing
 * on the write or read path looks at single records.
 *
 * Group commit across partitions: every write (append, truncation, commit of group offsets,
 * HW checkpoint) is queued with `write()` as statements to run, and all queued writes of
 * every partition go in ONE transaction, so at most one fsync covers them all. The
 * transactions run on a worker thread with its own connection (WAL: one writer, readers
 * beside it), so the event loop keeps serving fetches, pushes and heartbeats while the disk
 * syncs; the next transaction takes everything queued meanwhile. A log's in-memory view (LEO,
 * epoch history) moves when its write is queued, so the next write of the same log checks
 * against it; readers (this thread's connection) only read what their callers know is
 * committed. A write that fails is fatal (the database and the in-memory view could
 * disagree): the broker stops loudly, like a Kafka broker whose only log directory failed.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { DELETED_GROUP_OFFSET } from '@tessera/protocol';
import { sqliteFreePageBytes } from '@tessera/service';
import { InvariantError, assert } from '../util/assert.js';
import { PartitionProducers, encodeSpans, sequencedBatch, type ProducerRow } from '../producers/producer-state.js';
import { META_SCHEMA_VERSION, MIGRATIONS, SCHEMA, SCHEMA_VERSION, SQL } from './sql.js';

export type Durability = 'full' | 'normal';

/** One RecordBatch as stored: its offsets, the epoch of the primary that wrote it, and its bytes. */
export interface StoredBatch {
  baseOffset: number;
  lastOffset: number;
  epoch: number;
  maxTimestamp: number;
  bytes: Buffer;
}

export interface GroupOffset {
  group: string;
  offset: number;
  generation: number;
}

/** `[epoch, startOffset]`: the first offset written in `epoch`. Sorted by epoch (and so by offset). */
export type EpochEntry = [epoch: number, startOffset: number];

/** The one size function: what a batch counts for in every byte limit (fetch, replication, queues). */
export function batchBytes(batch: { bytes: Buffer }): number {
  return batch.bytes.length;
}

export const DATABASE_FILE = 'broker.db';

/** The largest shared buffer kept for the next transaction's blobs (see BrokerStore.packOps). */
const SHARED_BLOBS_KEPT_BYTES = 16 * 1024 * 1024;

/** How long a partition keeps an idle producer's state (Kafka's transactional.id.expiration.ms default: 7 days). */
export const DEFAULT_PRODUCER_STATE_EXPIRY_MS = 7 * 24 * 60 * 60 * 1000;
/** How often a log drops expired producers, at most (checked on its appends). */
const PRODUCER_EXPIRY_SWEEP_MS = 60_000;

/** How long a partition remembers an idempotency key of the JSON produce route (JetStream's default duplicate window). */
export const DEFAULT_IDEMPOTENCY_WINDOW_MS = 2 * 60 * 1000;

export interface StoreOptions {
  /** How long a partition keeps the state of a producer it has not stored a batch of. */
  producerStateExpiryMs?: number;
  /** How long a partition remembers an idempotency key. */
  idempotencyWindowMs?: number;
}

type Stmt = Database.Statement;
type Statements = Record<keyof typeof SQL, Stmt>;
/** One statement of a write, by name, with its parameters. */
export type WriteOp = [statement: keyof typeof SQL, ...params: Array<string | number | Buffer | null>];
/** A write op as sent to the commit thread: its blobs are views of shared memory. */
type PackedOp = [statement: keyof typeof SQL, ...params: Array<string | number | Uint8Array | null>];

/**
 * The commit thread (plain JavaScript, evaluated as a worker so it runs the same from sources
 * and from dist): its own connection, the same prepared statements, one transaction per message.
 */
const COMMIT_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = ' + workerData.synchronous);
const statements = {};
for (const [name, sql] of Object.entries(workerData.sql)) statements[name] = db.prepare(sql);
// Blobs come as views of the shared buffer the event loop copied them into (see packOps).
const asBuffer = (p) => (p instanceof Uint8Array && !Buffer.isBuffer(p) ? Buffer.from(p.buffer, p.byteOffset, p.byteLength) : p);
const run = db.transaction((ops) => {
  for (const op of ops) statements[op[0]].run(...op.slice(1).map(asBuffer));
});
parentPort.on('message', (message) => {
  if (message.close) {
    db.close();
    parentPort.postMessage({ closed: true });
    return;
  }
  try {
    run(message.ops);
    parentPort.postMessage({ ok: true });
  } catch (error) {
    parentPort.postMessage({ error: String((error && error.message) || error), code: error && error.code });
  }
});
`;

export class BrokerStore {
  readonly file: string;
  private readonly db: Database.Database;
  readonly stmt: Statements;
  private pending: WriteOp[] = [];
  private pendingWrites = 0;
  private waiters: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  private scheduled = false;
  private closed = false;
  private failed: Error | undefined;
  private readonly worker: Worker;
  /** Shared memory the blobs of a transaction are copied into for the commit thread (see packOps). */
  private sharedBlobs: SharedArrayBuffer | undefined;
  /** The transaction the worker runs now (one at a time, in order). */
  private inFlight: { waiters: BrokerStore['waiters']; writes: number; startedMs: number; ops: PackedOp[]; retried: boolean } | undefined;
  private idleWaiters: Array<() => void> = [];
  private closedByWorker: (() => void) | undefined;
  /** Called with the number of writes and the milliseconds of every group commit (metrics). */
  onCommit: ((writes: number, ms: number) => void) | undefined;
  /**
   * Called when a transaction failed with SQLITE_FULL; true when it freed space (the storage
   * reserve), and the same transaction is then run once more. Its writes were rolled back, so
   * running it again is the same transaction; the in-memory view already counts on it.
   */
  onFull: (() => boolean) | undefined;
  /** Called when a write failed: the broker must stop (see the module comment). */
  onFatal: (error: unknown) => void = (error) => {
    throw error;
  };

  readonly producerStateExpiryMs: number;
  readonly idempotencyWindowMs: number;

  private constructor(file: string, durability: Durability, options: StoreOptions) {
    this.file = file;
    this.producerStateExpiryMs = options.producerStateExpiryMs ?? DEFAULT_PRODUCER_STATE_EXPIRY_MS;
    this.idempotencyWindowMs = options.idempotencyWindowMs ?? DEFAULT_IDEMPOTENCY_WINDOW_MS;
    assert(this.idempotencyWindowMs > 0, `idempotency window ${this.idempotencyWindowMs} ms must be positive`);
    assert(this.producerStateExpiryMs > 0, `producer state expiry ${this.producerStateExpiryMs} ms must be positive`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${durability === 'full' ? 'FULL' : 'NORMAL'}`);
    this.db.exec(SCHEMA);
    const stmt = {} as Statements;
    for (const [name, sql] of Object.entries(SQL)) stmt[name as keyof typeof SQL] = this.db.prepare(sql);
    this.stmt = stmt;
    const version = (stmt.selectMeta.get(META_SCHEMA_VERSION) as { value: string } | undefined)?.value;
    if (version === undefined) stmt.upsertMeta.run(META_SCHEMA_VERSION, String(SCHEMA_VERSION));
    else if (Number(version) !== SCHEMA_VERSION) {
      let at = Number(version);
      if (!(at < SCHEMA_VERSION) || MIGRATIONS[at] === undefined) {
        throw new Error(`${file} has storage schema ${version}, this broker reads schema ${SCHEMA_VERSION}`);
      }
      this.db.transaction(() => {
        for (; at < SCHEMA_VERSION; at++) this.db.exec(MIGRATIONS[at]);
        stmt.upsertMeta.run(META_SCHEMA_VERSION, String(SCHEMA_VERSION));
      })();
    }
    this.worker = new Worker(COMMIT_WORKER, {
      eval: true,
      workerData: {
        file,
        synchronous: durability === 'full' ? 'FULL' : 'NORMAL',
        sql: SQL,
        driver: createRequire(import.meta.url).resolve('better-sqlite3'),
      },
    });
    this.worker.on('message', (message: { ok?: true; error?: string; code?: string; closed?: true }) => this.onWorkerMessage(message));
    this.worker.on('error', (error) => this.fail(new Error(`storage commit thread failed: ${error.message}`, { cause: error })));
  }

  static open(dataDir: string, durability: Durability, options: StoreOptions = {}): BrokerStore {
    return new BrokerStore(path.join(dataDir, DATABASE_FILE), durability, options);
  }

  /** The log of one partition replica (nothing is written until its first write). */
  log(topic: string, partition: number): PartitionLog {
    this.assertOpen();
    return new PartitionLog(this, topic, partition);
  }

  /** Bytes of free pages in the database: space deleted rows left, which new rows reuse. */
  freePageBytes(): number {
    return this.closed ? 0 : sqliteFreePageBytes(this.db);
  }

  /** Every partition with a log in this database. */
  partitions(): Array<{ topic: string; partition: number }> {
    this.assertOpen();
    return this.stmt.selectPartitions.all() as Array<{ topic: string; partition: number }>;
  }

  /**
   * Queues the statements of one write for the next group commit and resolves once the
   * transaction holding it committed. Writes run in the order they were queued.
   */
  write(ops: WriteOp[]): Promise<void> {
    this.assertOpen();
    if (this.failed !== undefined) return Promise.reject(this.failed);
    for (const op of ops) this.pending.push(op);
    this.pendingWrites++;
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.scheduled && this.inFlight === undefined) {
      this.scheduled = true;
      // setImmediate runs after the I/O callbacks of this loop turn: every request that arrived
      // together shares the transaction, and nothing waits for a timer.
      setImmediate(() => this.send());
    }
    return done;
  }

  /**
   * Resolves once every write queued so far is committed, however many are queued after it:
   * it joins the next transaction (or the running one when nothing waits), so a reader that
   * needs its partition's earlier writes waits at most two transactions even while other
   * partitions keep writing.
   */
  flushed(): Promise<void> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    if (this.pendingWrites > 0) return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (this.inFlight !== undefined) {
      const running = this.inFlight;
      return new Promise((resolve, reject) => running.waiters.push({ resolve, reject }));
    }
    return Promise.resolve();
  }

  /** Resolves once nothing is queued or running (for close: no writer may be left). */
  idle(): Promise<void> {
    if (this.inFlight === undefined && this.pendingWrites === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Hands everything queued to the commit thread, unless a transaction is running (then it follows). */
  private send(): void {
    this.scheduled = false;
    if (this.inFlight !== undefined || this.failed !== undefined) return;
    if (this.pendingWrites === 0) {
      const waiting = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiting) resolve();
      return;
    }
    const ops = this.packOps(this.pending);
    this.inFlight = { waiters: this.waiters, writes: this.pendingWrites, startedMs: performance.now(), ops, retried: false };
    this.pending = [];
    this.pendingWrites = 0;
    this.waiters = [];
    this.worker.postMessage({ ops });
  }

  /**
   * The ops of one transaction with their blobs copied into shared memory, so the commit thread
   * reads them where they are: a Buffer in a message is copied twice, serialized here and then
   * deserialized into fresh memory there, about 8 % of a broker's CPU with 1 KiB values
   * (docs/operations.md). The commit thread runs one transaction at a time and reads the blobs
   * only while it runs (SQLite copies what it binds), so the next transaction reuses the same
   * shared buffer; one larger than SHARED_BLOBS_KEPT_BYTES serves its transaction only.
   */
  private packOps(ops: WriteOp[]): PackedOp[] {
    let bytes = 0;
    for (const op of ops) for (let i = 1; i < op.length; i++) if (op[i] instanceof Uint8Array) bytes += (op[i] as Uint8Array).length;
    if (bytes === 0) return ops;
    let shared = this.sharedBlobs;
    if (shared === undefined || shared.byteLength < bytes) {
      const size = Math.max(bytes, Math.min(2 * (shared?.byteLength ?? 0), SHARED_BLOBS_KEPT_BYTES));
      shared = new SharedArrayBuffer(size);
      if (size <= SHARED_BLOBS_KEPT_BYTES) this.sharedBlobs = shared;
    }
    const packed: PackedOp[] = [];
    let at = 0;
    for (const op of ops) {
      if (!op.some((param) => param instanceof Uint8Array)) {
        packed.push(op);
        continue;
      }
      const copy: PackedOp = [...op];
      for (let i = 1; i < copy.length; i++) {
        const blob = copy[i];
        if (!(blob instanceof Uint8Array)) continue;
        const view = new Uint8Array(shared, at, blob.length);
        view.set(blob);
        copy[i] = view;
        at += blob.length;
      }
      packed.push(copy);
    }
    return packed;
  }

  private onWorkerMessage(message: { ok?: true; error?: string; code?: string; closed?: true }): void {
    if (message.closed) {
      this.closedByWorker?.();
      return;
    }
    const done = this.inFlight;
    if (done === undefined) return;
    if (message.error !== undefined && message.code === 'SQLITE_FULL' && !done.retried && this.onFull?.() === true) {
      // The disk filled under us (the space check refuses new writes, but another process may
      // fill the disk too): the reserve was released, run the same transaction once more.
      done.retried = true;
      this.worker.postMessage({ ops: done.ops });
      return;
    }
    this.inFlight = undefined;
    if (message.error !== undefined) {
      const error = new Error(`storage write failed: ${message.error}`);
      for (const waiter of done.waiters) waiter.reject(error);
      this.fail(error);
      return;
    }
    this.onCommit?.(done.writes, performance.now() - done.startedMs);
    for (const waiter of done.waiters) waiter.resolve();
    // What was queued during this transaction goes in the next one at once.
    this.send();
  }

  private fail(error: Error): void {
    if (this.failed !== undefined) return;
    this.failed = error;
    for (const waiter of this.waiters) waiter.reject(error);
    this.waiters = [];
    this.onFatal(error);
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** Commits what is queued, stops the commit thread and closes the database. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.failed === undefined) await this.idle();
    this.closed = true;
    const closed = new Promise<void>((resolve) => (this.closedByWorker = resolve));
    this.worker.postMessage({ close: true });
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    await this.worker.terminate();
    this.db.close();
  }

  assertOpen(): void {
    assert(!this.closed, `broker store ${this.file} is closed`);
  }
}

/**
 * One partition replica's log inside the broker's database, with the in-memory view every
 * check needs (LEO, log start, epoch history, HW checkpoint). Offsets are gap-free from the
 * log start, epochs never decrease, and the HW checkpoint never exceeds the LEO.
 */
export class PartitionLog {
  private leoValue: number;
  /** The LEO of what is committed (writes complete in queue order). */
  private durableLeoValue: number;
  private logStartValue: number;
  private epochHistory: EpochEntry[];
  private checkpointedHw: number;
  /** The idempotent producers' state of this log, moved by every append and truncation. */
  readonly producers: PartitionProducers;
  private lastExpirySweepMs = 0;
  /** Bytes of the stored batches, including those below the log start not deleted yet. */
  private sizeBytesValue: number;
  /** A truncation deleted batches whose sizes this view does not know: recount before trusting sizeBytes. */
  private sizeStale = false;

  constructor(
    private readonly store: BrokerStore,
    readonly topic: string,
    readonly partition: number,
  ) {
    const { stmt } = store;
    const state = stmt.selectPartition.get(topic, partition) as { hw: number; log_start_offset: number } | undefined;
    const first = stmt.firstBatch.get(topic, partition) as { base_offset: number } | undefined;
    const last = stmt.lastBatch.get(topic, partition) as { last_offset: number } | undefined;
    // The log start is where retention or a purge put it; batches below it may still be stored
    // until the background pass deletes them (a bounded number per pass), and the batch holding
    // it may begin before it. A log reset past its end (see resetTo) has only such batches.
    this.logStartValue = Math.max(state?.log_start_offset ?? 0, first?.base_offset ?? 0);
    this.leoValue = Math.max(this.logStartValue, last === undefined ? 0 : last.last_offset + 1);
    this.sizeBytesValue = (stmt.logBytes.get(topic, partition) as { bytes: number }).bytes;
    this.durableLeoValue = this.leoValue;
    this.epochHistory = (stmt.selectEpochs.all(topic, partition) as Array<{ epoch: number; start_offset: number }>).map(
      (row): EpochEntry => [row.epoch, row.start_offset],
    );
    // The checkpoint may be ahead of the log if the tail was truncated; HW never exceeds LEO.
    this.checkpointedHw = Math.min(state?.hw ?? 0, this.leoValue);
    this.producers = new PartitionProducers(store.producerStateExpiryMs, store.idempotencyWindowMs, stmt.selectProducers.all(topic, partition) as ProducerRow[]);
  }

  /** Log end offset: the offset the next record gets (counting writes queued but not yet committed). */
  get leo(): number {
    return this.leoValue;
  }

  get logStartOffset(): number {
    return this.logStartValue;
  }

  /** Bytes of the batches stored for this log (batches below the log start count until deleted). */
  get sizeBytes(): number {
    return this.sizeBytesValue;
  }

  /** The LEO of what is durable: writes queued but not yet committed are not counted. */
  get durableLeo(): number {
    return this.durableLeoValue;
  }

  /** The high watermark last checkpointed (restored on open as min(checkpoint, LEO)). */
  get hwCheckpoint(): number {
    return this.checkpointedHw;
  }

  /** The epoch of the last record, undefined for an empty log. */
  get lastEpoch(): number | undefined {
    return this.epochHistory.length === 0 ? undefined : this.epochHistory[this.epochHistory.length - 1][0];
  }

  /** The epoch of the oldest entry of the epoch history, undefined when it is empty. */
  get firstEpoch(): number | undefined {
    return this.epochHistory.length === 0 ? undefined : this.epochHistory[0][0];
  }

  /** The epoch that wrote `offset` (undefined outside the log). */
  epochAt(offset: number): number | undefined {
    if (offset < this.logStartValue || offset >= this.leoValue) return undefined;
    let found: number | undefined;
    for (const [epoch, start] of this.epochHistory) {
      if (start > offset) break;
      found = epoch;
    }
    return found;
  }

  /** A copy of the epoch history, `[epoch, startOffset]` pairs in order. */
  epochs(): EpochEntry[] {
    return this.epochHistory.map((entry): EpochEntry => [entry[0], entry[1]]);
  }

  /**
   * Appends `batches` (which must start at the LEO, follow each other without gaps and carry
   * non-decreasing epochs), stores `commits` and checkpoints `hw`, in the next group commit.
   * The in-memory view moves at once; the promise resolves once it is durable.
   */
  append(batches: StoredBatch[], commits: GroupOffset[] = [], hw?: number): Promise<void> {
    const { topic, partition } = this;
    let leo = this.leoValue;
    let lastEpoch = this.lastEpoch;
    const newEpochs: EpochEntry[] = [];
    for (const batch of batches) {
      // Offsets are gap-free: a batch can only be written at the log end.
      assert(batch.baseOffset === leo, `${topic}/${partition}: append at offset ${batch.baseOffset} but LEO is ${leo}`);
      assert(batch.lastOffset >= batch.baseOffset, `${topic}/${partition}: batch ${batch.baseOffset}..${batch.lastOffset} is empty`);
      // Epochs never go backwards in a log; a lower epoch here means divergence went unnoticed.
      assert(lastEpoch === undefined || batch.epoch >= lastEpoch, `${topic}/${partition}: batch epoch ${batch.epoch} < last epoch ${lastEpoch}`);
      if (lastEpoch === undefined || batch.epoch > lastEpoch) {
        newEpochs.push([batch.epoch, batch.baseOffset]);
        lastEpoch = batch.epoch;
      }
      leo = batch.lastOffset + 1;
    }
    if (hw !== undefined) assert(hw <= leo, `${topic}/${partition}: hw ${hw} beyond LEO ${leo} after append`);
    this.leoValue = leo;
    this.epochHistory.push(...newEpochs);
    const checkpoint = hw ?? this.checkpointedHw;
    this.checkpointedHw = checkpoint;
    const logStart = this.logStartValue;
    const ops: WriteOp[] = [];
    for (const [epoch, start] of newEpochs) ops.push(['insertEpoch', topic, partition, epoch, start]);
    for (const b of batches) ops.push(['insertBatch', topic, partition, b.baseOffset, b.lastOffset, b.epoch, b.maxTimestamp, b.bytes]);
    for (const c of commits) ops.push(['upsertGroupOffset', topic, partition, c.group, c.offset, c.generation]);
    ops.push(['upsertPartition', topic, partition, checkpoint, logStart]);
    this.recordProducers(batches, ops);
    for (const b of batches) this.sizeBytesValue += batchBytes(b);
    return this.store
      .write(ops)
      .then(() => {
        this.durableLeoValue = leo;
      });
  }

  /**
   * Whole batches from the one holding `fromOffset` up to `endOffset` (exclusive), about
   * `maxBytes` of them but at least one. Only what is committed is read: callers read below
   * an HW (fetch) or under the partition's lock once its writes are durable (replication).
   */
  readBatches(fromOffset: number, endOffset: number, maxBytes: number): StoredBatch[] {
    this.store.assertOpen();
    const end = Math.min(endOffset, this.leoValue);
    if (fromOffset >= end) return [];
    const batches: StoredBatch[] = [];
    let bytes = 0;
    for (const row of this.store.stmt.readBatches.iterate({ topic: this.topic, partition: this.partition, from: fromOffset, end }) as Iterable<BatchRow>) {
      if (row.last_offset < fromOffset) continue;
      const batch: StoredBatch = { baseOffset: row.base_offset, lastOffset: row.last_offset, epoch: row.epoch, maxTimestamp: 0, bytes: row.data };
      if (batches.length > 0 && bytes + batchBytes(batch) > maxBytes) break;
      bytes += batchBytes(batch);
      batches.push(batch);
    }
    return batches;
  }

  /**
   * The first batch from `fromOffset` below `endOffset` holding a record whose timestamp is at or
   * after `timestampMs`, found through the batches' max timestamps (the caller looks inside it
   * for the record); undefined when there is none. Reads only what is committed, like readBatches.
   */
  firstBatchAtTime(timestampMs: number, fromOffset: number, endOffset: number): StoredBatch | undefined {
    this.store.assertOpen();
    const end = Math.min(endOffset, this.leoValue);
    if (fromOffset >= end) return undefined;
    const row = this.store.stmt.firstBatchAtTime.get({ topic: this.topic, partition: this.partition, from: fromOffset, end, ts: timestampMs }) as
      | (BatchRow & { max_timestamp: number })
      | undefined;
    if (row === undefined) return undefined;
    return { baseOffset: row.base_offset, lastOffset: row.last_offset, epoch: row.epoch, maxTimestamp: row.max_timestamp, bytes: row.data };
  }

  /**
   * The stored batch holding `offset` (for cutting it at a truncation point), undefined outside
   * the log. It may still be queued for the group commit: this waits for what is queued first.
   */
  async batchAt(offset: number): Promise<StoredBatch | undefined> {
    this.store.assertOpen();
    await this.store.flushed();
    const row = this.store.stmt.batchAt.get(this.topic, this.partition, offset) as (BatchRow & { max_timestamp: number }) | undefined;
    if (row === undefined || row.last_offset < offset) return undefined;
    return { baseOffset: row.base_offset, lastOffset: row.last_offset, epoch: row.epoch, maxTimestamp: row.max_timestamp, bytes: row.data };
  }

  /**
   * Deletes every batch at or above `toOffset` and the epochs that started there, so the epoch
   * history describes the remaining log; a batch straddling `toOffset` is replaced by `cut`
   * (its records below `toOffset`, re-encoded by the caller). The HW checkpoint follows the LEO down.
   */
  truncate(toOffset: number, cut?: StoredBatch): Promise<void> {
    const { topic, partition } = this;
    assert(toOffset >= this.logStartValue, `${topic}/${partition}: truncate to ${toOffset} below log start ${this.logStartValue}`);
    if (toOffset >= this.leoValue) return Promise.resolve();
    if (cut !== undefined) {
      assert(cut.lastOffset === toOffset - 1, `${topic}/${partition}: cut batch ends at ${cut.lastOffset}, not ${toOffset - 1}`);
    }
    this.leoValue = toOffset;
    // Not counted as durable past the cut from now on: a replica promoted meanwhile takes its HW from it.
    this.durableLeoValue = Math.min(this.durableLeoValue, toOffset);
    this.sizeStale = true;
    this.epochHistory = this.epochHistory.filter((entry) => entry[1] < toOffset);
    this.checkpointedHw = Math.min(this.checkpointedHw, toOffset);
    const hw = this.checkpointedHw;
    const logStart = this.logStartValue;
    const ops: WriteOp[] = [['deleteBatchesFrom', topic, partition, cut?.baseOffset ?? toOffset]];
    if (cut !== undefined) ops.push(['insertBatch', topic, partition, cut.baseOffset, cut.lastOffset, cut.epoch, cut.maxTimestamp, cut.bytes]);
    ops.push(['deleteEpochsFrom', topic, partition, toOffset], ['upsertPartition', topic, partition, hw, logStart]);
    // The producer state forgets the removed batches (a cut batch counts with the records it keeps).
    this.producers.truncate(cut?.baseOffset ?? toOffset);
    this.recordProducers(cut === undefined ? [] : [cut], ops);
    return this.store
      .write(ops)
      .then(() => {
        this.durableLeoValue = toOffset;
      });
  }

  /** Checkpoints the high watermark (restored on reopen as min(checkpoint, LEO)). */
  checkpointHw(hw: number): Promise<void> {
    assert(hw <= this.leoValue, `${this.topic}/${this.partition}: hw ${hw} > leo ${this.leoValue}`);
    if (hw === this.checkpointedHw) return Promise.resolve();
    this.checkpointedHw = hw;
    const { topic, partition, logStartValue } = this;
    return this.store.write([['upsertPartition', topic, partition, hw, logStartValue]]);
  }

  /**
   * Records `batches` (being appended) in the producer state, drops expired producers now and
   * then, and adds the writes of every producer that changed to `ops`: the state is stored in
   * the transaction of the batches that changed it. A batch the primary already recorded when
   * it accepted it changes nothing (see applyBatch).
   */
  private recordProducers(batches: readonly StoredBatch[], ops: WriteOp[]): void {
    const nowMs = Date.now();
    for (const batch of batches) {
      const sequenced = sequencedBatch(batch.bytes);
      if (sequenced !== undefined) this.producers.apply(sequenced, batch.baseOffset, batch.lastOffset, nowMs);
    }
    if (nowMs - this.lastExpirySweepMs >= PRODUCER_EXPIRY_SWEEP_MS) {
      this.lastExpirySweepMs = nowMs;
      this.producers.expire(nowMs);
    }
    const { topic, partition } = this;
    for (const [producerId, entry] of this.producers.takeChanges()) {
      if (entry === undefined) ops.push(['deleteProducer', topic, partition, producerId]);
      else ops.push(['upsertProducer', topic, partition, producerId, entry.epoch, entry.lastUpdateMs, encodeSpans(entry.batches), entry.key ?? null]);
    }
  }

  /**
   * Moves the log start forward to `offset` (retention or a purge) and checkpoints `hw`, in the
   * next group commit. The log start never passes the HW, so nothing a consumer could not yet
   * read is given up; the batches wholly below it are deleted later by deleteBelowLogStart, a
   * bounded number at a time, and fetches below it are refused from now on.
   */
  advanceLogStart(offset: number, hw: number): Promise<void> {
    const { topic, partition } = this;
    assert(hw <= this.leoValue, `${topic}/${partition}: hw ${hw} > leo ${this.leoValue}`);
    assert(offset <= hw, `${topic}/${partition}: log start ${offset} beyond hw ${hw}`);
    if (offset <= this.logStartValue && hw === this.checkpointedHw) return Promise.resolve();
    this.logStartValue = Math.max(this.logStartValue, offset);
    this.checkpointedHw = hw;
    return this.store.write([['upsertPartition', topic, partition, hw, this.logStartValue]]);
  }

  /**
   * The log becomes empty at `offset`, with no epoch history (nothing of it is comparable with
   * the primary's any more). Two cases:
   * - forward, past the LEO: a follower whose whole log lies below the primary's log start (it
   *   was away while retention deleted what it lacks). Its old batches are deleted in the
   *   background like any batch below the log start;
   * - back, below the log start: a log that holds no records and no stored batch (see
   *   `isBare`) behind a primary whose log ends before it starts (a replica left by a topic
   *   of the same name, reset by retention, so nothing tells it from the new topic's). There is
   *   nothing in it to keep, and nothing stored that the lower offsets could meet again. Its
   *   group offsets are the old topic's too, so they go (as when a replica is dropped): a group
   *   the new topic lacks would otherwise resume it, after a failover here, at its offset in the
   *   old one (the catch-up's commits overwrite only the groups the primary has).
   */
  resetTo(offset: number): Promise<void> {
    const { topic, partition } = this;
    const back = offset <= this.leoValue;
    assert(!back || this.isBare(), `${topic}/${partition}: reset to ${offset} within a log that holds records (log start ${this.logStartValue}, leo ${this.leoValue})`);
    this.logStartValue = offset;
    this.leoValue = offset;
    this.epochHistory = [];
    this.checkpointedHw = offset;
    // What is durable is never counted past the log as it will be (a replica promoted while the
    // reset is being committed takes its HW from it). A deletion below the old log start that
    // committed but has not answered yet still subtracts its bytes: the size is left to it.
    if (back) this.durableLeoValue = Math.min(this.durableLeoValue, offset);
    // The producers' last sequences were written by batches this log no longer has: kept, they
    // would refuse a producer's next batch as out of order once this replica is promoted.
    // Forgotten, each producer's next batch starts its entry again, as for a producer never seen.
    this.producers.clear();
    const ops: WriteOp[] = [
      ['deleteEpochs', topic, partition],
      ['upsertPartition', topic, partition, offset, offset],
    ];
    if (back) ops.push(['deleteGroupOffsets', topic, partition]);
    this.recordProducers([], ops);
    return this.store
      .write(ops)
      .then(() => {
        // Writes complete in queue order, so nothing queued after the reset has completed yet.
        this.durableLeoValue = back ? offset : Math.max(this.durableLeoValue, offset);
      });
  }

  /**
   * True when the log holds no records (its LEO is its log start) and no batch of it is stored
   * any more, not even below the log start (the background pass deleted them all).
   */
  isBare(): boolean {
    this.store.assertOpen();
    return this.leoValue === this.logStartValue && this.store.stmt.firstBatch.get(this.topic, this.partition) === undefined;
  }

  /**
   * Deletes the oldest stored batches wholly below the log start, at most `maxBatches` and
   * about 8 MiB of them (one bounded statement in the next group commit, so a large purge never
   * holds the commit thread for long, and the WAL stays small on a nearly full disk). Answers
   * how many it deleted and whether any are left below the log start.
   */
  async deleteBelowLogStart(maxBatches: number): Promise<{ deleted: number; more: boolean }> {
    const { deleted, freedBytes, more } = await this.deleteChunkBelow(this.logStartValue, maxBatches);
    this.sizeBytesValue -= freedBytes;
    return { deleted, more };
  }

  /**
   * Deletes the oldest batches wholly below `below`: at most `limit`, and one bounded chunk of
   * them (`deletionChunk`), in one statement of the next group commit.
   */
  private async deleteChunkBelow(below: number, limit: number): Promise<{ deleted: number; freedBytes: number; more: boolean }> {
    this.store.assertOpen();
    const { topic, partition } = this;
    const rows = this.store.stmt.batchesBelow.all({ topic, partition, below, limit }) as BatchSizeRow[];
    const chunk = deletionChunk(rows);
    if (chunk.length === 0) return { deleted: 0, freedBytes: 0, more: false };
    await this.store.write([['deleteBatchRange', topic, partition, chunk[0].base_offset, chunk[chunk.length - 1].base_offset]]);
    const freedBytes = chunk.reduce((sum, row) => sum + row.bytes, 0);
    return { deleted: chunk.length, freedBytes, more: chunk.length < rows.length || rows.length === limit };
  }

  /**
   * Where retention would put the log start now: after the oldest batches (at most
   * `maxBatches` of them, never past `hw`) whose largest timestamp is older than `retentionMs`,
   * or while the log holds more than `retentionBytes`. -1 means no limit. Whole batches only.
   */
  retentionPoint(policy: { retentionMs: number; retentionBytes: number; nowMs: number; hw: number; maxBatches: number }): number {
    this.store.assertOpen();
    // Read row by row: a pass usually stops at the first batch retention keeps.
    const rows = this.store.stmt.batchesFrom.iterate({
      topic: this.topic,
      partition: this.partition,
      from: this.logStartValue,
      limit: policy.maxBatches,
    }) as Iterable<{ base_offset: number; last_offset: number; max_timestamp: number; bytes: number }>;
    let bytes = this.sizeBytesValue;
    let start = this.logStartValue;
    for (const row of rows) {
      if (row.last_offset + 1 > policy.hw) break;
      const expired = policy.retentionMs >= 0 && row.max_timestamp < policy.nowMs - policy.retentionMs;
      const oversize = policy.retentionBytes >= 0 && bytes > policy.retentionBytes;
      if (!expired && !oversize) break;
      bytes -= row.bytes;
      start = row.last_offset + 1;
    }
    return start;
  }

  /** Recounts sizeBytes after a truncation (waits for queued writes, then reads the committed log). */
  async recountSize(): Promise<void> {
    if (!this.sizeStale) return;
    await this.store.flushed();
    this.sizeStale = false;
    this.sizeBytesValue = (this.store.stmt.logBytes.get(this.topic, this.partition) as { bytes: number }).bytes;
  }

  /**
   * The group's committed offset and its generation; undefined when it has none (never
   * committed, or deleted: the DELETED_GROUP_OFFSET mark a delete leaves is not a position).
   */
  groupOffset(group: string): GroupOffset | undefined {
    const row = this.groupRow(group);
    return row === undefined || row.offset === DELETED_GROUP_OFFSET ? undefined : { group, offset: row.offset, generation: row.generation };
  }

  /**
   * The generation of the group's stored row, a deletion mark's included; undefined when it has
   * none. Only commits that must never follow a delete of their group (a push subscription's
   * delivery, whose group is never made again) count a mark's generation (`Partition.commit`).
   */
  groupGeneration(group: string): number | undefined {
    return this.groupRow(group)?.generation;
  }

  /** The group's stored row as it is (a deletion mark's included). */
  private groupRow(group: string): { offset: number; generation: number } | undefined {
    this.store.assertOpen();
    return this.store.stmt.selectGroupOffset.get(this.topic, this.partition, group) as { offset: number; generation: number } | undefined;
  }

  /** Every stored group offset row, deleted groups' included (replication sends them all). */
  groupOffsets(): GroupOffset[] {
    this.store.assertOpen();
    return (this.store.stmt.selectGroupOffsets.all(this.topic, this.partition) as Array<{ group_id: string; offset: number; generation: number }>).map(
      (row) => ({ group: row.group_id, offset: row.offset, generation: row.generation }),
    );
  }

  /**
   * Deletes the whole log (this broker no longer holds the replica): its batches in bounded
   * transactions first (each one small, so the WAL stays small and a deletion commits even on
   * a nearly full disk), then the rest in one.
   */
  async destroy(): Promise<void> {
    const { topic, partition } = this;
    while ((await this.deleteChunkBelow(Number.MAX_SAFE_INTEGER, DELETE_CHUNK_BATCHES)).deleted > 0);
    this.sizeBytesValue = 0;
    return this.store.write([
      ['deleteBatches', topic, partition],
      ['deleteEpochs', topic, partition],
      ['deleteGroupOffsets', topic, partition],
      ['deleteProducers', topic, partition],
      ['deletePartition', topic, partition],
    ]);
  }
}

/** Most batches, and most bytes, one deleting transaction removes (at least one batch). */
const DELETE_CHUNK_BATCHES = 1_000;
const DELETE_CHUNK_BYTES = 8 * 1024 * 1024;

interface BatchSizeRow {
  base_offset: number;
  last_offset: number;
  bytes: number;
}

/** The oldest of `rows` (in offset order) that one deleting transaction takes: bounded in bytes, at least one. */
function deletionChunk(rows: BatchSizeRow[]): BatchSizeRow[] {
  let bytes = 0;
  let end = 0;
  while (end < rows.length && (end === 0 || bytes + rows[end].bytes <= DELETE_CHUNK_BYTES)) bytes += rows[end++].bytes;
  return rows.slice(0, end);
}

interface BatchRow {
  base_offset: number;
  last_offset: number;
  epoch: number;
  data: Buffer;
}
