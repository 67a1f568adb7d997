/**
 * The consumer's offsets: where each newly owned partition starts (the group's committed
 * offset, else the `startAt` position: the log start, the high watermark, or the first record
 * at or after a time), and commits of
 * the next offsets to read on each partition's primary, retried through the one retry
 * helper until they land or the commit timeout passes.
 */
import {
  BROKER_ROUTES,
  isGenerationMismatch,
  isRetriable,
  retry,
  TesseraError,
  type CommitResponse,
  type CommittedOffsetsResponse,
  type ErrorBody,
  type ListOffsetsResponse,
  type RetryOptions,
} from '@tessera/protocol';
import type { Connection } from '../connection/connection.js';
import { needsMetadataRefresh, type MetadataCache, type RoutedPartition } from '../cluster/metadata-cache.js';
import type { PartitionState } from './partition-state.js';
import type { StartAt } from './positions.js';

/**
 * How long a commit keeps retrying retriable errors (each retry after a backoff, and a
 * heartbeat or a metadata refresh when they help): longer than a failover takes (the
 * coordinator's brokerTimeoutMs, 3 s by default, plus the new primary's start).
 */
const COMMIT_TIMEOUT_MS = 15_000;

export interface OffsetsContext {
  group: string;
  topic: string;
  /** Where a partition without a committed offset starts. */
  startAt: StartAt;
  owned: Map<number, PartitionState>;
  connection: Connection;
  metadata: MetadataCache;
  retry: RetryOptions;
  /** The member and generation commits are made as; null while not a member. */
  member(): { memberId: string; generation: number } | null;
  /** Learns the group's current generation (after GENERATION_MISMATCH). */
  heartbeat(): Promise<void>;
  groupByPrimary(partitions: number[]): Promise<Map<string, RoutedPartition[]>>;
  onPartitionError(error: unknown): void;
}

export class Offsets {
  /** The last commit asked for (settled or not, never rejecting): the next one waits for it. */
  private previous: Promise<void> = Promise.resolve();

  constructor(private readonly context: OffsetsContext) {}

  /** Finds the start offset of every owned partition that has none yet; failures are retried next round. */
  async initPositions(): Promise<void> {
    const { owned, topic } = this.context;
    const pending = [...owned.values()].filter((state) => state.fetchOffset === null);
    if (pending.length === 0) return;
    const byPrimary = await this.context.groupByPrimary(pending.map((state) => state.partition));
    await Promise.all(
      [...byPrimary].map(async ([url, partitions]) => {
        /** Partitions without a committed offset that start at a time: one more lookup. */
        const byTime: RoutedPartition[] = [];
        try {
          const epochs = new Map(partitions.map(({ partition, epoch }) => [partition, epoch]));
          const answer = await this.context.connection.broker<CommittedOffsetsResponse>(url, BROKER_ROUTES.committedOffsets, {}, {
            group: this.context.group,
            partitions: partitions.map(({ partition, epoch }) => ({ topic, partition, epoch })),
          });
          this.eachWaiting(answer.partitions, (state, entry) => {
            const { startAt } = this.context;
            let start = entry.offset;
            if (start === null && startAt === 'earliest') start = entry.logStartOffset;
            if (start === null && startAt === 'latest') start = entry.highWatermark;
            if (start !== null) setStart(state, start, entry.offset);
            // Epoch 0 fences nothing: for a partition the broker answered unasked.
            else byTime.push({ partition: entry.partition, epoch: epochs.get(entry.partition) ?? 0 });
          });
          if (byTime.length > 0) await this.startAtTime(url, byTime);
        } catch (error) {
          this.context.onPartitionError(error);
        }
      }),
    );
  }

  /** Starts `partitions` (no committed offset) at the first record at or after the `startAt` time. */
  private async startAtTime(url: string, partitions: RoutedPartition[]): Promise<void> {
    const { topic, startAt } = this.context;
    if (typeof startAt !== 'object') throw new Error('startAtTime: startAt is not a time');
    const answer = await this.context.connection.broker<ListOffsetsResponse>(url, BROKER_ROUTES.listOffsets, {}, {
      partitions: partitions.map(({ partition, epoch }) => ({ topic, partition, epoch, at: startAt })),
    });
    this.eachWaiting(answer.partitions, (state, entry) => setStart(state, entry.offset, null));
  }

  /** Calls `start` for each answered partition still owned and waiting for its start; reports the errors. */
  private eachWaiting<E extends { topic: string; partition: number; error?: ErrorBody['error'] }>(
    entries: E[],
    start: (state: PartitionState, entry: E) => void,
  ): void {
    for (const entry of entries) {
      const state = this.context.owned.get(entry.partition);
      if (state === undefined || state.fetchOffset !== null || entry.topic !== this.context.topic) continue;
      if (entry.error !== undefined) this.context.onPartitionError(TesseraError.fromBody({ error: entry.error }));
      else start(state, entry);
    }
  }

