/**
 * The consumer's fetcher: one long-poll `POST /fetch` per primary broker at a time,
 * covering every owned partition of that broker, started once all of their buffers are
 * empty (a fetch of only the idle ones would hold a busy one back until its long-poll ends),
 * answered as a frame of whole RecordBatches. Records below the requested offset (a batch may begin before
 * it) and at or above the high watermark are skipped; the rest go to the partition's
 * buffer as Buffers (views of the answer, no copy).
 */
import {
  backoffMs,
  BROKER_ROUTES,
  decodeRecordBatch,
  DEFAULT_FETCH_MAX_BYTES,
  fetchFrameHead,
  isTesseraError,
  iterateBatches,
  MAX_FETCH_WAIT_MS,
  parseOrThrow,
  splitTail,
  TesseraError,
  type FetchFrameHead,
  type RetryOptions,
} from '@tessera/protocol';
import type { Connection } from '../connection/connection.js';
import { delay } from '../internal/signal.js';
import type { ConsumedRecord } from '../records.js';
import type { PartitionState } from './partition-state.js';
import { outOfRangeOffset, type OffsetReset } from './positions.js';
import type { RoutedPartition } from '../cluster/metadata-cache.js';

export interface FetcherContext {
  topic: string;
  connection: Connection;
  retry: RetryOptions;
  requestTimeoutMs: number;
  /** What to do when a position falls below the log start. */
  offsetReset: OffsetReset;
  /** Most records asked for per fetch. */
  maxRecords: number;
  signal: AbortSignal;
  owned: Map<number, PartitionState>;
  /** Partitions grouped by their primary's URL (partitions without one left out). */
  groupByPrimary(partitions: number[]): Promise<Map<string, RoutedPartition[]>>;
  /** A fetch answered or failed: waiting polls look again. */
  onFetchDone(): void;
  /** A partition-level problem: routing errors refresh the map, the rest are reported. */
  onPartitionError(error: unknown): void;
  /** A problem the consumer recovered from by itself, reported as an 'error' event. */
  onError(error: unknown): void;
}

type FetchedPartition = FetchFrameHead['partitions'][number];

export class Fetcher {
  /** One fetch at a time per broker URL. */
  private readonly fetches = new Map<string, Promise<void>>();
  private readonly brokerFailures = new Map<string, number>();
  /**
   * Partitions a broker refused in its answer (it no longer leads them, say): left out of that
   * broker's fetches until `untilMs` (performance.now()), longer after each refusal in a row.
   * The broker answers such a partition at once, so asking again at once would spin; its other
   * partitions are fetched meanwhile.
   */
  private readonly refused = new Map<number, { url: string; count: number; untilMs: number }>();

  constructor(private readonly context: FetcherContext) {}

  /**
   * Starts one long-poll per primary broker that has none out and whose owned partitions have
   * all handed out their buffered records.
   */
  async start(waitMs: number): Promise<void> {
    const fetchable: number[] = [];
    let anyEmpty = false;
    for (const state of this.context.owned.values()) {
      if (state.fetchOffset === null || state.positionError !== null) continue;
      fetchable.push(state.partition);
      if (state.buffer.length === 0) anyEmpty = true;
    }
    // Every partition still has records to hand out: no broker is due for a fetch.
    if (!anyEmpty) return;
    const byPrimary = await this.context.groupByPrimary(fetchable);
    const nowMs = performance.now();
    for (const [url, partitions] of byPrimary) {
      if (this.fetches.has(url)) continue;
      const requested = new Map<number, { offset: number; epoch: number }>();
      let buffered = false;
      for (const { partition, epoch } of partitions) {
        const state = this.context.owned.get(partition);
        if (state?.fetchOffset == null || state.positionError !== null) continue;
        const refusal = this.refused.get(partition);
        if (refusal !== undefined && refusal.url === url && refusal.untilMs > nowMs) continue;
        if (state.buffer.length > 0) buffered = true;
        requested.set(partition, { offset: state.fetchOffset, epoch });
      }
      if (buffered || requested.size === 0) continue;
      const fetch = this.fetch(url, requested, Math.min(waitMs, MAX_FETCH_WAIT_MS)).finally(() => {
        this.fetches.delete(url);
        this.context.onFetchDone();
      });
      this.fetches.set(url, fetch);
    }
  }

