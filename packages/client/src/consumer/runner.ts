/**
 * The `subscribe()` loop: takes the next records, runs the handler over them (each
 * partition's records in order, partitions side by side), and commits what was handled in
 * the background, one commit at a time and at most one per `commitIntervalMs`, so a commit
 * never delays the next fetch.
 */
import { backoffMs, isRetriable, isTesseraError, type RetryOptions } from '@tessera/protocol';
import { delay } from '../internal/signal.js';
import type { ConsumedRecord } from '../records.js';
import type { PartitionState } from './partition-state.js';

export type RecordHandler = (record: ConsumedRecord) => void | Promise<void>;

/** What the runner needs from its consumer. */
export interface RunnerHost {
  owned: Map<number, PartitionState>;
  retry: RetryOptions;
  signal: AbortSignal;
  /** The least time from one background commit's start to the next one's. */
  commitIntervalMs: number;
  isClosed(): boolean;
  /** The next records (without marking them returned): applies membership changes, fetches, waits. */
  nextRecords(): Promise<ConsumedRecord[]>;
  /** Commits the handled records of every owned partition. */
  commitHandled(): Promise<void>;
  /** Makes `offset` the next record of the partition to fetch and hand out. */
  rewind(state: PartitionState, offset: number): void;
  onError(error: unknown): void;
}

export class SubscriptionRunner {
  private backgroundCommit: Promise<void> | null = null;
  private commitAgain = false;
  private lastCommitMs = Number.NEGATIVE_INFINITY;
  /** A background commit that failed for good: the subscription rejects with it. */
  private commitFailure: unknown = undefined;

  constructor(
    private readonly host: RunnerHost,
    private readonly handler: RecordHandler,
  ) {}

  /**
   * Resolves when the consumer is closed; rejects on a fatal error — a non-retriable one, or
   * a handler that threw (what was handled before is committed, the failed record comes again).
   */
  async run(): Promise<void> {
    let failures = 0;
    while (!this.host.isClosed()) {
      let records: ConsumedRecord[];
      try {
        records = await this.host.nextRecords();
        failures = 0;
      } catch (error) {
        if (this.host.isClosed()) break;
        if (!isRetriable(error)) throw error;
        this.host.onError(error);
        await delay(backoffMs(Math.min(failures++, 20), this.host.retry), this.host.signal);
        continue;
      }
      if (this.commitFailure !== undefined) throw this.commitFailure;
      if (records.length === 0) continue;
      const handlerError = await this.handleBatch(records);
      if (handlerError !== undefined) {
        // What was handled before the failure is committed before the error ends the subscription.
        await this.backgroundCommit;
        await this.host.commitHandled().catch((error: unknown) => this.host.onError(error));
        throw handlerError.error;
      }
      this.commitInBackground();
    }
    await this.backgroundCommit;
  }

  /**
   * Commits the handled records without making the next fetch wait for it: one commit at a
   * time, and one more after it when records were handled meanwhile, started no sooner than
   * `commitIntervalMs` after the one before. A retriable failure is reported (the next commit
   * covers it); a non-retriable one ends the subscription, except OFFSET_OUT_OF_RANGE (a
   * position a seek() put outside the log: the fetch moves it per `offsetReset`, and the next
   * commit stores where it lands). A wait that close() cuts short commits nothing: close()
   * commits what was handled itself.
   */
  private commitInBackground(): void {
    if (this.backgroundCommit !== null) {
      this.commitAgain = true;
      return;
    }
    this.backgroundCommit = (async () => {
      do {
        const waitMs = this.lastCommitMs + this.host.commitIntervalMs - performance.now();
        if (waitMs > 0) {
          await delay(waitMs, this.host.signal);
          if (this.host.isClosed()) break;
        }
        this.commitAgain = false;
        this.lastCommitMs = performance.now();
        try {
          await this.host.commitHandled();
        } catch (error) {
          if (isRetriable(error) || isTesseraError(error, 'OFFSET_OUT_OF_RANGE')) this.host.onError(error);
          else this.commitFailure ??= error;
        }
      } while (this.commitAgain && !this.host.isClosed() && this.commitFailure === undefined);
      this.backgroundCommit = null;
    })();
  }

  /**
   * Runs the handler over one batch: each partition's records in order, partitions side by
   * side. After a handler error (or close()) the remaining records are not handled, and
   * their partitions rewind to the first unhandled offset so they come again.
   */
  private async handleBatch(records: ConsumedRecord[]): Promise<{ error: unknown } | undefined> {
    const byPartition = new Map<number, ConsumedRecord[]>();
    for (const record of records) {
      const list = byPartition.get(record.partition);
      if (list === undefined) byPartition.set(record.partition, [record]);
      else list.push(record);
    }
    let failure: { error: unknown } | undefined;
    await Promise.all(
      [...byPartition.values()].map(async (list) => {
        for (const record of list) {
          const state = this.host.owned.get(record.partition);
          const closed = this.host.isClosed();
          if (failure !== undefined || closed || state === undefined) {
            if (state !== undefined && !closed) this.host.rewind(state, record.offset);
            return;
          }
          try {
            await this.handler(record);
          } catch (error) {
            // A handler cut short by close() (its wait between attempts ends) has not handled the
            // record either: it comes again, and the subscription ends as closed, not failed.
            if (this.host.isClosed()) return;
            failure ??= { error };
            this.host.rewind(state, record.offset);
            return;
          }
          state.consumedOffset = record.offset + 1;
        }
      }),
    );
    return failure;
  }
}
