/**
 * One partition replica on this broker: its role (primary or secondary), epoch, ISR, LEO and
 * high watermark, the write queue of the primary, the replication of each flush to the
 * secondary, and (as a follower) the application of the primary's pushes.
 *
 * Primary write path: produces (whole RecordBatches) and commits queue up; one flush at a
 * time takes everything queued (bounded), stamps offsets and the epoch into the batches'
 * headers, hands them to the broker's group commit (one transaction for every partition
 * with pending writes) and, at the same time, pushes them to the secondary when it is in the
 * ISR; once both are durable it advances the HW and answers every waiter of the flush. A
 * produce is acknowledged only when its last record is below the HW.
 *
 * Pushing before the local write is durable means a secondary may hold records this primary
 * never stored, if this process dies before its group commit. That is harmless across
 * epochs (the divergence check sees the epochs differ), but a primary that restarts and is
 * still primary of the same epoch must not write those offsets again with other records. So
 * a flush takes produces only once the secondary's position is confirmed by an answer in this
 * process and epoch; before that, an empty probe flush establishes it (and truncates the
 * secondary back to this log), and a push goes out before the local write only when the
 * secondary is confirmed to be exactly where the flush starts.
 *
 * HW rule: HW = LEO when the ISR is only the primary, else min(LEO, secondary's acked LEO). The
 * primary never goes on alone before the coordinator has accepted the ISR shrink.
 */
import { randomInt } from 'node:crypto';
import {
  TesseraError,
  backoffMs,
  isTesseraError,
  retry,
  setBaseOffset,
  setPartitionLeaderEpoch,
  sleep,
  type PartitionAssignment,
  type ReplicaReport,
  type RetryOptions,
} from '@tessera/protocol';
import type { Logger } from '@tessera/service';
import type { BrokerLimits } from '../config.js';
import type { ClusterPort, ReplicationPort } from '../replication/ports.js';
import { SecondarySync, type FreshBatches } from '../replication/leader/secondary-sync.js';
import { cutBatch, type GroupOffset, type PartitionLog, type StoredBatch } from '../storage/index.js';
import { InvariantError, assert } from '../util/assert.js';
import { failpoint } from '../util/failpoints.js';
import { Mutex } from '../util/mutex.js';
import { committedIsr, expandingIsr, sameMembers, shrinkingIsr, type IsrState } from './isr.js';
import { WriteQueue, type CommitEntry, type IncomingBatch, type ProduceEntry, type ProduceResult } from './write-queue.js';

export type { IncomingBatch, ProduceResult } from './write-queue.js';

export type Role = 'primary' | 'secondary';

/** Where one flush spent its time, in seconds (simple instrumentation of the produce path). */
export interface FlushStats {
  records: number;
  /** From the oldest queued request to the start of its flush. */
  queueSeconds: number;
  /** Waiting for the group commit that made the flush durable here (runs while the secondary is pushed to). */
  localSeconds: number;
  /** From the start of the flush until the in-sync secondary answered and the flush was durable here. */
  replicateSeconds: number;
}


/** A flush stamped and written locally, waiting to be replicated and answered. */
interface PreparedFlush {
  epoch: number;
  baseOffset: number;
  /** The LEO after this flush. */
  end: number;
  batches: StoredBatch[];
  commits: GroupOffset[];
  produced: Array<{ entry: ProduceEntry; result: ProduceResult }>;
  committed: CommitEntry[];
  /** Waiting for a push made after they asked (a purge's new log start): answered with the flush. */
  synced: SyncWaiter[];
  startedMs: number;
  queuedAtMs: number;
  /** Resolves when this broker's own write of the flush is durable; storedMs is set then. */
  durable: Promise<void>;
  storedMs: number;
}

interface SyncWaiter {
  resolve: () => void;
  reject: (error: unknown) => void;
}

function rejectFlush(flush: PreparedFlush, error: unknown): void {
  for (const { entry } of flush.produced) entry.reject(error);
  for (const entry of flush.committed) entry.reject(error);
  for (const waiter of flush.synced) waiter.reject(error);
}

/** An ISR expansion a primary asks for: `secondary` back in the ISR at `epoch`; `abort` ends the asking (close, step down). */
interface Expansion {
  epoch: number;
  secondary: number;
  abort: AbortController;
}

/** A follower outside the ISR that the catch-up loop feeds: the assigned secondary, or a replica being added by a move. */
interface CatchUpTarget {
  broker: number;
  kind: 'secondary' | 'adding';
}

export interface ReplicaOptions {
  topic: string;
  partition: number;
  store: PartitionLog;
  cluster: ClusterPort;
  client: ReplicationPort;
  logger: Logger;
  replicaTimeoutMs: number;
  limits: BrokerLimits;
  /** Called after every flush of a primary with its record count and where its time went (metrics). */
  onFlush?: (stats: FlushStats) => void;
  /** Called for every batch answered from the producer state instead of being stored again (metrics). */
  onDuplicate?: () => void;
  /** Throws STORAGE_FULL while the disk is (nearly) full: new records and commits are refused before they are queued. */
  checkStorage?: (what: string) => void;
}

/** Retries of a failing replicate call while the ISR still holds the secondary. */
const REPLICATE_RETRY: RetryOptions = { retries: 0, initialMs: 25, multiplier: 2, maxMs: 250, jitter: 0.2 };
/** Coordinator answers to an ISR expansion or a move completion that are a decision, not a lost request. */
const REFUSALS = new Set(['STALE_EPOCH', 'STALE_ASSIGNMENT', 'NOT_PRIMARY', 'INVALID_REQUEST', 'NOT_FOUND', 'TOPIC_NOT_FOUND', 'PARTITION_NOT_FOUND']);
const isRefusal = (error: unknown): boolean => isTesseraError(error) && REFUSALS.has(error.code);
/** Most produce requests, and most commits, waiting for a flush in one partition. */
const MAX_QUEUED_PRODUCES = 10_000;
const MAX_QUEUED_COMMITS = 10_000;
/** Most bounded steps (a delete, or a move of the log start) of one retention pass over one replica. */
const MAX_RETENTION_ROUNDS = 100;
/** Backoff of the background catch-up loop. */
const CATCH_UP_RETRY: RetryOptions = { retries: 0, initialMs: 100, multiplier: 2, maxMs: 2_000, jitter: 0.2 };
/** How often a catch-up that keeps failing says so at warn (the other failures are debug). */
const CATCH_UP_REPORT_MS = 10_000;

export class Partition {
  readonly topic: string;
  readonly partition: number;
  readonly store: PartitionLog;
  role: Role = 'secondary';
  epoch: number;
  /** The ISR as this replica counts it (see isr.ts); `isr` is its members. */
  private isrState: IsrState = committedIsr([]);
  primaryId: number | null = null;
  secondaryId: number | null = null;
  minInsyncReplicas = 1;
  /** The topic's retention as the coordinator's map says (-1: no limit); enforced by the primary. */
  retentionMs = -1;
  retentionBytes = -1;
  hw: number;
  /**
   * The seq of the last ISR taken from a coordinator answer (metadata older than it keeps ours);
   * infinite while an ISR expansion is asked for and not answered (the newest one, `expansion`).
   */
  isrSeq = 0;
  /**
   * A replica being added by a move (primary only): caught up in the background like an
   * out-of-ISR secondary, never counted for the HW, swapped in for the secondary once caught up.
   */
  addingId: number | null = null;
  /**
   * The coordinator's version of the assignment this replica acts on (from the map, or the
   * answer to its own request): named in its ISR expansions and move completions, so one
   * decided before a later change is refused. Undefined from a coordinator of an earlier release.
   */
  private assignmentVersion: number | undefined;

