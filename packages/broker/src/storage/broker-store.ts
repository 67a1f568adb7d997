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
import { InvariantError, assert } from '../util/assert.js';
import { META_SCHEMA_VERSION, SCHEMA, SCHEMA_VERSION, SQL } from './sql.js';

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

type Stmt = Database.Statement;
type Statements = Record<keyof typeof SQL, Stmt>;
/** One statement of a write, by name, with its parameters. */
export type WriteOp = [statement: keyof typeof SQL, ...params: Array<string | number | Buffer | null>];

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
    parentPort.postMessage({ error: String((error && error.message) || error) });
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
  /** The transaction the worker runs now (one at a time, in order). */
  private inFlight: { waiters: BrokerStore['waiters']; writes: number; startedMs: number } | undefined;
  private idleWaiters: Array<() => void> = [];
  private closedByWorker: (() => void) | undefined;
  /** Called with the number of writes and the milliseconds of every group commit (metrics). */
  onCommit: ((writes: number, ms: number) => void) | undefined;
  /** Called when a write failed: the broker must stop (see the module comment). */
  onFatal: (error: unknown) => void = (error) => {
    throw error;
  };

  private constructor(file: string, durability: Durability) {
    this.file = file;
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
      throw new Error(`${file} has storage schema ${version}, this broker reads schema ${SCHEMA_VERSION}`);
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
    this.worker.on('message', (message: { ok?: true; error?: string; closed?: true }) => this.onWorkerMessage(message));
    this.worker.on('error', (error) => this.fail(new Error(`storage commit thread failed: ${error.message}`, { cause: error })));
  }

  static open(dataDir: string, durability: Durability): BrokerStore {
    return new BrokerStore(path.join(dataDir, DATABASE_FILE), durability);
  }

  /** The log of one partition replica (nothing is written until its first write). */
  log(topic: string, partition: number): PartitionLog {
    this.assertOpen();
    return new PartitionLog(this, topic, partition);
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

  /** Resolves once every write queued so far is committed. */
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
    this.inFlight = { waiters: this.waiters, writes: this.pendingWrites, startedMs: performance.now() };
    const ops = this.pending;
    this.pending = [];
    this.pendingWrites = 0;
    this.waiters = [];
    this.worker.postMessage({ ops });
  }

  private onWorkerMessage(message: { ok?: true; error?: string; closed?: true }): void {
    if (message.closed) {
      this.closedByWorker?.();
      return;
    }
    const done = this.inFlight;
    if (done === undefined) return;
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

  constructor(
    private readonly store: BrokerStore,
    readonly topic: string,
    readonly partition: number,
  ) {
    const { stmt } = store;
    const state = stmt.selectPartition.get(topic, partition) as { hw: number; log_start_offset: number } | undefined;
    const first = stmt.firstBatch.get(topic, partition) as { base_offset: number } | undefined;
    const last = stmt.lastBatch.get(topic, partition) as { last_offset: number } | undefined;
    this.logStartValue = first?.base_offset ?? state?.log_start_offset ?? 0;
    this.leoValue = last === undefined ? this.logStartValue : last.last_offset + 1;
    this.durableLeoValue = this.leoValue;
    this.epochHistory = (stmt.selectEpochs.all(topic, partition) as Array<{ epoch: number; start_offset: number }>).map(
      (row): EpochEntry => [row.epoch, row.start_offset],
    );
    // The checkpoint may be ahead of the log if the tail was truncated; HW never exceeds LEO.
    this.checkpointedHw = Math.min(state?.hw ?? 0, this.leoValue);
  }

  /** Log end offset: the offset the next record gets (counting writes queued but not yet committed). */
  get leo(): number {
    return this.leoValue;
  }

  get logStartOffset(): number {
    return this.logStartValue;
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
    await this.store.idle();
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
    this.epochHistory = this.epochHistory.filter((entry) => entry[1] < toOffset);
    this.checkpointedHw = Math.min(this.checkpointedHw, toOffset);
    const hw = this.checkpointedHw;
    const logStart = this.logStartValue;
    const ops: WriteOp[] = [['deleteBatchesFrom', topic, partition, cut?.baseOffset ?? toOffset]];
    if (cut !== undefined) ops.push(['insertBatch', topic, partition, cut.baseOffset, cut.lastOffset, cut.epoch, cut.maxTimestamp, cut.bytes]);
    ops.push(['deleteEpochsFrom', topic, partition, toOffset], ['upsertPartition', topic, partition, hw, logStart]);
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
   * The group's stored offset row: an offset, or DELETED_GROUP_OFFSET after the group was
   * deleted (`committedOffset` reads that as nothing committed).
   */
  groupOffset(group: string): GroupOffset | undefined {
    this.store.assertOpen();
    const row = this.store.stmt.selectGroupOffset.get(this.topic, this.partition, group) as { offset: number; generation: number } | undefined;
    return row === undefined ? undefined : { group, offset: row.offset, generation: row.generation };
  }

  /** The group's committed offset, undefined when it has none (never committed, or deleted). */
  committedOffset(group: string): number | undefined {
    const row = this.groupOffset(group);
    return row === undefined || row.offset === DELETED_GROUP_OFFSET ? undefined : row.offset;
  }

  /** Every stored group offset row, deleted groups' included (replication sends them all). */
  groupOffsets(): GroupOffset[] {
    this.store.assertOpen();
    return (this.store.stmt.selectGroupOffsets.all(this.topic, this.partition) as Array<{ group_id: string; offset: number; generation: number }>).map(
      (row) => ({ group: row.group_id, offset: row.offset, generation: row.generation }),
    );
  }

  /** Deletes the whole log (this broker no longer holds the replica). */
  destroy(): Promise<void> {
    const { topic, partition } = this;
    return this.store.write([
      ['deleteBatches', topic, partition],
      ['deleteEpochs', topic, partition],
      ['deleteGroupOffsets', topic, partition],
      ['deletePartition', topic, partition],
    ]);
  }
}

interface BatchRow {
  base_offset: number;
  last_offset: number;
  epoch: number;
  data: Buffer;
}
