/**
 * Where a consumer starts and what it does when its position is outside the log: the pure
 * rules, shared by the group consumer and the CLI's consumer without a group.
 */
import { TesseraError, offsetQuery, parseOrThrow, type OffsetQuery } from '@tessera/protocol';

/**
 * Where a partition the group never committed on starts: the oldest retained record
 * (`earliest`), the high watermark at assignment (`latest`: only records produced from then
 * on), or the first record whose timestamp is at or after `timestamp` (epoch ms).
 */
export type StartAt = OffsetQuery;

/**
 * What the consumer does when its offset is below the log start (the records there were
 * deleted by retention or a purge): go on from the oldest record left (`earliest`, the
 * default, like Kafka's `auto.offset.reset=earliest`: nothing still readable is skipped), jump
 * to the high watermark (`latest`), or stop with `OFFSET_OUT_OF_RANGE` (`error`: `poll()`
 * throws it, `subscribe()` rejects with it) until the application calls `seek()`.
 */
export type OffsetReset = 'earliest' | 'latest' | 'error';

const OFFSET_RESETS: readonly OffsetReset[] = ['earliest', 'latest', 'error'];

/** The start position from the options, `fromBeginning` kept as the older spelling of `startAt: 'earliest'`. */
export function startPosition(options: { startAt?: StartAt; fromBeginning?: boolean }): StartAt {
  if (options.startAt === undefined) return options.fromBeginning === true ? 'earliest' : 'latest';
  const startAt = parseOrThrow(offsetQuery, options.startAt, 'startAt');
  if (options.fromBeginning === true && startAt !== 'earliest') {
    throw new TesseraError('INVALID_REQUEST', 'fromBeginning: true contradicts startAt; give one of them');
  }
  return startAt;
}

export function offsetResetPolicy(value: OffsetReset | undefined): OffsetReset {
  if (value === undefined) return 'earliest';
  if (!OFFSET_RESETS.includes(value)) {
    throw new TesseraError('INVALID_REQUEST', `offsetReset must be one of ${OFFSET_RESETS.join(', ')}, got ${String(value)}`);
  }
  return value;
}

/**
 * The next offset to fetch after the broker answered OFFSET_OUT_OF_RANGE for `requested`, or
 * undefined when the policy is to stop. Below the log start the policy decides; beyond the
 * end (a truncated log, or a new primary's HW that trails for a moment) the consumer goes back
 * to the high watermark whatever the policy, since nothing that exists is skipped that way.
 */
export function outOfRangeOffset(policy: OffsetReset, requested: number, logStartOffset: number, highWatermark: number): number | undefined {
  if (requested > highWatermark && requested >= logStartOffset) return highWatermark;
  // Below the log start (or an answer that contradicts itself, which is treated the same way).
  if (policy === 'earliest') return logStartOffset;
  if (policy === 'latest') return highWatermark;
  return undefined;
}

/** A seek target: a non-negative safe integer. */
export function checkedOffset(offset: number): number {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new TesseraError('INVALID_REQUEST', `offset must be a non-negative integer, got ${offset}`);
  return offset;
}

/** An integer option in [min, max], or INVALID_REQUEST naming it. */
export function checkedInteger(name: string, value: number, min: number, max: number = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new TesseraError('INVALID_REQUEST', `${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
  return value;
}
