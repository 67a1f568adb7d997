/**
 * A reader: reads chosen partitions of a topic from chosen offsets, without a group (no
 * membership, no commits; like a Kafka consumer with `assign()` and `seek()`, or kcat). It uses
 * the same fetcher as the group consumer: one long-poll per primary broker, whole batches,
 * records below the HW only, and the same `offsetReset` policy below the log start.
 */
import { EventEmitter } from 'node:events';
import { MAX_PARTITIONS, TesseraError, parseOrThrow, topicName } from '@tessera/protocol';
import { needsMetadataRefresh } from '../cluster/metadata-cache.js';
import type { ClientParts } from '../internal/client-parts.js';
import { Wakeup } from '../internal/signal.js';
import type { ConsumedRecord } from '../records.js';
import { setStart } from './offsets.js';
import { newPartitionState, type PartitionState } from './partition-state.js';
import { RecordFeed } from './poll-loop.js';
import { checkedInteger, checkedOffset, type OffsetReset } from './positions.js';

export interface ReaderOptions {
  topic: string;
  /** The partitions to read and the offset each starts at (`admin.listOffsets` finds offsets by position). */
  positions: Array<{ partition: number; offset: number }>;
  /** Most records one `poll()` returns (default 1000). */
  maxRecords?: number;
  /** How long a `poll()` waits for records when none are there (default 1000 ms). */
  waitMs?: number;
  /** Below the log start: see `ConsumerOptions.offsetReset` (default `'earliest'`). */
  offsetReset?: OffsetReset;
}

/** What a reader needs from the client that made it. */
export interface ReaderContext extends ClientParts {
  onClose(reader: Reader): void;
}

/**
 * Reads partitions from given offsets: `poll()` in a loop, `seek()` to move, `position()` to
 * know the next offset of a partition, `close()` at the end. Events: `'error'` for problems it
 * recovers from by itself (routing changes, a fetch that failed and is retried).
 */
export class Reader extends EventEmitter {
  readonly topic: string;
  private readonly owned = new Map<number, PartitionState>();
  private readonly feed: RecordFeed;
  private readonly wakeup = new Wakeup();
  private readonly abort = new AbortController();
  private readonly maxRecords: number;
  private readonly waitMs: number;
  private busy = false;
  private closed = false;

  /** @internal Use `TesseraClient.reader()`. */
  constructor(
    private readonly context: ReaderContext,
    options: ReaderOptions,
  ) {
    super();
    this.topic = parseOrThrow(topicName, options.topic, 'topic name');
    if (options.positions.length === 0) throw new TesseraError('INVALID_REQUEST', 'a reader needs at least one partition');
    this.maxRecords = checkedInteger('maxRecords', options.maxRecords ?? 1000, 1);
    this.waitMs = checkedInteger('waitMs', options.waitMs ?? 1000, 0);
    if (options.positions.length > MAX_PARTITIONS) throw new TesseraError('INVALID_REQUEST', `at most ${MAX_PARTITIONS} partitions`);
    for (const { partition, offset } of options.positions) {
      checkedInteger('partition', partition, 0, MAX_PARTITIONS - 1);
      if (this.owned.has(partition)) throw new TesseraError('INVALID_REQUEST', `partition ${partition} is listed twice`);
      const state = newPartitionState(partition);
      setStart(state, checkedOffset(offset), null);
      this.owned.set(partition, state);
    }
    this.feed = new RecordFeed(context, {
      topic: this.topic,
      offsetReset: options.offsetReset,
      maxRecords: this.maxRecords,
      waitMs: this.waitMs,
      owned: this.owned,
      wakeup: this.wakeup,
      signal: this.abort.signal,
      isClosed: () => this.closed,
      onPartitionError: (error) => {
        if (needsMetadataRefresh(error)) context.metadata.refreshInBackground();
        this.note(error);
      },
      onError: (error) => this.note(error),
    });
  }

  /**
   * The next records (up to `maxRecords`), waiting up to `waitMs` when there are none. Throws
   * OFFSET_OUT_OF_RANGE when a position fell below the log start and `offsetReset` is `'error'`.
   */
  async poll(options: { maxRecords?: number; waitMs?: number } = {}): Promise<ConsumedRecord[]> {
    if (this.closed) return [];
    if (this.busy) throw new TesseraError('INVALID_REQUEST', 'poll() is already running');
    this.busy = true;
    try {
      const maxRecords = checkedInteger('maxRecords', options.maxRecords ?? this.maxRecords, 1);
      return await this.feed.next(maxRecords, checkedInteger('waitMs', options.waitMs ?? this.waitMs, 0), true);
    } finally {
      this.busy = false;
    }
  }

  /** The next offset `poll()` returns of `partition` (after what it returned so far). */
  position(partition: number): number {
    const state = this.owned.get(partition);
    if (state === undefined) throw new TesseraError('INVALID_REQUEST', `this reader does not read partition ${partition}`);
    return state.returnedOffset ?? state.fetchOffset!;
  }

  /** Moves `partition` to `offset`: records fetched beyond are dropped and the next fetch starts there. */
  seek(partition: number, offset: number): void {
    const state = this.owned.get(partition);
    if (state === undefined) throw new TesseraError('INVALID_REQUEST', `this reader does not read partition ${partition}`);
    state.buffer = [];
    setStart(state, checkedOffset(offset), null);
    this.wakeup.notify();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    this.wakeup.notify();
    this.owned.clear();
    this.context.onClose(this);
  }

  /** Without an `'error'` listener, recovered problems are dropped (like the consumer's). */
  private note(error: unknown): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }
}
