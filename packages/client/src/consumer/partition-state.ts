/** The consumer's state of one partition it owns, shared by its fetcher, offsets and runner. */
import type { ConsumedRecord } from '../records.js';

export interface PartitionState {
  partition: number;
  /** Next offset to fetch; null until the start offset is known. */
  fetchOffset: number | null;
  /** Fetched records not yet handed out; a partition is fetched again only when this is empty. */
  buffer: ConsumedRecord[];
  /**
   * Next offset after the last HANDLED record: one the subscribe handler finished, one
   * committed explicitly, or one returned by a `poll()` before the latest (calling `poll()`
   * again says the previous records are done). What close() and a revocation commit.
   */
  consumedOffset: number | null;
  /** Next offset after the last record `poll()` returned: what a plain `commit()` stores. */
  returnedOffset: number | null;
  /** The group's committed offset as far as this member knows (null after a `seek()`: the next commit stores the new position, even a lower one). */
  committedOffset: number | null;
  /** How many times `seek()` moved this partition: a commit asked for before the latest seek is stale, and dropped. */
  seeks: number;
  /**
   * Set when the position fell below the log start and the reset policy is `error`: the
   * partition is not fetched, and `poll()` throws this, until `seek()` moves the position.
   */
  positionError: Error | null;
}

export function newPartitionState(partition: number): PartitionState {
  return { partition, fetchOffset: null, buffer: [], consumedOffset: null, returnedOffset: null, committedOffset: null, seeks: 0, positionError: null };
}

export function maxOffset(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.max(a, b);
}

/**
 * Takes up to `maxRecords` buffered records, starting with the partition at `start` (rotated by
 * the caller every call, so no partition starves). With `markConsumed`, each partition's
 * returned offset moves past what was taken.
 */
export function takeBuffered(owned: Map<number, PartitionState>, start: number, maxRecords: number, markConsumed: boolean): ConsumedRecord[] {
  const states = [...owned.values()];
  const out: ConsumedRecord[] = [];
  for (let i = 0; i < states.length && out.length < maxRecords; i++) {
    const state = states[(start + i) % states.length]!;
    if (state.buffer.length === 0) continue;
    const taken = state.buffer.splice(0, maxRecords - out.length);
    for (const record of taken) out.push(record);
    if (markConsumed) state.returnedOffset = taken[taken.length - 1]!.offset + 1;
  }
  return out;
}

/** The first position error of a partition whose buffered records are all handed out (see `positionError`). */
export function positionErrorOf(owned: Map<number, PartitionState>): Error | undefined {
  for (const state of owned.values()) if (state.positionError !== null && state.buffer.length === 0) return state.positionError;
  return undefined;
}
