/**
 * Where two replicas' logs stop agreeing, computed from their epoch histories alone.
 *
 * Only one primary writes in an epoch, and it writes each offset once, so two records with
 * the same epoch at the same offset are identical. The logs therefore agree exactly up to
 * the first offset where the epoch that wrote it differs (or where one log ends).
 */

/** `[epoch, startOffset]` pairs sorted by epoch; an epoch covers offsets up to the next entry's start. */
export type EpochHistory = ReadonlyArray<readonly [epoch: number, startOffset: number]>;

export interface LogShape {
  epochs: EpochHistory;
  /** Log end offset: the history describes offsets below it. */
  leo: number;
}

/** The epoch that wrote `offset`, or undefined when the history has no entry at or below it. */
export function epochAt(history: EpochHistory, offset: number): number | undefined {
  let found: number | undefined;
  for (const [epoch, start] of history) {
    if (start > offset) break;
    found = epoch;
  }
  return found;
}

/** The epoch of the record before `leo` by `history` (undefined for an empty log or history). */
export function lastEpoch(history: EpochHistory, leo: number): number | undefined {
  return leo > 0 ? epochAt(history, leo - 1) : undefined;
}

/**
 * The first offset at which `secondary` differs from `primary`: the secondary must truncate to
 * it and be sent the primary's records from there. Never more than either LEO.
 *
 * Only offsets both histories describe are compared. A log reset past its end (it was behind
 * the other's log start, see `resetTo`) has no history below the reset point and holds no
 * records there: nothing below it can differ, and nothing there can be sent any more.
 */
export function divergenceOffset(primary: LogShape, secondary: LogShape): number {
  const limit = Math.min(primary.leo, secondary.leo);
  const from = Math.max(primary.epochs[0]?.[1] ?? 0, secondary.epochs[0]?.[1] ?? 0);
  // The epoch at an offset can only change at a history boundary of either log, so checking
  // the boundaries (and the first offset both describe) in order finds the first disagreement.
  const boundaries = new Set<number>([from]);
  for (const [, start] of primary.epochs) boundaries.add(start);
  for (const [, start] of secondary.epochs) boundaries.add(start);
  const sorted = [...boundaries].filter((offset) => offset >= from && offset < limit).sort((a, b) => a - b);
  for (const offset of sorted) {
    if (epochAt(primary.epochs, offset) !== epochAt(secondary.epochs, offset)) return offset;
  }
  return limit;
}
