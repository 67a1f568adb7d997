/**
 * The primary's view of one follower's log for one epoch: how far the follower is known to
 * be (its LEO), and the pushes that move it forward. A push sends either the batches the
 * current flush just wrote (when the follower is at one of their boundaries) or batches read
 * from the store (catch-up). OFFSET_MISMATCH answers are resolved with the epoch-history
 * divergence: the next push starts there with `truncateTo`.
 */
import { TesseraError, isTesseraError } from '@tessera/protocol';
import type { Logger } from '@tessera/service';
import { batchBytes, cutBatch, type GroupOffset, type PartitionLog, type StoredBatch } from '../../storage/index.js';
import { divergenceOffset, lastEpoch } from '../divergence.js';
import type { ClusterPort, PushHead, ReplicationPort } from '../ports.js';

export interface SecondarySyncOptions {
  topic: string;
  partition: number;
  epoch: number;
  secondaryId: number;
  log: PartitionLog;
  cluster: ClusterPort;
  client: ReplicationPort;
  timeoutMs: number;
  logger: Logger;
  /** The order of the next push of this partition (PartitionPush.order), counted across this replica's syncs. */
  nextOrder: () => { run: number; seq: number };
}

/** The batches one flush just wrote, still in memory. */
export interface FreshBatches {
  baseOffset: number;
  batches: StoredBatch[];
  commits: GroupOffset[];
}

export type PushOutcome = 'appended' | 'mismatch';

/** Consecutive OFFSET_MISMATCH answers tolerated before a push counts as failed. */
const MAX_MISMATCHES_IN_A_ROW = 4;

export class SecondarySync {
  readonly secondaryId: number;
  readonly epoch: number;
  /** The follower's LEO as last confirmed (or assumed, before the first answer). */
  secondaryLeo: number | undefined;
  /** True when secondaryLeo comes from the follower's answer to the last push, not an assumption. */
  confirmed = false;
  /**
   * Set after a mismatch that needs the follower's log cut: the next push truncates it `to` this
   * offset, if it still ends where it was `seen` ending when it answered (PartitionPush.truncateSeen).
   */
  private truncation: { to: number; seen: { leo: number; epoch?: number } } | undefined;
  private mismatchesInARow = 0;

  constructor(private readonly options: SecondarySyncOptions) {
    this.secondaryId = options.secondaryId;
    this.epoch = options.epoch;
  }

  /**
   * Pushes until the follower's LEO reaches `targetLeo` (or passes it: a catch-up push may have
   * taken it beyond a flush that was still waiting for the lock). Throws the first failure
   * (network, STALE_EPOCH, too many mismatches); the caller decides about retries and the ISR.
   */
  async pushUntil(targetLeo: number, hw: number, fresh: FreshBatches | undefined, maxBytes: number): Promise<void> {
    // Before the first answer assume the follower is where the fresh batches start; a
    // mismatch answer corrects the assumption at the cost of one round trip.
    if (this.secondaryLeo === undefined) this.secondaryLeo = fresh?.baseOffset ?? targetLeo;
    for (;;) {
      await this.pushOnce(targetLeo, hw, fresh, maxBytes);
      if (this.secondaryLeo !== undefined && this.secondaryLeo >= targetLeo && this.truncation === undefined) return;
    }
  }

  /** True when the follower is confirmed to end exactly at `offset`. */
  confirmedAt(offset: number): boolean {
    return this.confirmed && this.secondaryLeo === offset;
  }