  private readonly options: ReplicaOptions;
  private readonly logger: Logger;
  private assigned = false;
  private closed = false;
  private readonly queue: WriteQueue;
  /**
   * The generation of each group's newest commit in a flush not yet durable. Flushes are
   * pipelined, so the store alone would let the next flush take an older generation's commit,
   * stored after (and over) a newer one.
   */
  private readonly queuedGenerations = new Map<string, number>();
  private flushing = false;
  private syncRequested = false;
  /** Waiting for the next flush to reach the in-sync secondary (see `nextSync`). */
  private syncWaiters: SyncWaiter[] = [];
  private flushLoopDone: Promise<void> = Promise.resolve();
  /** Serializes flushes and catch-up batches: the secondary sees one push at a time. */
  private readonly lock = new Mutex();
  /**
   * The ISR expansion asked of the coordinator and not answered yet (proposeExpansion to the end
   * of expandIsr). Only that expansion's end lets maps apply their ISR again: one of an older
   * epoch, refused late, must not do so while a newer one is out.
   */
  private expansion: Expansion | undefined;
  /**
   * The epoch in which this replica learned it was deposed (a secondary or the coordinator knew
   * a newer one): a map of that epoch or older that names it primary was fetched before the
   * change and is not followed.
   */
  private deposedAt = -1;
  /** Serializes the pushes a follower applies (see followerTurn). */
  private readonly followerLock = new Mutex();
  /** This replica's pushes as a primary: a run drawn at creation and a count (PartitionPush.order). */
  private readonly pushRun = randomInt(2 ** 47);
  private pushSeq = 0;
  /** As a follower: the newest push taken, by primary, epoch and run (see takePushOrder). */
  private lastPush: { primaryId: number; epoch: number; run: number; seq: number } | undefined;
  private sync: SecondarySync | undefined;
  private catchUp: AbortController | undefined;
  private catchUpDone: Promise<void> = Promise.resolve();
  private addingSync: SecondarySync | undefined;
  private adding: AbortController | undefined;
  private addingDone: Promise<void> = Promise.resolve();
  private readonly listeners = new Set<() => void>();

  constructor(options: ReplicaOptions) {
    this.options = options;
    this.queue = new WriteQueue(`${options.topic}/${options.partition}`, {
      maxRecords: options.limits.maxQueuedRecordsPerPartition,
      maxProduces: MAX_QUEUED_PRODUCES,
      maxCommits: MAX_QUEUED_COMMITS,
      maxFlushRecords: options.limits.maxFlushRecords,
    });
    this.topic = options.topic;
    this.partition = options.partition;
    this.store = options.store;
    this.logger = options.logger.child({ topic: options.topic, partition: options.partition });
    this.epoch = options.store.lastEpoch ?? 0;
    this.hw = options.store.hwCheckpoint;
  }

  /** The ISR members counted for the HW (committed, or the larger side of a pending change). */
  get isr(): readonly number[] {
    return this.isrState.members;
  }

  get isrKind(): IsrState['kind'] {
    return this.isrState.kind;
  }

  get leo(): number {
    return this.store.leo;
  }

