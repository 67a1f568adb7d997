/**
 * The records of owned partitions as `poll()` hands them out: the fetcher (long-polls per
 * primary broker) and the round of work behind `poll()`, shared by the group consumer and the
 * reader.
 */
import type { Wakeup } from '../internal/signal.js';
import type { ConsumedRecord } from '../records.js';
import { Fetcher, type FetcherContext } from './fetcher.js';
import { positionErrorOf, takeBuffered, type PartitionState } from './partition-state.js';

/** What the fetcher needs (it is told when a fetch is done through `wakeup`), and the round's own parts. */
export interface RecordFeedOptions extends Omit<FetcherContext, 'onFetchDone'> {
  /** The long-poll of the fetch started while the caller handles the records returned. */
  waitMs: number;
  /** Notified when a fetch finished (and by the owner on membership changes, seek, close). */
  wakeup: Wakeup;
  isClosed(): boolean;
  /** Before each round: the group consumer applies membership changes and finds start offsets. */
  beforeRound(): Promise<void>;
}

export class RecordFeed {
  private readonly fetcher: Fetcher;
  /** Rotates which partition's buffer a poll drains first, so none starves. */
  private drainStart = 0;

  constructor(private readonly options: RecordFeedOptions) {
    this.fetcher = new Fetcher({ ...options, onFetchDone: () => options.wakeup.notify() });
  }

  /**
   * Hands out buffered records (up to `maxRecords`), fetching and waiting up to `waitMs` when
   * there are none. Throws a partition's position error (offsetReset 'error') once its
   * buffered records are handed out. With `markConsumed`, the returned offsets move past what
   * is returned.
   */
  async next(maxRecords: number, waitMs: number, markConsumed: boolean): Promise<ConsumedRecord[]> {
    const { owned, wakeup, signal } = this.options;
    const deadlineMs = Date.now() + waitMs;
    for (;;) {
      if (this.options.isClosed()) return [];
      await this.options.beforeRound();
      const positionError = positionErrorOf(owned);
      if (positionError !== undefined) throw positionError;
      const records = takeBuffered(owned, this.drainStart++, maxRecords, markConsumed);
      const remainingMs = deadlineMs - Date.now();
      if (records.length > 0) {
        // The partitions just emptied are fetched again while the caller handles these records.
        this.fetcher.start(this.options.waitMs).catch((error: unknown) => this.options.onError(error));
        return records;
      }
      if (remainingMs <= 0 || this.options.isClosed()) return records;
      await this.fetcher.start(remainingMs);
      await wakeup.wait(remainingMs, { signal });
    }
  }
}
