/**
 * Positions in a partition's log: the offset lookup (earliest, latest, first offset at or after
 * a time), the coordinator's group offset administration (reset, delete), and the pure rules
 * they share (clamping a wanted offset into the log, the target of each reset mode).
 */
import { z } from 'zod';
import { MAX_PARTITIONS } from './limits.js';
import { epoch, groupId, offset, partitionAtEpoch, partitionNumber, topicName } from './schemas.js';
import type { ErrorBody } from './errors.js';

/** A record timestamp in epoch milliseconds (RecordBatch timestamps are int64 ms). */
export const timestampMs = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/**
 * Where to look in a partition: `earliest` is the log start offset, `latest` the high watermark
 * (the offset the next record a consumer can read will get), `{timestamp}` the first offset
 * whose record timestamp is at or after it (the high watermark when there is none yet).
 */
export const offsetQuery = z.union([z.literal('earliest'), z.literal('latest'), z.object({ timestamp: timestampMs }).strict()]);
export type OffsetQuery = z.infer<typeof offsetQuery>;

/** `POST /list-offsets` on the partitions' primary. */
export const listOffsetsRequest = z
  .object({
    partitions: z
      .array(partitionAtEpoch.extend({ at: offsetQuery }).strict())
      .min(1)
      .max(MAX_PARTITIONS),
  })
  .strict();
export type ListOffsetsRequest = z.infer<typeof listOffsetsRequest>;

/** The answer of `POST /list-offsets`, per partition. */
export interface ListOffsetsResponse {
  partitions: Array<{
    topic: string;
    partition: number;
    /** The offset found (see `offsetQuery`). */
    offset: number;
    /** For a time lookup, the timestamp of the record at `offset`; null otherwise or when no record is that recent. */
    timestamp: number | null;
    logStartOffset: number;
    highWatermark: number;
    error?: ErrorBody['error'];
  }>;
}

/**
 * A committed offset meaning "no offset": what deleting a group stores on a partition. It
 * replicates and survives catch-up like any commit; every read treats it as nothing committed.
 */
export const DELETED_GROUP_OFFSET = -1;

/**
 * `POST /internal/group-offsets` on a partition's primary, from the coordinator only: store the
 * group's offsets (or `DELETED_GROUP_OFFSET`) at `generation`, which the coordinator has just
 * made the group's newest, so any commit of an older generation is refused from then on. Each
 * entry names the partition's epoch in the coordinator's map, as a member's commit does.
 */
export const adminGroupOffsetsRequest = z
  .object({
    group: groupId,
    generation: epoch,
    offsets: z
      .array(partitionAtEpoch.extend({ offset: z.union([offset, z.literal(DELETED_GROUP_OFFSET)]) }).strict())
      .min(1)
      .max(MAX_PARTITIONS),
  })
  .strict();
export type AdminGroupOffsetsRequest = z.infer<typeof adminGroupOffsetsRequest>;

/** The reset modes of `tessera groups reset-offsets` (kafka-consumer-groups' `--to-*` and `--shift-by`). */
export const resetTarget = z.discriminatedUnion('to', [
  z.object({ to: z.literal('earliest') }).strict(),
  z.object({ to: z.literal('latest') }).strict(),
  z.object({ to: z.literal('offset'), offset }).strict(),
  z.object({ to: z.literal('timestamp'), timestamp: timestampMs }).strict(),
  z
    .object({ to: z.literal('shift'), by: z.number().int().min(-Number.MAX_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER) })
    .strict(),
]);
export type ResetTarget = z.infer<typeof resetTarget>;

/** `POST /groups/:group/reset-offsets`: a dry run unless `execute` is true. */
export const resetOffsetsRequest = z
  .object({
    topic: topicName,
    /** Only these partitions (every partition of the topic when absent). */
    partitions: z.array(partitionNumber).min(1).max(MAX_PARTITIONS).optional(),
    target: resetTarget,
    execute: z.boolean(),
  })
  .strict();
export type ResetOffsetsRequest = z.infer<typeof resetOffsetsRequest>;

export interface ResetOffsetsResponse {
  group: string;
  topic: string;
  /** False for a dry run: nothing was stored. */
  executed: boolean;
  /** The generation the new offsets were stored with (null for a dry run). */
  generation: number | null;
  partitions: Array<{
    partition: number;
    /** The group's committed offset before the reset; null when it had none. */
    current: number | null;
    /** The offset the group's next member starts from. */
    target: number;
    logStartOffset: number;
    highWatermark: number;
  }>;
}

/** Clamps a wanted offset into what a consumer can read: [log start, high watermark]. */
export function clampOffset(wanted: number, logStartOffset: number, highWatermark: number): number {
  return Math.min(Math.max(wanted, logStartOffset), highWatermark);
}

/**
 * The new offset of one partition for a reset, clamped into [log start, HW]. `atTimestamp` is
 * the partition's answer to the time lookup (needed for `timestamp` only); a shift of a
 * partition without a committed offset starts from the log start, like a group that never
 * committed and reads from the beginning.
 */
export function resetOffsetFor(
  target: ResetTarget,
  partition: { current: number | null; logStartOffset: number; highWatermark: number; atTimestamp?: number },
): number {
  const { current, logStartOffset, highWatermark } = partition;
  let wanted: number;
  switch (target.to) {
    case 'earliest':
      wanted = logStartOffset;
      break;
    case 'latest':
      wanted = highWatermark;
      break;
    case 'offset':
      wanted = target.offset;
      break;
    case 'timestamp':
      if (partition.atTimestamp === undefined) throw new Error('resetOffsetFor: a timestamp reset needs the time lookup');
      wanted = partition.atTimestamp;
      break;
    case 'shift':
      wanted = (current ?? logStartOffset) + target.by;
      break;
  }
  return clampOffset(wanted, logStartOffset, highWatermark);
}