  /** One fetch from one broker; never throws. After a failure it waits (backoff) before letting the broker be asked again. */
  private async fetch(url: string, requested: Map<number, { offset: number; epoch: number }>, waitMs: number): Promise<void> {
    const { topic } = this.context;
    try {
      const { head, tail } = await this.context.connection.brokerForFrame(
        url,
        BROKER_ROUTES.fetch,
        {
          partitions: [...requested].map(([partition, { offset, epoch }]) => ({ topic, partition, offset, epoch })),
          maxRecords: this.context.maxRecords,
          maxBytes: DEFAULT_FETCH_MAX_BYTES,
          waitMs,
        },
        { timeoutMs: this.context.requestTimeoutMs + waitMs, signal: this.context.signal },
      );
      const answer = parseOrThrow(fetchFrameHead, head, 'fetch answer');
      const parts = splitTail(tail, answer.partitions.map((p) => p.bytes));
      let unreadable: unknown;
      answer.partitions.forEach((result, i) => {
        try {
          if (this.onFetched(result, parts[i]!, requested.get(result.partition)?.offset) === 'refused') this.refusedBy(url, result.partition);
          else this.refused.delete(result.partition);
        } catch (error) {
          unreadable ??= error;
        }
      });
      // An unreadable batch counts as a failed fetch: reported, and the broker asked again after a backoff.
      if (unreadable !== undefined) throw unreadable;
      this.brokerFailures.delete(url);
    } catch (error) {
      if (this.context.signal.aborted) return;
      this.context.onPartitionError(error);
      await this.backOff(url);
    }
  }

  /** `url` refused `partition` (reported in onFetched): it is left out of that broker's fetches for a while. */
  private refusedBy(url: string, partition: number): void {
    const last = this.refused.get(partition);
    const count = last !== undefined && last.url === url ? last.count + 1 : 1;
    this.refused.set(partition, { url, count, untilMs: performance.now() + backoffMs(Math.min(count - 1, 20), this.context.retry) });
  }

  /** Waits before `url` may be asked again, longer after each failure in a row. */
  private async backOff(url: string): Promise<void> {
    const failures = (this.brokerFailures.get(url) ?? 0) + 1;
    this.brokerFailures.set(url, failures);
    await delay(backoffMs(Math.min(failures - 1, 20), this.context.retry), this.context.signal, { unref: true });
  }

  /** Takes one partition's answer; 'refused' when the broker answered it with an error other than a position out of range. */
  private onFetched(result: FetchedPartition, batches: Buffer, requestedOffset: number | undefined): 'refused' | undefined {
    const state = this.context.owned.get(result.partition);
    // Revoked meanwhile, or moved on (rewound, or already fetched from a new primary): drop the answer.
    if (result.topic !== this.context.topic || state === undefined || requestedOffset === undefined) return;
    if (state.fetchOffset !== requestedOffset || state.buffer.length > 0) return;
    if (result.error !== undefined) {
      const error = TesseraError.fromBody({ error: result.error }) ?? new TesseraError('INTERNAL', result.error.message);
      if (isTesseraError(error, 'OFFSET_OUT_OF_RANGE')) {
        // Below the log start (records deleted by retention or a purge): the reset policy
        // decides. Beyond the end (a new primary whose HW lags, or a truncated log): back to
        // the high watermark, which skips nothing that exists.
        const logStart = error.details.logStartOffset ?? result.logStartOffset;
        const highWatermark = error.details.highWatermark ?? result.highWatermark;
        const next = outOfRangeOffset(this.context.offsetReset, requestedOffset, logStart, highWatermark);
        if (next === undefined) {
          state.positionError = new TesseraError(
            'OFFSET_OUT_OF_RANGE',
            `${this.context.topic}/${result.partition}: offset ${requestedOffset} is below the log start ${logStart} (records deleted); offsetReset is 'error': seek() to go on`,
            { logStartOffset: logStart, highWatermark },
          );
        } else {
          // Everything handed out lies below the requested offset: the position (what a commit
          // stores) moves with the fetch offset, so a commit never names an offset outside the log.
          state.fetchOffset = next;
          state.consumedOffset = next;
          state.returnedOffset = next;
        }
        this.context.onError(error);
        return;
      }
      this.context.onPartitionError(error);
      return 'refused';
    }
    let next = requestedOffset;
    try {
      for (const { at } of iterateBatches(batches)) {
        for (const record of decodeRecordBatch(batches, at).records) {
          // Never hand out a record twice from one position, nor one not yet committed.
          if (record.offset < next) continue;
          if (record.offset >= result.highWatermark) break;
          state.buffer.push(consumed(this.context.topic, result.partition, record));
          next = record.offset + 1;
        }
      }
    } catch (error) {
      // Keep what came before the unreadable batch and fetch again from there.
      state.fetchOffset = next;
      throw new TesseraError('INTERNAL', `${this.context.topic}/${result.partition}: unreadable batch at offset ${next}: ${(error as Error).message}`, {}, { cause: error });
    }
    state.fetchOffset = next;
  }
}

function consumed(
  topic: string,
  partition: number,
  record: ReturnType<typeof decodeRecordBatch>['records'][number],
): ConsumedRecord {
  const headers: Record<string, Buffer> = {};
  // A header without a value (Kafka allows it; this client never sends one) reads as empty bytes; a repeated name keeps its last value.
  for (const header of record.headers) headers[header.key] = header.value ?? EMPTY;
  return { topic, partition, offset: record.offset, timestamp: record.timestamp, key: record.key, value: record.value, headers };
}

const EMPTY = Buffer.alloc(0);
