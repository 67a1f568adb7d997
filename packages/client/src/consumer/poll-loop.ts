/**
 * The records of owned partitions as `poll()` hands them out: the fetcher (long-polls per
 * primary broker) and the round of work behind `poll()`, shared by the group consumer and the
 * reader.
 */
import type { ClientParts } from '../internal/client-parts.js';
import type { Wakeup } from '../internal/signal.js';
import type { ConsumedRecord } from '../records.js';
import { Fetcher } from './fetcher.js';
import { positionErrorOf, takeBuffered, type PartitionState } from './partition-state.js';
import { offsetResetPolicy, type OffsetReset } from './positions.js';
import { groupByPrimary } from './routing.js';

/** What the owner of a feed (the group consumer or a reader) chose and holds. */
export interface RecordFeedOptions {
  topic: string;
  /** Below the log start: the owner's option as given (`'earliest'` when absent). */
  offsetReset: OffsetReset | undefined;
  /** Most records asked for per fetch. */
  maxRecords: number;
  /** The long-poll of the fetch started while the caller handles the records returned. */
  waitMs: number;
  owned: Map<number, PartitionState>;
  /** Notified when a fetch finished (and by the owner on membership changes, seek, close). */
  wakeup: Wakeup;
  signal: AbortSignal;
  isClosed(): boolean;
  /** Before each round: the group consumer applies membership changes and finds start offsets. */
  beforeRound?(): Promise<void>;
  /** A partition-level problem (routing errors included): the owner refreshes the map and reports. */
  onPartitionError(error: unknown): void;
  /** A problem the owner recovered from by itself, reported as an 'error' event. */
  onError(error: unknown): void;
}

export class RecordFeed {
  private readonly fetcher: Fetcher;
  /** Rotates which partition's buffer a poll drains first, so none starves. */
  private drainStart = 0;

  constructor(
    client: ClientParts,
    private readonly options: RecordFeedOptions,
  ) {
    const { topic, owned, signal, maxRecords, onPartitionError, onError } = options;
    const report = { onError, onPartitionError };
    this.fetcher = new Fetcher({
      topic,
      connection: client.connection,
      retry: client.retry,
      requestTimeoutMs: client.requestTimeoutMs,
      offsetReset: offsetResetPolicy(options.offsetReset),
      maxRecords,
      signal,
      owned,
      groupByPrimary: (partitions) => groupByPrimary(client.metadata, topic, partitions, report),
      onFetchDone: () => options.wakeup.notify(),
      onPartitionError,
      onError,
    });
  }

  /**
   * Hands out buffered records (up to `maxRecords`), fetching and waiting up to `waitMs` when
   * there are none. With `waitMs` 0 and nothing buffered it asks the brokers without a
   * long-poll and gives their answers one turn of the event loop, so polling in a loop makes
   * progress and never starves the process's I/O. Throws a partition's position error
   * (offsetReset 'error') once its buffered records are handed out. With `markConsumed`, the
   * returned offsets move past what is returned.
   */
  async next(maxRecords: number, waitMs: number, markConsumed: boolean): Promise<ConsumedRecord[]> {
    const { owned, wakeup, signal } = this.options;
    const deadlineMs = performance.now() + waitMs;
    for (let lastLook = false; ; ) {
      if (this.options.isClosed()) return [];
      await this.options.beforeRound?.();
      const positionError = positionErrorOf(owned);
      if (positionError !== undefined) throw positionError;
      const records = takeBuffered(owned, this.drainStart++, maxRecords, markConsumed);
      // Whole milliseconds: the broker's long-poll wait is an integer.
      const remainingMs = Math.ceil(deadlineMs - performance.now());
      if (records.length > 0) {
        // The partitions just emptied are fetched again while the caller handles these records.
        this.fetcher.start(this.options.waitMs).catch((error: unknown) => this.options.onError(error));
        return records;
      }
      if (lastLook || (remainingMs <= 0 && waitMs > 0) || this.options.isClosed()) return records;
      lastLook = remainingMs <= 0;
      await this.fetcher.start(Math.max(remainingMs, 0));
      await wakeup.wait(Math.max(remainingMs, 0), { signal });
    }
  }
}