  get logStartOffset(): number {
    return this.store.logStartOffset;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  report(): ReplicaReport {
    return { topic: this.topic, partition: this.partition, epoch: this.epoch, leo: this.leo, hw: this.hw, role: this.role };
  }

  /** Records the secondary is known to lack (primary only; 0 without a secondary). */
  replicationLag(): number {
    if (this.role !== 'primary' || this.secondaryId === null) return 0;
    return Math.max(0, this.leo - (this.sync?.secondaryLeo ?? this.hw));
  }

  /** A primary whose assigned secondary is not in the ISR. */
  get underReplicated(): boolean {
    return this.role === 'primary' && this.secondaryId !== null && !this.isr.includes(this.secondaryId);
  }

  /** NOT_PRIMARY naming the primary this broker knows. */
  notPrimary(): TesseraError {
    return new TesseraError(
      'NOT_PRIMARY',
      `broker ${this.options.cluster.brokerId} is not the primary of ${this.topic}/${this.partition} (epoch ${this.epoch})`,
      { primary: this.options.cluster.brokerRef(this.primaryId === this.options.cluster.brokerId ? null : this.primaryId) },
    );
  }

  /** PARTITION_NOT_FOUND: this replica was closed (dropped, or the broker is stopping). */
  private closing(): TesseraError {
    return new TesseraError('PARTITION_NOT_FOUND', `${this.topic}/${this.partition} is closing`);
  }

  private notHeld(): TesseraError {
    return new TesseraError('PARTITION_NOT_FOUND', `${this.topic}/${this.partition} is not held here any more`);
  }

  /** Calls `listener` once, on the next HW advance or role/epoch change or close. Returns an unsubscribe. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // ---- primary: produce and commit ---------------------------------------------------

  produce(batches: IncomingBatch[]): Promise<ProduceResult> {
    this.checkCanWrite();
    this.checkStorage('produce');
    if (this.minInsyncReplicas >= 2 && this.isr.length < 2) {
      throw new TesseraError(
        'NOT_ENOUGH_REPLICAS',
        `${this.topic}/${this.partition} needs ${this.minInsyncReplicas} in-sync replicas, ISR is [${this.isr.join(',')}]`,
      );
    }
    const result = this.queue.produce(batches);
    this.scheduleFlush();
    return result;
  }

  /**
   * Stores a committed offset on this primary and its in-sync secondary (through the flush
   * queue). A commit of an older generation than the group's newest is refused
   * (GENERATION_MISMATCH). A deletion mark's generation does not count for that, since a group
   * made again under the name starts its generations anew, except with `fencedByDeletion`: for a
   * commit whose group is never made again (a push subscription's delivery), so one queued after
   * the coordinator deleted the group cannot store a position over the mark.
   */
  commit(commit: GroupOffset, options: { fencedByDeletion?: boolean } = {}): Promise<void> {
    this.checkCanWrite();
    this.checkStorage('commit');
    const done = this.queue.commit(commit, options.fencedByDeletion === true);
    this.scheduleFlush();
    return done;
  }

  /**
   * The newest generation this replica has stored for `group`, or queued to store in a flush
   * whose group commit is still under way (-1 when none). The row a group delete leaves does not
   * count unless `countDeletion`: a group created again under the same name starts its
   * generations anew at the coordinator.
   */
  storedGeneration(group: string, countDeletion = false): number {
    const stored = (countDeletion ? this.store.groupGeneration(group) : this.store.groupOffset(group)?.generation) ?? -1;
    const queued = this.queuedGenerations.get(group);
    return queued === undefined ? stored : Math.max(stored, queued);
  }

  /** STORAGE_FULL while the disk is nearly full (see service/storage-space.ts); nothing is queued then. */
  checkStorage(what: string): void {
    this.options.checkStorage?.(`${what} to ${this.topic}/${this.partition}`);
  }

  private checkCanWrite(): void {
    if (this.closed) throw new TesseraError('PARTITION_NOT_FOUND', `${this.topic}/${this.partition} is not held here`);
    if (this.role !== 'primary') throw this.notPrimary();
  }

  private scheduleFlush(): void {
    if (this.flushing || this.closed) return;
    this.flushing = true;
    this.flushLoopDone = this.flushLoop();
  }

  /**
   * Flushes until the queue is empty, pipelined two deep: while one flush waits for its
   * secondary (under the lock, one push in flight per partition), the next one is already
   * stamped and queued for the broker's group commit. Offsets follow the in-memory LEO, so the
   * second flush starts where the first ends whatever the first's fate. While the secondary's
   * position is not confirmed, the running flush finishes first and the next one is a probe.
   */
  private async flushLoop(): Promise<void> {
    let inFlight: Promise<void> | undefined;
    let prepared: PreparedFlush | undefined;
    let failed = false;
    try {
      for (;;) {
        if (this.closed) break;
        if (this.queue.isEmpty && !this.syncRequested) {
          if (inFlight === undefined) break;
          await inFlight;
          inFlight = undefined;
          continue;
        }
        if (inFlight !== undefined && !this.secondaryPositionKnown()) {
          await inFlight;
          inFlight = undefined;
          continue;
        }
        prepared = await this.prepareFlush();
        if (inFlight !== undefined) {
          await inFlight;
          inFlight = undefined;
        }
        const flush = prepared;
        prepared = undefined;
        if (flush !== undefined) inFlight = this.lock.run(() => this.finishFlush(flush));
      }
      // Closed: the flush under way finishes. (Awaited only when there is one: an empty await
      // would let a produce in between see the loop running and not start it again.)
      if (inFlight !== undefined) await inFlight;
    } catch (error) {
      failed = true;
      this.failQueue(error);
      if (prepared !== undefined) rejectFlush(prepared, error);
      if (error instanceof InvariantError) {
        // A programmer error: stop loudly rather than write on with a log we no longer understand.
        this.logger.fatal({ err: error }, 'invariant violated while flushing; stopping');
        setImmediate(() => {
          throw error;
        });
      } else {
        this.logger.error({ err: error }, 'flush failed');
      }
    } finally {
      this.flushing = false;
      // Work that came in while the loop was ending (it saw the queue empty) must not wait for the next produce.
      if (!failed && !this.closed && (!this.queue.isEmpty || this.syncRequested)) this.scheduleFlush();
    }
  }

  /**
   * Takes what is queued (up to maxFlushRecords), stamps offsets and the epoch into the
   * batches, and queues them for the broker's next group commit (not waiting for it).
   * Takes nothing while the secondary's position is unconfirmed: the flush is then a probe.
   * Undefined when there is nothing to replicate (or this replica is not a primary any more).
   */
  private async prepareFlush(): Promise<PreparedFlush | undefined> {
    this.syncRequested = false;
    if (this.closed) return undefined;
    if (this.role !== 'primary') {
      this.failQueue(this.notPrimary());
      return undefined;
    }
    const epoch = this.epoch;
    const startedMs = performance.now();
    const entries = this.secondaryPositionKnown() ? this.queue.take() : [];
    const queuedAtMs = entries.length === 0 ? startedMs : entries[0].queuedAtMs;
    const baseOffset = this.store.leo;
    let next = baseOffset;
    const batches: StoredBatch[] = [];
    const produced: PreparedFlush['produced'] = [];
    const commits: GroupOffset[] = [];
    const committed: CommitEntry[] = [];
    const generations = new Map<string, number>();
    const nowMs = Date.now();
    for (const entry of entries) {
      if (entry.kind === 'produce') {
        const stamped = this.stampProduce(entry, batches, next, epoch, nowMs);
        if (stamped === undefined) continue;
        next = stamped.next;
        produced.push({ entry, result: stamped.result });
      } else {
        // A commit of an older generation than one already stored (or earlier in this batch) is
        // refused; one fenced by deletion counts a deletion mark's generation too.
        const known = generations.get(entry.commit.group) ?? this.storedGeneration(entry.commit.group, entry.fencedByDeletion);
        if (entry.commit.generation < known) {
          entry.reject(
            new TesseraError('GENERATION_MISMATCH', `group ${entry.commit.group} is at generation ${known}`, { generation: known }),
          );
          continue;
        }
        generations.set(entry.commit.group, entry.commit.generation);
        commits.push(entry.commit);
        committed.push(entry);
      }
    }
    // A flush of duplicates alone still runs: they are answered once the HW covers their first storing.
    if (batches.length === 0 && commits.length === 0 && produced.length === 0 && entries.length > 0 && this.syncWaiters.length === 0) return undefined;
    const synced = this.syncWaiters;
    this.syncWaiters = [];
    const flush: PreparedFlush = {
      epoch,
      baseOffset,
      end: next,
      batches,
      commits,
      produced,
      committed,
      synced,
      startedMs,
      queuedAtMs,
      durable: Promise.resolve(),
      storedMs: startedMs,
    };
    for (const [group, generation] of generations) this.queuedGenerations.set(group, generation);
    // A failed write stops the broker (see storage): nothing to undo here; finishFlush fails the waiters.
    flush.durable = this.store.append(batches, commits, this.hw).then(() => {
      flush.storedMs = performance.now();
      // Stored now (a later flush's newer one stays queued).
      for (const [group, generation] of generations) {
        if (this.queuedGenerations.get(group) === generation) this.queuedGenerations.delete(group);
      }
    });
    flush.durable.catch(() => undefined);
    return flush;
  }

  /**
   * Stamps one produce request's batches at `offset` onwards (appending them to `batches`) after
   * checking each idempotent producer's batch against the partition's producer state: a
   * duplicate of a batch stored before is not stored again and answers with the offsets it got
   * then; an old epoch or a sequence gap refuses the whole request (nothing of it is stored, and
   * what its earlier batches did to the producer state is undone). Returns undefined when refused.
   */
  private stampProduce(
    entry: ProduceEntry,
    batches: StoredBatch[],
    offset: number,
    epoch: number,
    nowMs: number,
  ): { next: number; result: ProduceResult } | undefined {
    const producers = this.store.producers;
    const start = batches.length;
    const undo: Array<[number, ReturnType<typeof producers.apply>]> = [];
    let next = offset;
    let low = Number.POSITIVE_INFINITY;
    let high = -1;
    let count = 0;
    for (const batch of entry.batches) {
      const sequenced = batch.sequenced;
      if (sequenced !== undefined) {
        const verdict = producers.check(sequenced, nowMs);
        if (verdict.kind === 'duplicate') {
          low = Math.min(low, verdict.baseOffset);
          high = Math.max(high, verdict.lastOffset);
          count += verdict.lastOffset - verdict.baseOffset + 1;
          this.options.onDuplicate?.();
          continue;
        }
        if (verdict.kind !== 'append') {
          for (let i = undo.length - 1; i >= 0; i--) producers.restore(undo[i][0], undo[i][1]);
          batches.length = start;
          entry.reject(new TesseraError(verdict.kind === 'fenced' ? 'PRODUCER_FENCED' : 'OUT_OF_ORDER_SEQUENCE', `${this.topic}/${this.partition}: ${verdict.message}`));
          return undefined;
        }
        undo.push([sequenced.producerId, producers.apply(sequenced, next, next + batch.lastOffsetDelta, nowMs)]);
      }
      // Offsets and the epoch live outside the batch's CRC: stamping them keeps the producer's bytes valid.
      setBaseOffset(batch.bytes, 0, next);
      setPartitionLeaderEpoch(batch.bytes, 0, epoch);
      batches.push({ baseOffset: next, lastOffset: next + batch.lastOffsetDelta, epoch, maxTimestamp: batch.maxTimestamp, bytes: batch.bytes });
      low = Math.min(low, next);
      high = Math.max(high, next + batch.lastOffsetDelta);
      count += batch.lastOffsetDelta + 1;
      next += batch.lastOffsetDelta + 1;
    }
    return { next, result: { baseOffset: low, lastOffset: high, count, epoch } };
  }

  /** Replicates a prepared flush to the in-sync secondary (under the lock) and answers its requests. */
  private async finishFlush(flush: PreparedFlush): Promise<void> {
    const { produced, committed } = flush;
    try {
      await this.replicateFlush(flush.epoch, { baseOffset: flush.baseOffset, batches: flush.batches, commits: flush.commits }, flush.end, flush.durable);
      this.options.onFlush?.({
        records: flush.end - flush.baseOffset,
        queueSeconds: (flush.startedMs - flush.queuedAtMs) / 1000,
        localSeconds: (flush.storedMs - flush.startedMs) / 1000,
        replicateSeconds: (performance.now() - flush.startedMs) / 1000,
      });
    } catch (error) {
      rejectFlush(flush, isTesseraError(error) ? error : this.notPrimary());
      // A broken invariant reaches the flush loop, which stops the broker.
      if (error instanceof InvariantError) throw error;
      return;
    }
    // The flush is on every ISR member now, so the HW covers it.
    assert(this.hw >= flush.end, `hw ${this.hw} below flushed end ${flush.end}`);
    // Tests only: a primary that dies after storing a flush on every replica and before answering it.
    if (produced.length > 0) failpoint('produce-before-answer');
    const alone = this.minInsyncReplicas >= 2 && this.isr.length < 2;
    for (const { entry, result } of produced) {
      if (alone) {
        // Stored, but only on one replica while the topic asks for two: not acknowledged.
        entry.reject(new TesseraError('NOT_ENOUGH_REPLICAS', `${this.topic}/${this.partition} lost its in-sync secondary`));
      } else {
        entry.resolve(result);
      }
    }
    for (const entry of committed) entry.resolve();
    for (const waiter of flush.synced) waiter.resolve();
  }

  private failQueue(error: unknown): void {
    this.queue.failAll(error);
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    for (const waiter of waiters) waiter.reject(error);
  }

  /**
   * Resolves once a flush prepared from now on has reached the in-sync secondary (or left it out
   * of the ISR), so the secondary holds the log start, HW and commits of this moment too.
   */
  private nextSync(): Promise<void> {
    if (this.closed) return Promise.reject(this.closing());
    return new Promise((resolve, reject) => {
      this.syncWaiters.push({ resolve, reject });
      this.requestSync();
    });
  }

  /** A flush runs even with nothing queued: it pushes the HW, log start and commits of now to the in-sync secondary. */
  private requestSync(): void {
    this.syncRequested = true;
    this.scheduleFlush();
  }

  /**
   * Makes the flushed records safe: pushes them to the secondary while it is in the ISR
   * (before `durable`, this broker's own write, resolves when the secondary is confirmed to be
   * where the flush starts), retrying until replicaTimeoutMs of failures, then asks the
   * coordinator to shrink the ISR. Returns once the HW covers the flush, which needs `durable`
   * too; throws NOT_PRIMARY when this broker was deposed.
   */
  private async replicateFlush(epoch: number, fresh: FreshBatches, endOffset: number, durable: Promise<void>): Promise<void> {
    let failingSinceMs: number | undefined;
    for (let attempt = 0; ; attempt++) {
      this.checkStillPrimary(epoch);
      const secondary = this.isrSecondary();
      if (secondary === undefined) {
        await durable;
        this.checkStillPrimary(epoch);
        this.advanceHw(endOffset);
        return;
      }
      const sync = this.syncFor(secondary);
      // Monotonic: a wall-clock step must not decide when a secondary leaves the ISR.
      const startedMs = performance.now();
      try {
        if (!sync.confirmedAt(fresh.baseOffset)) await durable;
        await sync.pushUntil(endOffset, this.hw, fresh, this.options.limits.catchUpBatchBytes);
        await durable;
        this.checkStillPrimary(epoch);
        this.advanceHw(Math.min(endOffset, sync.secondaryLeo ?? this.hw));
        if (failingSinceMs !== undefined) this.logger.info({ secondary }, 'secondary answering again');
        return;
      } catch (error) {
        if (isTesseraError(error, 'NOT_PRIMARY') || error instanceof InvariantError) throw error;
        if (isTesseraError(error, 'STALE_EPOCH')) {
          this.deposed(`secondary ${secondary} knows epoch ${String(error.details.epoch)}`);
          throw this.notPrimary();
        }
        if (failingSinceMs === undefined) {
          failingSinceMs = startedMs;
          this.logger.warn({ secondary, err: errorSummary(error) }, 'replication to secondary failing');
        }
        // Answered: the next turn finds the secondary out of the ISR. Unanswered: wait like any failed turn.
        if (performance.now() - failingSinceMs >= this.options.replicaTimeoutMs && (await this.shrinkIsr(epoch, secondary))) continue;
      }
      await sleep(backoffMs(attempt, REPLICATE_RETRY));
    }
  }

  /** Asks the coordinator for ISR = [self]; false when unanswered (coordinator unreachable). Throws NOT_PRIMARY when refused. */
  private async shrinkIsr(epoch: number, secondary: number): Promise<boolean> {
    // One ISR change at a time: while an expansion of this epoch is unanswered, its answer says
    // what the coordinator holds before anything is asked on top of it.
    if (this.expansion?.epoch === epoch) {
      this.logger.debug({ secondary }, 'ISR shrink waits for the answer to the pending expansion');
      return false;
    }
    const self = this.options.cluster.brokerId;
    this.isrState = shrinkingIsr(this.isrState, secondary);
    try {
      const assignment = await this.options.cluster.changeIsr({
        brokerId: self,
        topic: this.topic,
        partition: this.partition,
        epoch,
        isr: [self],
        ...this.versionField(),
      });
      this.checkStillPrimary(epoch);
      this.setIsr(assignment.isr, 'ISR shrunk: secondary unreachable');
      this.noteVersion(assignment);
      this.isrSeq = this.options.cluster.nextIsrSeq();
      this.ensureCatchUp();
      return true;
    } catch (error) {
      if (isTesseraError(error, 'STALE_EPOCH') || isTesseraError(error, 'NOT_PRIMARY')) {
        this.deposed(`coordinator refused the ISR shrink: ${error.code}`);
        throw this.notPrimary();
      }
      this.logger.warn({ secondary, err: errorSummary(error) }, 'ISR shrink not answered; still waiting for the secondary');
      return false;
    }
  }

  private checkStillPrimary(epoch: number): void {
    if (this.closed) throw this.notHeld();
    if (this.role !== 'primary' || this.epoch !== epoch) throw this.notPrimary();
  }

  /**
   * True when a flush may take produces: no secondary in the ISR, or its position confirmed by
   * an answer in this process and epoch (see the module comment).
   */
  private secondaryPositionKnown(): boolean {
    const secondary = this.isrSecondary();
    if (secondary === undefined) return true;
    const sync = this.sync;
    return sync !== undefined && sync.secondaryId === secondary && sync.epoch === this.epoch && sync.confirmed;
  }

  /** The secondary when it is in the ISR of this primary, else undefined. */
  private isrSecondary(): number | undefined {
    const secondary = this.secondaryId;
    return secondary !== null && this.isr.includes(secondary) ? secondary : undefined;
  }

  private syncFor(secondary: number): SecondarySync {
    if (this.sync === undefined || this.sync.secondaryId !== secondary || this.sync.epoch !== this.epoch) {
      this.sync = this.newSync(secondary);
    }
    return this.sync;
  }

  private newSync(broker: number): SecondarySync {
    return new SecondarySync({
      topic: this.topic,
      partition: this.partition,
      epoch: this.epoch,
      secondaryId: broker,
      log: this.store,
      cluster: this.options.cluster,
      client: this.options.client,
      timeoutMs: this.options.replicaTimeoutMs,
      logger: this.logger,
      nextOrder: () => ({ run: this.pushRun, seq: ++this.pushSeq }),
    });
  }

  /** Starts the background catch-up of a secondary that is assigned but not in the ISR. */
  private ensureCatchUp(): void {
    if (this.closed || this.role !== 'primary' || this.secondaryId === null) return;
    if (this.isrSecondary() !== undefined || this.catchUp !== undefined) return;
    const controller = new AbortController();
    this.catchUp = controller;
    const epoch = this.epoch;
    const secondary = this.secondaryId;
    this.catchUpDone = this.catchUpLoop(epoch, { broker: secondary, kind: 'secondary' }, controller.signal).finally(() => {
      if (this.catchUp === controller) this.catchUp = undefined;
    });
  }

  private stopCatchUp(): void {
    this.catchUp?.abort();
    this.catchUp = undefined;
  }

  /**
   * THE catch-up loop, for both kinds of follower outside the ISR: the assigned secondary
   * (`kind: 'secondary'`) and the replica being added by a move (`kind: 'adding'`). It pushes
   * batches from the follower's LEO, one push per turn of the partition's lock (so flushes
   * interleave), with backoff on errors (the protocol's retry policy). When the follower
   * reaches the LEO, checked under the lock so no flush can slip in between, it finishes in
   * that same step. A secondary starts counting for the HW there (pending expansion), and the
   * coordinator is asked after the lock is let go: flushes go on meanwhile, pushed to it like
   * to any in-sync secondary, so produce does not wait for the coordinator. A replica being
   * added is swapped in for the secondary (`reassign-complete`) under the lock, so no record
   * is acknowledged on the old pair after the target caught up.
   */
  private async catchUpLoop(epoch: number, target: CatchUpTarget, signal: AbortSignal): Promise<void> {
    this.logger.info({ follower: target.broker, kind: target.kind, epoch }, 'catching up a follower');
    const still = () =>
      !signal.aborted &&
      !this.closed &&
      this.role === 'primary' &&
      this.epoch === epoch &&
      (target.kind === 'secondary' ? this.secondaryId === target.broker && this.isrSecondary() === undefined : this.addingId === target.broker);
    /**
     * One push under the lock: 'pushed' while the follower lags, the expansion to ask for when a
     * secondary caught up and counts from now on, 'done' when the loop is over (swapped in, or
     * no longer wanted).
     */
    const step = () =>
      this.lock.run(async (): Promise<'pushed' | 'done' | Expansion> => {
        if (!still()) return 'done';
        const sync = target.kind === 'secondary' ? this.syncFor(target.broker) : this.addingSyncFor(target.broker);
        // Up to what is durable here: a flush written but not yet committed follows in its own push.
        const leo = this.store.durableLeo;
        const outcome = await sync.pushOnce(leo, this.hw, undefined, this.options.limits.catchUpBatchBytes);
        // A map applied during the push may have ended this loop's reason to be.
        if (!still()) return 'done';
        // The HW moves only under the lock, so it is still at most `leo` here.
        if (outcome !== 'appended' || sync.secondaryLeo !== leo) return 'pushed';
        if (target.kind === 'secondary') return this.proposeExpansion(epoch, target.broker);
        const assignment = await this.completeReassignment(epoch, target.broker, signal);
        if (assignment !== undefined) this.swapIn(target.broker, sync, assignment);
        return 'done';
      });
    // A catch-up that keeps failing says so now and then (a stuck move is otherwise silent).
    let reportedMs: number | undefined;
    try {
      await retry(
        async () => {
          for (;;) {
            const outcome = await step();
            if (outcome === 'done') return;
            if (outcome !== 'pushed') return await this.expandIsr(outcome);
          }
        },
        {
          ...CATCH_UP_RETRY,
          retries: Number.MAX_SAFE_INTEGER,
          signal,
          // A refusal that is a decision ends the loop; a broken invariant is never retried.
          shouldRetry: (error) =>
            !(error instanceof InvariantError) &&
            !isTesseraError(error, 'STALE_EPOCH') &&
            !isTesseraError(error, 'NOT_PRIMARY') &&
            !(target.kind === 'adding' && isTesseraError(error, 'INVALID_REQUEST')),
          onRetry: (error, attempt) => {
            const nowMs = performance.now();
            const report = reportedMs === undefined || nowMs - reportedMs >= CATCH_UP_REPORT_MS;
            if (report) reportedMs = nowMs;
            this.logger[report ? 'warn' : 'debug']({ follower: target.broker, kind: target.kind, attempt, err: errorSummary(error) }, 'catch-up push failed');
          },
        },
      );
    } catch (error) {
      if (signal.aborted) return;
      if (isTesseraError(error, 'STALE_EPOCH') || isTesseraError(error, 'NOT_PRIMARY')) {
        this.deposed(`catch-up refused: ${error.code}`);
      } else if (isTesseraError(error, 'INVALID_REQUEST') && target.kind === 'adding') {
        // The coordinator cancelled the move meanwhile; the next map says what holds now.
        this.logger.info({ target: target.broker, err: errorSummary(error) }, 'move cancelled by the coordinator');
        this.options.cluster.requestMetadataRefresh(`move of ${this.topic}/${this.partition} cancelled`);
      } else if (error instanceof InvariantError) {
        throw error;
      } else {
        this.logger.warn({ follower: target.broker, err: errorSummary(error) }, 'catch-up stopped');
      }
    }
  }

  /**
   * The caught-up secondary counts for the HW from now on (under the lock): from before the
   * coordinator is asked, since if the answer is lost the coordinator may already count the
   * secondary in the ISR (and could promote it), so this primary must not acknowledge anything
   * the secondary lacks. A flush stamped before this step and not finished yet is pushed to the
   * secondary when it finishes, as to any ISR member. Should the coordinator not have applied
   * the expansion, its next map brings the ISR back to this primary alone.
   */
  private proposeExpansion(epoch: number, secondary: number): Expansion {
    const expansion = { epoch, secondary, abort: new AbortController() };
    this.expansion = expansion;
    this.isrState = expandingIsr(committedIsr([this.options.cluster.brokerId]), secondary);
    this.logger.info({ epoch, isr: this.isr, secondary }, 'ISR expanding: secondary caught up');
    // While the request is out, no map says what the coordinator did with it: one fetched now
    // may be answered before the coordinator applies the request and would take the secondary
    // out of the count. Only maps fetched after the answer (or its refusal) apply their ISR.
    this.isrSeq = Number.POSITIVE_INFINITY;
    return expansion;
  }

  /**
   * Asks the coordinator to put the secondary proposed by proposeExpansion back in the ISR.
   * Runs outside the lock: flushes meanwhile are pushed to the secondary and wait for it, as
   * for any ISR member, so produce goes on while the coordinator does not answer.
   */
  private async expandIsr(expansion: Expansion): Promise<void> {
    const { epoch, secondary } = expansion;
    const self = this.options.cluster.brokerId;
    const request = { brokerId: self, topic: this.topic, partition: this.partition, epoch, isr: [self, secondary], ...this.versionField() };
    let assignment: PartitionAssignment;
    try {
      // Asked until the coordinator answers either way: were this primary to go back to
      // acknowledging alone after a request that went unanswered, that request could still be
      // applied later at the same version, counting the secondary in sync while it lacks what
      // was acknowledged meanwhile. No ISR shrink is asked for meanwhile (see shrinkIsr). Not
      // stopped with the catch-up (any map stops that once the secondary is counted); only a
      // new role or epoch, or closing, ends it.
      assignment = await this.askUntilAnswered(
        epoch,
        () => this.options.cluster.changeIsr(request),
        (error, attempt) => this.logger.warn({ secondary, attempt, err: errorSummary(error) }, 'ISR expansion not answered; asking again'),
        expansion.abort.signal,
      );
    } catch (error) {
      // Refused as no longer the primary of this epoch (and still acting as it): step down now.
      if ((isTesseraError(error, 'STALE_EPOCH') || isTesseraError(error, 'NOT_PRIMARY')) && this.primaryOf(epoch)) {
        this.deposed(`coordinator refused the ISR expansion: ${error.code}`);
      }
      throw error;
    } finally {
      // Unless a newer epoch's expansion is out now (that one's end does this).
      if (this.expansion === expansion) {
        this.expansion = undefined;
        this.isrSeq = this.options.cluster.nextIsrSeq();
        // Maps applied meanwhile changed nothing of the ISR, secondary or replica being added here
        // (the coordinator may have moved the secondary without a new epoch): a new one says what
        // holds, and the version a refused expansion asks again with.
        this.options.cluster.requestMetadataRefresh(`ISR expansion of ${this.topic}/${this.partition} answered`);
      }
    }
    if (this.role === 'primary' && this.epoch === epoch) {
      this.setIsr(assignment.isr, 'ISR expanded: secondary caught up');
      this.noteVersion(assignment);
      this.isrSeq = this.options.cluster.nextIsrSeq();
    }
  }

  /** The `version` field of a request to the coordinator about this partition (none from an earlier coordinator). */
  private versionField(): { version?: number } {
    return this.assignmentVersion === undefined ? {} : { version: this.assignmentVersion };
  }

  /**
   * Takes the version of an assignment that applied here: a map's (only one fetched after this
   * replica's latest answer applies), or an answer's. Taken as it is, not the larger of two: a
   * coordinator whose versions went back (restored from a backup) would otherwise refuse every
   * expansion until the next epoch.
   */
  private noteVersion(assignment: PartitionAssignment): void {
    this.assignmentVersion = assignment.version;
  }

  // ---- primary: the replica being added by a move --------------------------------------

  /** Starts catching up the replica being added, when there is one and no loop runs yet. */
  private ensureAdding(): void {
    if (this.closed || this.role !== 'primary' || this.addingId === null || this.adding !== undefined) return;
    const controller = new AbortController();
    this.adding = controller;
    const epoch = this.epoch;
    const target: CatchUpTarget = { broker: this.addingId, kind: 'adding' };
    this.addingDone = this.catchUpLoop(epoch, target, controller.signal).finally(() => {
      if (this.adding === controller) this.adding = undefined;
    });
  }

  private stopAdding(): void {
    this.adding?.abort();
    this.adding = undefined;
    this.addingSync = undefined;
  }

  private addingSyncFor(target: number): SecondarySync {
    if (this.addingSync === undefined || this.addingSync.secondaryId !== target || this.addingSync.epoch !== this.epoch) {
      this.addingSync = this.newSync(target);
    }
    return this.addingSync;
  }

  /**
   * Asks the coordinator to swap the caught-up target in; retried (under the lock) until the
   * coordinator answers either way, since an unanswered request may have been applied: going
   * on acknowledging on the old pair then could lose records if the target were promoted.
   * Returns undefined when this replica stopped being primary of `epoch` meanwhile (the map
   * it learned says what holds). Throws the coordinator's refusal.
   */
  private async completeReassignment(epoch: number, target: number, signal: AbortSignal): Promise<PartitionAssignment | undefined> {
    const request = { brokerId: this.options.cluster.brokerId, topic: this.topic, partition: this.partition, epoch, target, ...this.versionField() };
    try {
      return await this.askUntilAnswered(
        epoch,
        () => this.options.cluster.completeReassignment(request),
        (error, attempt) => this.logger.warn({ target, attempt, err: errorSummary(error) }, 'move completion not answered; asking again'),
        signal,
      );
    } catch (error) {
      // Decided on an older assignment: the catch-up asks again with the version of the next map.
      if (isTesseraError(error, 'STALE_ASSIGNMENT')) this.options.cluster.requestMetadataRefresh(`move of ${this.topic}/${this.partition}: ${error.message}`);
      if (isRefusal(error) || this.primaryOf(epoch, signal)) throw error;
      return undefined;
    }
  }

  /**
   * Asks the coordinator (`ask`) until it answers or refuses (REFUSALS), while this replica is
   * still primary of `epoch` and `signal` is not aborted: an ISR expansion or a move completion.
   */
  private askUntilAnswered<T>(epoch: number, ask: () => Promise<T>, onRetry: (error: unknown, attempt: number) => void, signal?: AbortSignal): Promise<T> {
    const askWhilePrimary = () => {
      // Checked before every attempt too: the role or epoch may have changed during the backoff.
      if (!this.primaryOf(epoch, signal)) {
        return Promise.reject(new TesseraError('UNAVAILABLE', `${this.topic}/${this.partition}: no longer primary of epoch ${epoch}; not asked`));
      }
      return ask();
    };
    return retry(askWhilePrimary, {
      ...CATCH_UP_RETRY,
      retries: Number.MAX_SAFE_INTEGER,
      ...(signal === undefined ? {} : { signal }),
      shouldRetry: (error) => !isRefusal(error) && this.primaryOf(epoch, signal),
      onRetry,
    });
  }

  /** Whether this replica is still open and primary of `epoch`, and `signal` (if any) not aborted. */
  private primaryOf(epoch: number, signal?: AbortSignal): boolean {
    return signal?.aborted !== true && !this.closed && this.role === 'primary' && this.epoch === epoch;
  }


  /** The coordinator made `target` the secondary: replicate to it from now on, with the LEO the catch-up confirmed. */
  private swapIn(target: number, sync: SecondarySync, assignment: PartitionAssignment): void {
    // Why assert: the coordinator answers the swap it made; anything else means we misread the protocol.
    assert(
      assignment.secondary === target && assignment.epoch === this.epoch && assignment.isr.includes(target),
      `reassign-complete answered ${JSON.stringify(assignment)} for target ${target} at epoch ${this.epoch}`,
    );
    const previous = this.secondaryId;
    this.stopCatchUp();
    this.stopAdding();
    this.addingId = null;
    this.secondaryId = target;
    this.sync = sync;
    this.setIsr(assignment.isr, 'replica being added caught up: it is the secondary now');
    this.noteVersion(assignment);
    this.isrSeq = this.options.cluster.nextIsrSeq();
    this.logger.info({ secondary: target, previousSecondary: previous }, 'move: secondary replaced');
    this.advanceHw(Math.min(this.store.durableLeo, sync.secondaryLeo ?? this.hw));
  }

  private advanceHw(hw: number): void {
    // The HW never covers what is not durable here, whatever the followers have.
    assert(hw <= this.store.durableLeo, `hw ${hw} > durable leo ${this.store.durableLeo} (leo ${this.store.leo})`);
    assert(this.role === 'primary', `${this.topic}/${this.partition}: only a primary advances its HW`);
    if (hw <= this.hw) return;
    this.hw = hw;
    this.notify();
  }

  private notify(): void {
    if (this.listeners.size === 0) return;
    const listeners = [...this.listeners];
    this.listeners.clear();
    for (const listener of listeners) listener();
  }

  /**
   * The coordinator refused this primary (or a secondary knows a newer epoch): stop writing,
   * fail what waits, and learn the new map. Records written but not acknowledged stay in the
   * log until the new primary's divergence check truncates them.
   */
  private deposed(reason: string): void {
    if (this.role !== 'primary') return;
    this.logger.warn({ epoch: this.epoch, reason }, 'deposed: no longer primary');
    this.deposedAt = this.epoch;
    this.role = 'secondary';
    this.primaryId = null;
    this.expansion?.abort.abort();
    this.stopCatchUp();
    this.stopAdding();
    this.sync = undefined;
    this.failQueue(this.notPrimary());
    this.notify();
    this.options.cluster.requestMetadataRefresh(`deposed from ${this.topic}/${this.partition}`);
  }

  /** The ISR the coordinator answered or the map says. */
  private setIsr(isr: readonly number[], message: string): void {
    const changed = !sameMembers(isr, this.isr);
    this.isrState = committedIsr(isr);
    if (changed) {
      this.logger.info({ role: this.role, epoch: this.epoch, isr: this.isr, secondary: this.secondaryId }, message);
    }
  }

  // ---- assignments from the coordinator ---------------------------------------------

  /**
   * True when this replica was written or assigned at an epoch below `firstEpoch`, the epoch its
   * topic started at: it is what is left of a deleted topic of the same name (a topic made again
   * starts above every epoch of a deleted one), and must not be served as this topic's.
   */
  heldBefore(firstEpoch: number): boolean {
    const written = this.store.firstEpoch;
    return (written !== undefined && written < firstEpoch) || (this.assigned && this.epoch < firstEpoch);
  }

  /**
   * Applies the partition's assignment from metadata. Older epochs are ignored; `applyIsr`
   * is false when this replica took a newer ISR from a coordinator answer than the metadata
   * (fetched earlier) holds.
   */
  applyAssignment(assignment: PartitionAssignment, minInsyncReplicas: number, applyIsr: boolean): void {
    if (this.closed) return;
    const self = this.options.cluster.brokerId;
    if (this.assigned && assignment.epoch < this.epoch) {
      this.logger.debug({ epoch: this.epoch, metadataEpoch: assignment.epoch }, 'ignoring assignment of an older epoch');
      return;
    }
    if (assignment.primary === self && assignment.epoch <= this.deposedAt) {
      this.logger.debug({ epoch: this.epoch, metadataEpoch: assignment.epoch }, 'ignoring a map from before this replica was deposed');
      return;
    }
    this.minInsyncReplicas = minInsyncReplicas;
    const role: Role = assignment.primary === self ? 'primary' : 'secondary';
    const initial = !this.assigned;
    const changed = initial || role !== this.role || assignment.epoch !== this.epoch;
    const secondaryChanged = assignment.secondary !== this.secondaryId;
    this.assigned = true;
    if (changed) {
      if (this.role === 'primary') this.stepDown(assignment.primary);
      this.role = role;
      this.epoch = assignment.epoch;
      this.primaryId = assignment.primary;
      this.secondaryId = assignment.secondary;
      this.isrState = committedIsr(assignment.isr);
      this.sync = undefined;
      this.stopAdding();
      this.addingId = assignment.adding ?? null;
      this.noteVersion(assignment);
      // A replica's first role is routine (one line per replica of every new topic): debug.
      this.logger[initial ? 'debug' : 'info'](
        { role, epoch: this.epoch, isr: this.isr, primary: this.primaryId, secondary: this.secondaryId, leo: this.leo, hw: this.hw },
        initial ? 'role assigned' : 'role changed',
      );
      this.notify();
    } else {
      this.primaryId = assignment.primary;
      // A map fetched before our latest coordinator answer (ISR change or move swap) may still
      // name the old secondary: only a newer one may change the secondary, ISR and replica being added.
      if (applyIsr) {
        if (secondaryChanged) {
          this.logger.info({ epoch: this.epoch, secondary: assignment.secondary }, 'secondary changed');
          this.secondaryId = assignment.secondary;
          this.stopCatchUp();
          this.sync = undefined;
        }
        const adding = assignment.adding ?? null;
        if (adding !== this.addingId) {
          this.logger.info({ epoch: this.epoch, adding }, adding === null ? 'no replica being added any more' : 'replica being added');
          this.stopAdding();
          this.addingId = adding;
        }
        this.setIsr(assignment.isr, 'ISR changed by the coordinator');
        this.noteVersion(assignment);
      }
    }
    if (this.role === 'primary') this.primaryProgress();
  }

  /** After an assignment: advance the HW if alone, re-sync an in-ISR secondary, or catch up an out-of-ISR one. */
  private primaryProgress(): void {
    this.ensureAdding();
    const secondary = this.isrSecondary();
    if (secondary === undefined) {
      // Under the lock, like every HW move: a catch-up step may be counting a follower in
      // meanwhile (a secondary proposed, a replica being added swapped in), which must not find
      // the HW past what it pushed. A broken invariant fails the process, as in the flush loop.
      void this.lock.run(async () => {
        if (!this.closed && this.role === 'primary' && this.isrSecondary() === undefined) this.advanceHw(this.store.durableLeo);
      });
      this.ensureCatchUp();
      return;
    }
    this.stopCatchUp();
    if (this.hw < this.store.leo || this.sync?.secondaryLeo === undefined) {
      // Records not yet known to be on the secondary (e.g. after a restart): a sync flush
      // establishes where the secondary is and advances the HW.
      this.requestSync();
    }
  }

  private stepDown(newPrimary: number | null): void {
    this.expansion?.abort.abort();
    this.stopCatchUp();
    this.stopAdding();
    this.sync = undefined;
    this.role = 'secondary';
    this.primaryId = newPrimary;
    this.failQueue(this.notPrimary());
  }

  // ---- secondary: replication from the primary ---------------------------------------

  /** A push from a primary at a newer epoch than we know: follow it. */
  adoptEpoch(epoch: number, primaryId: number): void {
    assert(epoch >= this.epoch, `adopting epoch ${epoch} below known ${this.epoch}`);
    if (epoch === this.epoch && this.role === 'secondary' && this.primaryId === primaryId) return;
    if (this.role === 'primary') this.stepDown(primaryId);
    this.role = 'secondary';
    this.epoch = epoch;
    this.primaryId = primaryId;
    this.logger.info({ role: this.role, epoch, primary: primaryId }, 'following a newer epoch');
    this.notify();
    this.options.cluster.requestMetadataRefresh(`newer epoch ${epoch} for ${this.topic}/${this.partition}`);
  }

  /**
   * As a follower: writes one push of the primary, already checked against this log by
   * replication/follower/apply.ts: cut the log back to `truncateTo` (a batch straddling it is
   * re-encoded to its records below it), append `batches`, store `commits`, and take the
   * primary's HW, all in the broker's next group commit. Resolves once durable.
   */
  /**
   * Runs one push of the primary (checks and write) after the previous one of this partition
   * finished: a push sent again after a timeout must not be checked against a log that an
   * earlier push is still changing.
   */
  followerTurn<T>(apply: () => Promise<T>): Promise<T> {
    return this.followerLock.run(() => {
      // Closed while this push waited for its turn (close() waits for the turns under way, then the log may be deleted).
      if (this.closed) throw this.notHeld();
      return apply();
    });
  }

  /**
   * Takes a push's place among its primary's pushes (run inside followerTurn, once the push's
   * epoch is accepted): false when a later push of the same primary, epoch and run was taken
   * already, so this one was held up on the way and must not apply. Pushes of older primaries
   * carry no order and are always taken.
   */
  takePushOrder(primaryId: number, epoch: number, order: { run: number; seq: number } | undefined): boolean {
    if (order === undefined) return true;
    const last = this.lastPush;
    if (last !== undefined && last.primaryId === primaryId && last.epoch === epoch && last.run === order.run && order.seq <= last.seq) {
      return false;
    }
    this.lastPush = { primaryId, epoch, run: order.run, seq: order.seq };
    return true;
  }

  async followerWrite(write: {
    truncateTo?: number | undefined;
    /** The log holds no records and starts beyond the primary's: it starts again, empty, here (see applyPush). */
    restartAt?: number;
    batches: StoredBatch[];
    commits: GroupOffset[];
    hw: number;
    logStartOffset?: number;
  }): Promise<void> {
    assert(this.role === 'secondary', `${this.topic}/${this.partition}: a primary does not take pushes`);
    const log = this.store;
    const epoch = this.epoch;
    const pending: Array<Promise<void>> = [];
    if (write.restartAt !== undefined) {
      this.logger.info({ logStartOffset: log.logStartOffset, restartAt: write.restartAt }, "log holds no records and starts beyond the primary's: starting empty at its log start");
      pending.push(log.resetTo(write.restartAt));
      if (this.hw > write.restartAt) this.hw = write.restartAt;
    } else if (write.truncateTo !== undefined && write.truncateTo < log.leo) {
      const to = Math.max(write.truncateTo, log.logStartOffset);
      // Reads the committed log (waiting for queued writes): pushes of this partition are serialized (followerTurn).
      const straddling = to > log.logStartOffset ? await log.batchAt(to - 1) : undefined;
      // Meanwhile this replica may have been closed, or promoted by a newer map: the push's primary is not its primary then.
      if (this.closed) throw this.notHeld();
      if (this.role !== 'secondary' || this.epoch !== epoch) {
        throw new TesseraError('STALE_EPOCH', `${this.topic}/${this.partition} is at epoch ${this.epoch}`, { epoch: this.epoch });
      }
      const cut = straddling !== undefined && straddling.lastOffset >= to ? cutBatch(straddling, straddling.baseOffset, to) : undefined;
      this.logger.info({ from: log.leo, to }, 'truncating the log to where it agrees with the primary');
      pending.push(log.truncate(to, cut));
      if (this.hw > to) this.hw = to;
    }
    if (write.logStartOffset !== undefined && write.logStartOffset > log.leo) {
      this.logger.info({ leo: log.leo, logStartOffset: write.logStartOffset }, "log lies below the primary's log start: starting empty there");
      pending.push(log.resetTo(write.logStartOffset));
    }
    const leoAfter = write.batches.length === 0 ? log.leo : write.batches[write.batches.length - 1].lastOffset + 1;
    const hw = Math.min(write.hw, leoAfter);
    pending.push(log.append(write.batches, write.commits, hw));
    // The primary decides the log start (never above its HW); the follower takes it, so both agree.
    if (write.logStartOffset !== undefined && write.logStartOffset > log.logStartOffset) {
      pending.push(log.advanceLogStart(Math.min(write.logStartOffset, hw), hw));
    }
    await Promise.all(pending);
    if (this.role === 'secondary' && hw !== this.hw && hw <= log.leo) {
      this.hw = hw;
      this.notify();
    }
  }

  // ---- retention and purge -------------------------------------------------------------

  /**
   * One background retention pass over this replica: recounts its size after a truncation,
   * deletes the stored batches below the log start, and, on a primary once nothing below the
   * log start is left, moves the log start past the batches the topic's retention lets go
   * (never past the HW), then deletes those. Every statement is bounded (`maxBatches`, about
   * 8 MiB) and the event loop runs between them; a pass does at most MAX_RETENTION_ROUNDS.
   * Returns the number of batches deleted.
   */
  async retentionPass(pass: { nowMs: number; maxBatches: number }): Promise<number> {
    const { retentionMs, retentionBytes } = this;
    let total = 0;
    const startedAt = this.store.logStartOffset;
    for (let round = 0; round < MAX_RETENTION_ROUNDS && !this.closed; round++) {
      await this.store.recountSize();
      const { deleted, more } = await this.store.deleteBelowLogStart(pass.maxBatches);
      total += deleted;
      // Size retention counts the stored bytes: decide once nothing below the log start is left.
      if (more) continue;
      if (this.closed || this.role !== 'primary' || (retentionMs < 0 && retentionBytes < 0)) break;
      const start = this.store.retentionPoint({ retentionMs, retentionBytes, ...pass, hw: this.hw });
      if (start <= this.store.logStartOffset) break;
      await this.moveLogStart(start, 'retention');
    }
    if (this.store.logStartOffset > startedAt && this.role === 'primary') {
      this.logger.info({ from: startedAt, to: this.store.logStartOffset, sizeBytes: this.store.sizeBytes }, 'retention moved the log start');
    }
    return total;
  }

  /**
   * Purge (primary only): the log start moves to the HW, so every acknowledged record is gone
   * while offsets go on from where they were (the next record gets the next offset). Records
   * stored but not yet acknowledged stay and are acknowledged as usual.
   */
  async purge(): Promise<{ logStartOffset: number; highWatermark: number }> {
    this.checkCanWrite();
    const epoch = this.epoch;
    await this.moveLogStart(this.hw, 'purge');
    // Answered once the in-sync secondary holds the new log start too: a failover to it in the
    // meantime would otherwise bring back what the purge was answered as having removed. Deposed
    // (or closed) meanwhile, it is not answered as done: the new primary may not have it.
    this.checkStillPrimary(epoch);
    if (this.isrSecondary() !== undefined) await this.nextSync();
    this.checkStillPrimary(epoch);
    return { logStartOffset: this.store.logStartOffset, highWatermark: this.hw };
  }

  private async moveLogStart(offset: number, reason: 'retention' | 'purge'): Promise<void> {
    assert(this.role === 'primary', `${this.topic}/${this.partition}: only a primary moves its log start`);
    assert(offset <= this.hw, `${this.topic}/${this.partition}: log start ${offset} beyond hw ${this.hw}`);
    const from = this.store.logStartOffset;
    await this.store.advanceLogStart(offset, this.hw);
    // A purge is one line; retention says once per pass where it moved the log start (retentionPass).
    this.logger[reason === 'purge' ? 'info' : 'debug']({ reason, from, to: this.store.logStartOffset, hw: this.hw }, 'log start moved');
    // The in-sync secondary learns it now, even when nothing is produced: an empty sync push
    // carries it (a purge asks for its own and waits for it). An out-of-ISR follower gets it
    // with its catch-up pushes.
    if (reason === 'retention' && this.isrSecondary() !== undefined) this.requestSync();
  }

  // ---- lifecycle ---------------------------------------------------------------------

  /** Stops writing, fails what waits, waits for the running flush/catch-up and checkpoints the HW. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.expansion?.abort.abort();
    this.stopCatchUp();
    this.stopAdding();
    this.failQueue(this.closing());
    this.notify();
    await Promise.allSettled([this.flushLoopDone, this.catchUpDone, this.addingDone, this.lock.idle(), this.followerLock.idle()]);
    await this.store.checkpointHw(Math.min(this.hw, this.store.leo));
  }
}

function errorSummary(error: unknown): string {
  if (error instanceof Error) return `${(error as { code?: string }).code ?? error.name}: ${error.message}`;
  return String(error);
}
