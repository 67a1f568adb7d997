/**
 * The primary's view of its secondary's log for one epoch: how far the secondary is known to
 * be (its LEO), and the pushes that move it forward. A push sends either the records the
 * current flush just wrote (when the secondary is exactly at their base offset) or a batch
 * read from the store (catch-up). OFFSET_MISMATCH answers are resolved with the epoch-history
 * divergence: the next push starts there with `truncateTo`.
 */
import { TesseraError, isTesseraError, type ReplicateRequest } from '@tessera/protocol';
import type { Logger } from '@tessera/service';
import type { GroupOffset, PartitionStore, StoredRecord } from '../storage/index.js';
import { divergenceOffset } from './divergence.js';
import type { ClusterPort, ReplicationPort } from './ports.js';

export interface SecondarySyncOptions {
  topic: string;
  partition: number;
  epoch: number;
  secondaryId: number;
  store: PartitionStore;
  cluster: ClusterPort;
  client: ReplicationPort;
  timeoutMs: number;
  logger: Logger;
}

export interface FreshBatch {
  baseOffset: number;
  records: StoredRecord[];
  commits: GroupOffset[];
}

export type PushOutcome = 'appended' | 'mismatch';

/** Consecutive OFFSET_MISMATCH answers tolerated before a push counts as failed. */
const MAX_MISMATCHES_IN_A_ROW = 4;

export class SecondarySync {
  readonly secondaryId: number;
  readonly epoch: number;
  /** The secondary's LEO as last confirmed (or assumed, before the first answer). */
  secondaryLeo: number | undefined;
  private truncateTo: number | undefined;
  private mismatchesInARow = 0;

  constructor(private readonly options: SecondarySyncOptions) {
    this.secondaryId = options.secondaryId;
    this.epoch = options.epoch;
  }

  /**
   * Pushes until the secondary's LEO reaches `targetLeo`. Throws the first failure (network,
   * STALE_EPOCH, too many mismatches); the caller decides about retries and the ISR.
   */
  async pushUntil(targetLeo: number, hw: number, fresh: FreshBatch | undefined, batch: { maxRecords: number; maxBytes: number }): Promise<void> {
    // Before the first answer assume the secondary is where the fresh batch starts; a
    // mismatch answer corrects the assumption at the cost of one round trip.
    if (this.secondaryLeo === undefined) this.secondaryLeo = fresh?.baseOffset ?? targetLeo;
    for (;;) {
      await this.pushOnce(targetLeo, hw, fresh, batch);
      if (this.secondaryLeo === targetLeo && this.truncateTo === undefined) return;
    }
  }

  /** One replicate call. Returns 'mismatch' when the secondary's log was not where we thought. */
  async pushOnce(
    targetLeo: number,
    hw: number,
    fresh: FreshBatch | undefined,
    batch: { maxRecords: number; maxBytes: number },
  ): Promise<PushOutcome> {
    const { store, cluster, topic, partition } = this.options;
    if (this.secondaryLeo === undefined) this.secondaryLeo = targetLeo;
    const baseOffset = this.secondaryLeo;
    const url = cluster.brokerUrl(this.secondaryId);
    if (url === undefined) {
      throw new TesseraError('UNAVAILABLE', `secondary broker ${this.secondaryId} has no known URL`);
    }
    let records: StoredRecord[];
    let commits: GroupOffset[];
    const freshEnd = fresh === undefined ? -1 : fresh.baseOffset + fresh.records.length;
    if (fresh !== undefined && baseOffset >= fresh.baseOffset && baseOffset <= freshEnd && this.truncateTo === undefined) {
      // The records the flush just wrote, from memory, in chunks no larger than a catch-up batch
      // (a flush can be bigger than a request body may be). Usually one chunk: one call.
      records = boundedSlice(fresh.records, baseOffset - fresh.baseOffset, batch);
      commits = fresh.commits;
    } else {
      records = store.readForReplication(baseOffset, { ...batch, endOffset: targetLeo });
      // Catch-up carries every committed offset: commits made while the secondary was away are included.
      commits = store.groupOffsets();
    }
    const request: ReplicateRequest = {
      topic,
      partition,
      epoch: this.epoch,
      primaryId: cluster.brokerId,
      baseOffset,
      // The secondary checks its record before baseOffset has this epoch (Raft's log matching).
      ...(baseOffset > store.logStartOffset ? { prevEpoch: store.epochAt(baseOffset - 1) } : {}),
      ...(this.truncateTo === undefined ? {} : { truncateTo: this.truncateTo }),
      records,
      hw: Math.min(hw, baseOffset + records.length),
      commits,
    };
    try {
      const answer = await this.options.client.replicate(url, request, this.options.timeoutMs);
      const expectedLeo = baseOffset + records.length;
      if (answer.leo !== expectedLeo) {
        // The secondary's log is not what this push implies; forget our view and probe again.
        this.options.logger.warn({ topic, partition, expectedLeo, leo: answer.leo }, 'secondary answered an unexpected LEO');
        this.secondaryLeo = undefined;
        this.countMismatch();
        return 'mismatch';
      }
      this.secondaryLeo = expectedLeo;
      this.truncateTo = undefined;
      this.mismatchesInARow = 0;
      return 'appended';
    } catch (error) {
      if (!isTesseraError(error, 'OFFSET_MISMATCH') || error.details.leo === undefined) throw error;
      this.countMismatch();
      const secondaryLeo = error.details.leo;
      const divergence = divergenceOffset(
        { epochs: store.epochs(), leo: store.leo },
        { epochs: error.details.epochs ?? [], leo: secondaryLeo },
      );
      this.options.logger.info(
        { topic, partition, secondary: this.secondaryId, secondaryLeo, divergence, leo: store.leo },
        'secondary log differs; resending from the divergence point',
      );
      this.secondaryLeo = divergence;
      this.truncateTo = divergence < secondaryLeo ? divergence : undefined;
      return 'mismatch';
    }
  }

  private countMismatch(): void {
    if (++this.mismatchesInARow > MAX_MISMATCHES_IN_A_ROW) {
      this.mismatchesInARow = 0;
      this.secondaryLeo = undefined;
      this.truncateTo = undefined;
      throw new TesseraError('INTERNAL', `secondary ${this.secondaryId} keeps answering with a log we did not expect`);
    }
  }
}

/** `records` from `start`, at most maxRecords and about maxBytes (at least one record). */
function boundedSlice(records: StoredRecord[], start: number, batch: { maxRecords: number; maxBytes: number }): StoredRecord[] {
  let end = start;
  let bytes = 0;
  const limit = Math.min(records.length, start + batch.maxRecords);
  while (end < limit) {
    const record = records[end];
    bytes += record.value.length + (record.key?.length ?? 0) + (record.headers === null ? 0 : JSON.stringify(record.headers).length) + 100;
    if (end > start && bytes > batch.maxBytes) break;
    end++;
  }
  return start === 0 && end === records.length ? records : records.slice(start, end);
}