  /** One push. Returns 'mismatch' when the follower's log was not where we thought. */
  async pushOnce(targetLeo: number, hw: number, fresh: FreshBatches | undefined, maxBytes: number): Promise<PushOutcome> {
    const { log, cluster, topic, partition } = this.options;
    if (this.secondaryLeo === undefined) this.secondaryLeo = targetLeo;
    // Nothing below the log start can be sent any more (retention or a purge deleted it): a
    // follower behind it, or one to truncate below it, starts again at the log start.
    const logStartOffset = log.logStartOffset;
    if (this.secondaryLeo < logStartOffset) {
      this.secondaryLeo = logStartOffset;
      if (this.truncation !== undefined) this.truncation = { ...this.truncation, to: logStartOffset };
    }
    const baseOffset = this.secondaryLeo;
    const url = cluster.brokerUrl(this.secondaryId);
    if (url === undefined) {
      throw new TesseraError('UNAVAILABLE', `broker ${this.secondaryId} has no known URL`);
    }
    let batches = this.truncation === undefined ? freshFrom(fresh, baseOffset, maxBytes) : undefined;
    let commits: GroupOffset[];
    if (batches !== undefined) {
      commits = fresh!.commits;
    } else {
      batches = log.readBatches(baseOffset, targetLeo, maxBytes);
      // The follower may have stopped inside a batch (a log cut by truncation): send the rest of it.
      if (batches.length > 0 && batches[0].baseOffset < baseOffset) {
        const rest = cutBatch(batches[0], baseOffset, Number.MAX_SAFE_INTEGER);
        batches = rest === undefined ? batches.slice(1) : [rest, ...batches.slice(1)];
      }
      // Catch-up carries every committed offset: commits made while the follower was away are included.
      commits = log.groupOffsets();
    }
    const end = batches.length === 0 ? baseOffset : batches[batches.length - 1].lastOffset + 1;
    const prevEpoch = baseOffset > log.logStartOffset ? log.epochAt(baseOffset - 1) : undefined;
    const head: PushHead = {
      topic,
      partition,
      epoch: this.epoch,
      primaryId: cluster.brokerId,
      baseOffset,
      // The follower checks its record before baseOffset has this epoch (Raft's log matching).
      ...(prevEpoch === undefined ? {} : { prevEpoch }),
      ...(this.truncation === undefined ? {} : { truncateTo: this.truncation.to, truncateSeen: this.truncation.seen }),
      hw: Math.min(hw, end),
      logStartOffset,
      commits,
      order: this.options.nextOrder(),
    };
    try {
      const answer = await this.options.client.push(
        url,
        head,
        batches.map((batch) => batch.bytes),
        this.options.timeoutMs,
      );
      if (answer.leo !== end) {
        // The follower's log is not what this push implies; forget our view and probe again.
        this.options.logger.warn({ topic, partition, expectedLeo: end, leo: answer.leo }, 'follower answered an unexpected LEO');
        this.secondaryLeo = undefined;
        this.confirmed = false;
        this.countMismatch();
        return 'mismatch';
      }
      this.secondaryLeo = end;
      this.confirmed = true;
      this.truncation = undefined;
      this.mismatchesInARow = 0;
      return 'appended';
    } catch (error) {
      // Without an answer the push may or may not have been applied: the position is an assumption again.
      this.confirmed = false;
      if (!isTesseraError(error, 'OFFSET_MISMATCH') || error.details.leo === undefined) throw error;
      this.countMismatch();
      const secondaryLeo = error.details.leo;
      const divergence = divergenceOffset({ epochs: log.epochs(), leo: log.leo }, { epochs: error.details.epochs ?? [], leo: secondaryLeo });
      this.options.logger.info(
        { topic, partition, follower: this.secondaryId, secondaryLeo, divergence, leo: log.leo },
        'follower log differs; resending from the divergence point',
      );
      this.secondaryLeo = divergence;
      const epoch = lastEpoch(error.details.epochs ?? [], secondaryLeo);
      const seen = epoch === undefined ? { leo: secondaryLeo } : { leo: secondaryLeo, epoch };
      this.truncation = divergence < secondaryLeo ? { to: divergence, seen } : undefined;
      return 'mismatch';
    }
  }

  private countMismatch(): void {
    if (++this.mismatchesInARow > MAX_MISMATCHES_IN_A_ROW) {
      this.mismatchesInARow = 0;
      this.secondaryLeo = undefined;
      this.truncation = undefined;
      throw new TesseraError('INTERNAL', `broker ${this.secondaryId} keeps answering with a log we did not expect`);
    }
  }
}

/**
 * The fresh batches from `offset` when it is one of their boundaries, about maxBytes of them
 * (at least one); undefined when `offset` is not among them (then the store is read).
 */
function freshFrom(fresh: FreshBatches | undefined, offset: number, maxBytes: number): StoredBatch[] | undefined {
  if (fresh === undefined) return undefined;
  const end = fresh.batches.length === 0 ? fresh.baseOffset : fresh.batches[fresh.batches.length - 1].lastOffset + 1;
  if (offset === end) return [];
  const start = fresh.batches.findIndex((batch) => batch.baseOffset === offset);
  if (start < 0) return undefined;
  let bytes = 0;
  let stop = start;
  while (stop < fresh.batches.length) {
    const size = batchBytes(fresh.batches[stop]);
    if (stop > start && bytes + size > maxBytes) break;
    bytes += size;
    stop++;
  }
  return start === 0 && stop === fresh.batches.length ? fresh.batches : fresh.batches.slice(start, stop);
}
