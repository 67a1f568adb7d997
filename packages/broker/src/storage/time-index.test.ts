// Proves the time lookup: the first batch in offset order whose max timestamp is at or after a
// time, within [from, end), when producers' clocks do not grow with offsets; the first record at
// or after it when the log start cuts a batch; and that a group's deletion mark reads as nothing
// committed. Real SQLite in a temp dir.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DELETED_GROUP_OFFSET, encodeRecordBatch } from '@tessera/protocol';
import { recordAtTime } from '../positions/list-offsets.js';
import { BrokerStore, storedBatch, type StoredBatch } from './index.js';

let dir: string;
let store: BrokerStore;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-time-'));
  store = BrokerStore.open(dir, 'full');
});
afterEach(async () => {
  if (store.isOpen) await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** One batch from `base` with one record per timestamp. */
function batch(base: number, timestamps: number[]): StoredBatch {
  const records = timestamps.map((timestamp, i) => ({ key: null, value: Buffer.from(`v${base + i}`), headers: [], timestamp }));
  return storedBatch(encodeRecordBatch(records, { baseOffset: base, partitionLeaderEpoch: 0 }));
}

describe('PartitionLog.firstBatchAtTime', () => {
  it('finds the first batch in offset order holding a record at or after the time', async () => {
    const log = store.log('t', 0);
    // Clocks disagree: the second batch is older than the first.
    await log.append([batch(0, [100, 300]), batch(2, [50, 60]), batch(4, [500, 400]), batch(6, [700])]);
    expect(log.firstBatchAtTime(0, 0, 7)?.baseOffset).toBe(0);
    expect(log.firstBatchAtTime(300, 0, 7)?.baseOffset).toBe(0);
    expect(log.firstBatchAtTime(301, 0, 7)?.baseOffset).toBe(4);
    expect(log.firstBatchAtTime(450, 0, 7)?.baseOffset).toBe(4);
    expect(log.firstBatchAtTime(600, 0, 7)?.baseOffset).toBe(6);
    expect(log.firstBatchAtTime(800, 0, 7)).toBeUndefined();
    // Bounded by [from, end): from inside a batch, and an end (the HW) below the last batch.
    expect(log.firstBatchAtTime(0, 3, 7)?.baseOffset).toBe(2);
    expect(log.firstBatchAtTime(600, 0, 6)).toBeUndefined();
    expect(log.firstBatchAtTime(0, 7, 7)).toBeUndefined();
  });

  it('finds the first record at or after the time past a batch the log start cut', async () => {
    const log = store.log('t', 0);
    // Offsets 0..2 at 500, 100, 200; then 3..4 at 300, 600.
    await log.append([batch(0, [500, 100, 200]), batch(3, [300, 600])]);
    await log.advanceLogStart(1, 5);
    // The first batch's max timestamp (500) qualifies, but that record lies below the log start.
    expect(recordAtTime(log, 250, 1, 5)).toEqual({ offset: 3, timestamp: 300 });
    expect(recordAtTime(log, 150, 1, 5)).toEqual({ offset: 2, timestamp: 200 });
    expect(recordAtTime(log, 450, 1, 5)).toEqual({ offset: 4, timestamp: 600 });
    // Nothing at or after the time below the end (the HW).
    expect(recordAtTime(log, 450, 1, 4)).toBeUndefined();
    expect(recordAtTime(log, 700, 1, 5)).toBeUndefined();
  });

  it('reads a deletion mark as nothing committed, keeping the row for replication', async () => {
    const log = store.log('t', 0);
    await log.append([], [{ group: 'g', offset: 5, generation: 2 }]);
    expect(log.groupOffset('g')?.offset).toBe(5);
    await log.append([], [{ group: 'g', offset: DELETED_GROUP_OFFSET, generation: 3 }]);
    expect(log.groupOffset('g')).toBeUndefined();
    expect(log.groupOffsets()).toEqual([{ group: 'g', offset: DELETED_GROUP_OFFSET, generation: 3 }]);
  });
});