  /**
   * Commits `offsets` (partition → next offset) for the partitions still owned, with the
   * latest generation known. On GENERATION_MISMATCH it heartbeats (to learn the current
   * generation) and tries again; on routing errors it refreshes metadata and tries again.
   *
   * Commits run one at a time, in the order they were asked for. Two at once could reach the
   * primary in the other order (the first one waiting to retry after a generation change while
   * the second goes through), and the older offset would then replace the newer one: a
   * partition revoked at a rebalance would reach its next owner behind what this member had
   * handled, and those records would be delivered again.
   */
  commit(offsets: Map<number, number>): Promise<void> {
    // The positions as they are now: a partition dropped and owned again, or moved by a seek(),
    // before this commit runs is not committed by it.
    const asked = new Map<number, { state: PartitionState; seeks: number }>();
    for (const partition of offsets.keys()) {
      const state = this.context.owned.get(partition);
      if (state !== undefined) asked.set(partition, { state, seeks: state.seeks });
    }
    const run = this.previous.then(() => this.commitNow(offsets, asked));
    this.previous = run.catch(() => undefined);
    return run;
  }

  private async commitNow(offsets: Map<number, number>, asked: Map<number, { state: PartitionState; seeks: number }>): Promise<void> {
    const { owned, topic } = this.context;
    const todo = new Map(offsets);
    /** The partition's state when the position asked for is still its position, else undefined. */
    const current = (partition: number): PartitionState | undefined => {
      const state = owned.get(partition);
      const then = asked.get(partition);
      return state !== undefined && then?.state === state && then.seeks === state.seeks ? state : undefined;
    };
    /** What the last round ran into, for the retry helper's decisions. */
    let mismatch = false;
    let routing = false;
    const round = async (): Promise<void> => {
      for (const [partition, offset] of todo) {
        const state = current(partition);
        if (state === undefined || (state.committedOffset !== null && offset <= state.committedOffset)) todo.delete(partition);
      }
      const member = this.context.member();
      if (todo.size === 0 || member === null) return;
      mismatch = false;
      routing = false;
      let lastError: unknown;
      /** A refusal that trying again cannot change; thrown once every request of the round is answered. */
      let refusal: unknown;
      const byPrimary = await this.context.groupByPrimary([...todo.keys()]);
      if (byPrimary.size === 0) lastError = new TesseraError('PARTITION_OFFLINE', `no primary known for ${topic} partitions ${[...todo.keys()].join(',')}`);
      // Every request runs to its end before the commit settles, so the next commit cannot overtake one of them.
      await Promise.all(
        [...byPrimary].map(async ([url, partitions]) => {
          try {
            const answer = await this.context.connection.broker<CommitResponse>(url, BROKER_ROUTES.commit, {}, {
              group: this.context.group,
              generation: member.generation,
              memberId: member.memberId,
              offsets: partitions.map(({ partition, epoch }) => ({ topic, partition, epoch, offset: todo.get(partition)! })),
            });
            for (const result of answer.results) {
              if (result.topic !== topic || !todo.has(result.partition)) continue;
              if (result.error === undefined) {
                const state = current(result.partition);
                const offset = todo.get(result.partition)!;
                if (state !== undefined) state.committedOffset = Math.max(state.committedOffset ?? 0, offset);
                todo.delete(result.partition);
                continue;
              }
              const error = TesseraError.fromBody({ error: result.error }) ?? new TesseraError('INTERNAL', result.error.message);
              if (error.retriable) lastError = error;
              else {
                refusal ??= error;
                todo.delete(result.partition);
              }
            }
          } catch (error) {
            if (isRetriable(error)) lastError = error;
            else refusal ??= error;
          }
        }),
      );
      if (refusal !== undefined) throw refusal;
      if (todo.size === 0) return;
      mismatch = isGenerationMismatch(lastError);
      routing = needsMetadataRefresh(lastError);
      throw lastError ?? new TesseraError('UNAVAILABLE', `commit of ${topic} partitions ${[...todo.keys()].join(',')} not answered`);
    };
    try {
      await retry(round, {
        ...this.context.retry,
        retries: Infinity,
        deadlineMs: performance.now() + COMMIT_TIMEOUT_MS,
        onRetry: async () => {
          if (mismatch) await this.context.heartbeat();
          if (routing) await this.context.metadata.refresh().catch(() => undefined);
        },
      });
    } catch (error) {
      if (!isRetriable(error)) throw error;
      throw new TesseraError(
        error instanceof TesseraError ? error.code : 'UNAVAILABLE',
        `commit of group ${this.context.group} on ${topic} partitions ${[...todo.keys()].join(',')} failed: ${error instanceof Error ? error.message : 'no answer'}`,
        {},
        { cause: error },
      );
    }
  }
}

/** A partition's position once its start is known (`committed`: the group's offset, null when none). */
export function setStart(state: PartitionState, start: number, committed: number | null): void {
  state.fetchOffset = start;
  state.consumedOffset = start;
  state.returnedOffset = start;
  state.committedOffset = committed;
  state.positionError = null;
}
