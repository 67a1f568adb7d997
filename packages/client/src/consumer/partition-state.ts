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
  /** The group's committed offset as far as this member knows. */
  committedOffset: number | null;
}

export function newPartitionState(partition: number): PartitionState {
  return { partition, fetchOffset: null, buffer: [], consumedOffset: null, returnedOffset: null, committedOffset: null };
}

export function maxOffset(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.max(a, b);
}
