/**
 * Broker-to-broker replication: one exchange between two brokers carries the pushes of many
 * partitions (`POST /internal/replicate`, a frame). Each push is what a primary sends one
 * secondary for one partition: its batches from `baseOffset` (RecordBatch v2 bytes as stored,
 * in the frame's tail), the primary's high watermark and committed group offsets. The
 * secondary answers every push on its own, in request order: its new LEO, or an error
 * (STALE_EPOCH, OFFSET_MISMATCH with its LEO and epoch history, PARTITION_NOT_FOUND...).
 */
import { z } from 'zod';
import type { ErrorBody } from './errors.js';
import { MAX_PARTITIONS } from './limits.js';
import { DELETED_GROUP_OFFSET } from './positions.js';
import { epoch, groupId, offset, partitionNumber, topicName } from './schemas.js';

const brokerId = z.number().int().positive().max(1_000_000);
const pushCounter = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** A committed offset, or the mark a group delete leaves (DELETED_GROUP_OFFSET). */
export const pushedCommit = z.object({ group: groupId, offset: z.union([offset, z.literal(DELETED_GROUP_OFFSET)]), generation: epoch }).strict();

/**
 * One partition's push. The secondary appends only when `epoch` is not older than the one it
 * knows and `baseOffset` equals its log end offset; otherwise it answers OFFSET_MISMATCH with
 * its LEO and epoch history, and the primary resends from the point where the two histories
 * diverge, with `truncateTo` set to that point.
 */
export const partitionPush = z
  .object({
    topic: topicName,
    partition: partitionNumber,
    epoch,
    /** The sending primary. */
    primaryId: brokerId,
    baseOffset: offset,
    /**
     * Epoch of the primary's record at `baseOffset - 1` (absent when `baseOffset` is the log
     * start). The secondary answers OFFSET_MISMATCH unless its own record there has this epoch,
     * so two logs of equal length that diverged are never taken for in sync.
     */
    prevEpoch: epoch.optional(),
    /** The secondary first deletes every record at or above this offset. */
    truncateTo: offset.optional(),
    /**
     * With `truncateTo`: the end of the secondary's log as the OFFSET_MISMATCH answer this
     * truncation follows showed it (its LEO, and the epoch of its last record by the epoch
     * history it sent). The secondary truncates only while its log still ends so, and otherwise
     * answers OFFSET_MISMATCH again: a truncating push held up on the way (its exchange waited,
     * or a retry overtook it) must not cut records that later pushes appended and the primary
     * already counts as replicated. Absent from older primaries.
     */
    truncateSeen: z.object({ leo: offset, epoch: epoch.optional() }).strict().optional(),
    /**
     * The push's place among the pushes of the primary's replica: `run` is drawn when that
     * replica is created (a restarted primary draws another), `seq` grows with every push it
     * sends, to any follower. A follower refuses a push of the same primary, epoch and run whose
     * `seq` is not above the last one it took: a push held up on the way (the primary stopped
     * waiting for it and sent the next one, perhaps over another connection) must not set the
     * follower's HW or group offsets back. Absent from older primaries.
     */
    order: z.object({ run: pushCounter, seq: pushCounter }).strict().optional(),
    /** The primary's high watermark, so the secondary can report and restore it. */
    hw: offset,
    /**
     * The primary's log start (retention and purges move it; never above `hw`). The secondary
     * takes it, so both replicas agree; when its whole log lies below it, the secondary's log
     * becomes empty at this offset and `baseOffset` equals it. Absent from older primaries.
     */
    logStartOffset: offset.optional(),
    /** Committed group offsets changed since the last push (every one on catch-up). */
    commits: z.array(pushedCommit).max(100_000).default([]),
    /** Bytes of this push's batches in the frame's tail. */
    bytes: z.number().int().nonnegative(),
  })
  .strict();
export type PartitionPush = z.input<typeof partitionPush>;

/** The head of a replication exchange; the tail holds each push's batches in order. */
export const replicateExchangeHead = z
  .object({ from: brokerId, pushes: z.array(partitionPush).min(1).max(4 * MAX_PARTITIONS) })
  .strict();
export type ReplicateExchangeHead = z.input<typeof replicateExchangeHead>;

/** The answer to one push: the secondary's LEO (and epoch) after it, or why it was refused. */
export type PushAnswer = { leo: number; epoch: number } | { error: ErrorBody['error'] };

/** A push may carry `truncateSeen`. */
export const TRUNCATE_SEEN_FEATURE = 'truncate-seen';
/** A push may carry `order`. */
export const PUSH_ORDER_FEATURE = 'push-order';
/** What a follower of this release takes in a push beyond the first release of the exchange. */
export const REPLICATE_FEATURES: readonly string[] = [TRUNCATE_SEEN_FEATURE, PUSH_ORDER_FEATURE];

/**
 * `POST /internal/replicate` (and the replication stream): one answer per push, in request
 * order, and the push fields this follower takes beyond the first release of the exchange
 * (REPLICATE_FEATURES). A follower refuses a head with a field it does not know, so a leader
 * sends such a field only to a follower whose last answer named it; answers of older followers
 * name none.
 */
export interface ReplicateExchangeResponse {
  answers: PushAnswer[];
  features?: string[];
}
