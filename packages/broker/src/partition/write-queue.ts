/**
 * A primary's write queue: produces and commits wait here for the next flush. Bounded per
 * kind (records and requests of produces, commits), so an overloaded partition answers
 * UNAVAILABLE (retriable) instead of growing without limit; a flush takes at most
 * `maxFlushRecords` records (and always at least one request).
 */
import { TesseraError } from '@tessera/protocol';
import type { SequencedBatch } from '../producers/producer-state.js';
import type { GroupOffset } from '../storage/index.js';

/** A batch as the produce path validated it: its bytes and the header fields the broker needs. */
export interface IncomingBatch {
  bytes: Buffer;
  recordCount: number;
  lastOffsetDelta: number;
  maxTimestamp: number;
  /** The idempotent producer's fields, undefined when the batch has no producer id. */
  sequenced?: SequencedBatch;
}

export interface ProduceResult {
  baseOffset: number;
  lastOffset: number;
  count: number;
  epoch: number;
}

export interface ProduceEntry {
  kind: 'produce';
  queuedAtMs: number;
  batches: IncomingBatch[];
  records: number;
  resolve: (result: ProduceResult) => void;
  reject: (error: unknown) => void;
}

export interface CommitEntry {
  kind: 'commit';
  queuedAtMs: number;
  commit: GroupOffset;
  /** Refused after a deletion mark of a newer generation, too (see `Partition.commit`). */
  fencedByDeletion: boolean;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export type WriteEntry = ProduceEntry | CommitEntry;

export interface WriteQueueLimits {
  /** Most records of waiting produces. */
  maxRecords: number;
  /** Most waiting produce requests. */
  maxProduces: number;
  /** Most waiting commits. */
  maxCommits: number;
  /** Most records one flush takes. */
  maxFlushRecords: number;
}

export class WriteQueue {
  private entries: WriteEntry[] = [];
  private records = 0;
  private produces = 0;
  private commits = 0;

  constructor(
    private readonly name: string,
    private readonly limits: WriteQueueLimits,
  ) {}

  get isEmpty(): boolean {
    return this.entries.length === 0;
  }

  /**
   * Queues a produce of `batches`; throws UNAVAILABLE when the queue is full. An empty queue
   * takes any produce: one with more records than the bound would otherwise never be taken.
   */
  produce(batches: IncomingBatch[]): Promise<ProduceResult> {
    let records = 0;
    for (const batch of batches) records += batch.recordCount;
    if ((this.records > 0 && this.records + records > this.limits.maxRecords) || this.produces >= this.limits.maxProduces) {
      throw new TesseraError('UNAVAILABLE', `${this.name}: too many records waiting to be written, retry`);
    }
    return new Promise<ProduceResult>((resolve, reject) => {
      this.entries.push({ kind: 'produce', queuedAtMs: performance.now(), batches, records, resolve, reject });
      this.records += records;
      this.produces++;
    });
  }

  /** Queues a commit; throws UNAVAILABLE when the queue holds too many. */
  commit(commit: GroupOffset, fencedByDeletion = false): Promise<void> {
    if (this.commits >= this.limits.maxCommits) {
      throw new TesseraError('UNAVAILABLE', `${this.name}: too many commits waiting, retry`);
    }
    return new Promise<void>((resolve, reject) => {
      this.entries.push({ kind: 'commit', queuedAtMs: performance.now(), commit, fencedByDeletion, resolve, reject });
      this.commits++;
    });
  }

  /** Takes the next flush's entries: up to maxFlushRecords records, and always at least one entry. */
  take(): WriteEntry[] {
    let count = 0;
    let taken = 0;
    while (taken < this.entries.length) {
      const entry = this.entries[taken];
      const size = entry.kind === 'produce' ? entry.records : 0;
      if (taken > 0 && count + size > this.limits.maxFlushRecords) break;
      count += size;
      taken++;
    }
    const batch = this.entries.splice(0, taken);
    for (const entry of batch) {
      if (entry.kind === 'produce') {
        this.records -= entry.records;
        this.produces--;
      } else {
        this.commits--;
      }
    }
    return batch;
  }

  /** Fails every waiting entry with `error` and empties the queue. */
  failAll(error: unknown): void {
    const entries = this.entries;
    this.entries = [];
    this.records = 0;
    this.produces = 0;
    this.commits = 0;
    for (const entry of entries) entry.reject(error);
  }
}
