// Proves the partition store keeps a gap-free log with its epoch history, reads within limits and
// below an end offset, truncates while fixing the epoch history, and restores everything (HW as
// min(checkpoint, LEO)) after a reopen, using real SQLite files in a fresh temp dir per test.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PartitionStore, deletePartitionFiles, listPartitionFiles, partitionFile, type StoredRecord } from './partition-store.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-store-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function records(from: number, count: number, epoch: number): StoredRecord[] {
  return Array.from({ length: count }, (_, i) => ({
    offset: from + i,
    epoch,
    timestamp: 1_000 + from + i,
    key: i % 2 === 0 ? `k${from + i}` : null,
    value: `value-${from + i}`,
    headers: i % 3 === 0 ? { h: String(from + i) } : null,
  }));
}

describe('PartitionStore', () => {
  it('appends in order, keeps the epoch history and reads back below the end offset', () => {
    const store = PartitionStore.open(partitionFile(dir, 't', 0), 'full');
    expect(store.leo).toBe(0);
    expect(store.lastEpoch).toBeUndefined();
    store.append(records(0, 5, 0));
    store.append(records(5, 5, 2));
    expect(store.leo).toBe(10);
    expect(store.epochs()).toEqual([
      [0, 0],
      [2, 5],
    ]);
    const { records: read } = store.readForFetch(3, { maxRecords: 100, maxBytes: 1 << 20, endOffset: 8 });
    expect(read.map((r) => r.offset)).toEqual([3, 4, 5, 6, 7]);
    expect(read[0]).toEqual({ offset: 3, key: null, value: 'value-3', headers: { h: '3' }, timestamp: 1003 });
    expect(store.readForReplication(8, { maxRecords: 10, maxBytes: 1 << 20, endOffset: 100 })).toEqual(records(5, 5, 2).slice(3));
    store.close();
  });

  it('refuses an append that does not start at the LEO or lowers the epoch, leaving the log unchanged', () => {
    const store = PartitionStore.open(partitionFile(dir, 't', 0), 'normal');
    store.append(records(0, 3, 1));
    expect(() => store.append(records(4, 1, 1))).toThrow(/invariant/);
    expect(() => store.append(records(3, 1, 0))).toThrow(/invariant/);
    // A batch failing halfway rolls back entirely.
    const bad = [...records(3, 2, 1), ...records(6, 1, 1)];
    expect(() => store.append(bad)).toThrow(/invariant/);
    expect(store.leo).toBe(3);
    expect(store.readForReplication(0, { maxRecords: 10, maxBytes: 1 << 20, endOffset: 10 })).toHaveLength(3);
    store.close();
  });

  it('limits reads by records and bytes but always returns at least one record', () => {
    const store = PartitionStore.open(partitionFile(dir, 't', 0), 'full');
    store.append(records(0, 100, 0));
    expect(store.readForFetch(0, { maxRecords: 7, maxBytes: 1 << 20, endOffset: 100 }).records).toHaveLength(7);
    expect(store.readForFetch(0, { maxRecords: 100, maxBytes: 1, endOffset: 100 }).records).toHaveLength(1);
    const some = store.readForFetch(0, { maxRecords: 100, maxBytes: 200, endOffset: 100 }).records.length;
    expect(some).toBeGreaterThan(1);
    expect(some).toBeLessThan(100);
    expect(store.readForFetch(100, { maxRecords: 10, maxBytes: 100, endOffset: 100 }).records).toEqual([]);
    store.close();
  });

  it('truncates records and the epochs that started at or after the cut', () => {
    const store = PartitionStore.open(partitionFile(dir, 't', 0), 'full');
    store.append(records(0, 5, 0));
    store.append(records(5, 5, 1));
    store.append(records(10, 5, 3));
    store.checkpointHw(12);
    store.truncate(7);
    expect(store.leo).toBe(7);
    expect(store.epochs()).toEqual([
      [0, 0],
      [1, 5],
    ]);
    expect(store.hwCheckpoint).toBe(7);
    store.truncate(5);
    expect(store.epochs()).toEqual([[0, 0]]);
    // After truncation the log accepts the primary's records at the new LEO, with a new epoch.
    store.append(records(5, 2, 4));
    expect(store.epochs()).toEqual([
      [0, 0],
      [4, 5],
    ]);
    store.close();
  });

  it('restores LEO, epochs, group offsets and HW across a reopen', () => {
    const file = partitionFile(dir, 'topic.a', 3);
    const store = PartitionStore.open(file, 'full');
    store.append(records(0, 10, 0), [{ group: 'g1', offset: 4, generation: 2 }], 0);
    store.append(records(10, 5, 1), [{ group: 'g1', offset: 9, generation: 3 }, { group: 'g2', offset: 1, generation: 0 }], 10);
    store.checkpointHw(15);
    store.close();

    const reopened = PartitionStore.open(file, 'full');
    expect(reopened.leo).toBe(15);
    expect(reopened.hwCheckpoint).toBe(15);
    expect(reopened.epochs()).toEqual([
      [0, 0],
      [1, 10],
    ]);
    expect(reopened.groupOffset('g1')).toEqual({ group: 'g1', offset: 9, generation: 3 });
    expect(reopened.groupOffsets().map((g) => g.group)).toEqual(['g1', 'g2']);
    expect(reopened.groupOffset('none')).toBeUndefined();
    reopened.close();
    expect(listPartitionFiles(dir)).toEqual([{ topic: 'topic.a', partition: 3, file }]);
    deletePartitionFiles(file);
    expect(listPartitionFiles(dir)).toEqual([]);
  });

  it('restores the HW as min(checkpoint, LEO) when the checkpoint is ahead of the log', () => {
    const file = partitionFile(dir, 't', 0);
    const store = PartitionStore.open(file, 'full');
    store.append(records(0, 10, 0), [], 10);
    store.close();
    // Simulate a lost tail: remove records behind the store's back.
    const raw = new Database(file);
    raw.prepare('DELETE FROM records WHERE offset >= 6').run();
    raw.close();
    const reopened = PartitionStore.open(file, 'full');
    expect(reopened.leo).toBe(6);
    expect(reopened.hwCheckpoint).toBe(6);
    reopened.close();
  });
});
