// Proves the broker's one database keeps gap-free batch logs with their epoch history for many
// partitions, writes every partition's pending writes in one group commit, reads whole batches
// (from the one holding an offset, bounded but at least one), truncates inside a batch by cutting
// it, and restores everything (HW as min(checkpoint, LEO)) after a reopen. Real SQLite in a temp dir.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeRecordBatch, encodeRecordBatch, InvariantError } from '@tessera/protocol';
import { BrokerStore, storedBatch, type StoredBatch } from './index.js';

let dir: string;
let store: BrokerStore;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-store-'));
  store = BrokerStore.open(dir, 'full');
});
afterEach(async () => {
  if (store.isOpen) await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A batch of `count` records from `base`, written in `epoch`, values `v<offset>`. */
function batch(base: number, count: number, epoch: number): StoredBatch {
  const records = Array.from({ length: count }, (_, i) => ({
    key: Buffer.from(`k${base + i}`),
    value: Buffer.from(`v${base + i}`),
    headers: [{ key: 'h', value: Buffer.from([0, 255, base + i]) }],
    timestamp: 1_000 + base + i,
  }));
  return storedBatch(encodeRecordBatch(records, { baseOffset: base, partitionLeaderEpoch: epoch }));
}

function values(batches: StoredBatch[]): string[] {
  return batches.flatMap((b) => decodeRecordBatch(b.bytes).records.map((r) => `${r.offset}:${r.value?.toString()}`));
}

describe('BrokerStore', () => {
  it('commits the pending writes of every partition in one transaction', async () => {
    const commits: number[] = [];
    store.onCommit = (writes) => commits.push(writes);
    const logs = Array.from({ length: 20 }, (_, p) => store.log('t', p));
    await Promise.all(logs.map((log, p) => log.append([batch(0, 3, 1)], [{ group: 'g', offset: p, generation: 1 }], 3)));
    expect(commits).toEqual([20]);
    for (const [p, log] of logs.entries()) {
      expect(log.leo).toBe(3);
      expect(log.groupOffset('g')).toEqual({ group: 'g', offset: p, generation: 1 });
    }
    expect(store.partitions()).toHaveLength(20);
  });

  it('keeps the epoch history, reads whole batches from the one holding an offset, and bounds reads', async () => {
    const log = store.log('t', 0);
    await log.append([batch(0, 5, 0), batch(5, 5, 2)]);
    await log.append([batch(10, 2, 2), batch(12, 3, 4)]);
    expect(log.leo).toBe(15);
    expect(log.epochs()).toEqual([
      [0, 0],
      [2, 5],
      [4, 12],
    ]);
    expect(log.epochAt(4)).toBe(0);
    expect(log.epochAt(11)).toBe(2);
    expect(log.epochAt(15)).toBeUndefined();
    // From inside a batch: that whole batch first.
    expect(log.readBatches(7, 15, 1 << 20).map((b) => b.baseOffset)).toEqual([5, 10, 12]);
    // Below an end offset (an HW): nothing from a batch at or above it.
    expect(log.readBatches(0, 10, 1 << 20).map((b) => b.baseOffset)).toEqual([0, 5]);
    // A byte bound smaller than one batch still returns one.
    expect(log.readBatches(0, 15, 1).map((b) => b.baseOffset)).toEqual([0]);
    expect(values(log.readBatches(12, 15, 1 << 20))).toEqual(['12:v12', '13:v13', '14:v14']);
  });

  it('refuses a gap, an overlap and a lower epoch as broken invariants', async () => {
    const log = store.log('t', 0);
    await log.append([batch(0, 2, 3)]);
    expect(() => log.append([batch(3, 1, 3)])).toThrow(InvariantError);
    expect(() => log.append([batch(1, 1, 3)])).toThrow(InvariantError);
    expect(() => log.append([batch(2, 1, 2)])).toThrow(InvariantError);
    expect(() => log.append([batch(2, 1, 3)], [], 9)).toThrow(InvariantError);
    expect(log.leo).toBe(2);
  });

  it('truncates inside a batch by keeping its records below the point, and fixes the epoch history', async () => {
    const log = store.log('t', 0);
    await log.append([batch(0, 4, 1), batch(4, 4, 2)], [], 8);
    const straddling = (await log.batchAt(5))!;
    expect(straddling.baseOffset).toBe(4);
    const { cutBatch } = await import('./batch-index.js');
    await log.truncate(6, cutBatch(straddling, straddling.baseOffset, 6));
    expect(log.leo).toBe(6);
    expect(log.hwCheckpoint).toBe(6);
    expect(values(log.readBatches(0, 100, 1 << 20))).toEqual(['0:v0', '1:v1', '2:v2', '3:v3', '4:v4', '5:v5']);
    await log.truncate(4);
    expect(log.epochs()).toEqual([[1, 0]]);
    await log.append([batch(4, 1, 5)]);
    expect(log.epochs()).toEqual([
      [1, 0],
      [5, 4],
    ]);
  });

  it('restores logs, epochs, offsets and the HW checkpoint (never above the LEO) after a reopen, and deletes a log', async () => {
    const a = store.log('a', 0);
    const b = store.log('b', 7);
    await Promise.all([a.append([batch(0, 3, 1)], [{ group: 'g', offset: 2, generation: 4 }], 2), b.append([batch(0, 1, 0), batch(1, 1, 1)], [], 2)]);
    await a.checkpointHw(3);
    await store.close();
    store = BrokerStore.open(dir, 'normal');
    const reopened = store.log('a', 0);
    expect(reopened.leo).toBe(3);
    expect(reopened.hwCheckpoint).toBe(3);
    expect(reopened.epochs()).toEqual([[1, 0]]);
    expect(reopened.groupOffsets()).toEqual([{ group: 'g', offset: 2, generation: 4 }]);
    expect(store.log('b', 7).epochs()).toEqual([
      [0, 0],
      [1, 1],
    ]);
    await store.log('b', 7).destroy();
    expect(store.partitions()).toEqual([{ topic: 'a', partition: 0 }]);
    expect(store.log('b', 7).leo).toBe(0);
  });

  it('moves the log start by whole batches for retention, deletes below it a bounded number at a time, and restores it on reopen', async () => {
    const log = store.log('t', 0);
    // Ten batches of 3 records; batch i's newest record is at 1_000 + 3i + 2.
    const batches = Array.from({ length: 10 }, (_, i) => batch(3 * i, 3, 1));
    await log.append(batches, [], 30);
    const lastFour = batches.slice(6).reduce((sum, b) => sum + b.bytes.length, 0);
    expect(log.sizeBytes).toBe(batches.reduce((sum, b) => sum + b.bytes.length, 0));
    // By time: everything older than 1_010 goes (batches 0..2 end at 1_002, 1_005, 1_008).
    expect(log.retentionPoint({ retentionMs: 10, retentionBytes: -1, nowMs: 1_020, hw: 30, maxBatches: 100 })).toBe(9);
    // By size: keep at most 4 batches' worth; never past the HW; at most maxBatches per pass.
    expect(log.retentionPoint({ retentionMs: -1, retentionBytes: lastFour, nowMs: 0, hw: 30, maxBatches: 100 })).toBe(18);
    expect(log.retentionPoint({ retentionMs: -1, retentionBytes: lastFour, nowMs: 0, hw: 10, maxBatches: 100 })).toBe(9);
    expect(log.retentionPoint({ retentionMs: -1, retentionBytes: 0, nowMs: 0, hw: 30, maxBatches: 2 })).toBe(6);
    await log.advanceLogStart(18, 30);
    expect(log.logStartOffset).toBe(18);
    expect(() => log.advanceLogStart(31, 30)).toThrow(InvariantError);
    expect(await log.deleteBelowLogStart(4)).toEqual({ deleted: 4, more: true });
    expect(await log.deleteBelowLogStart(4)).toEqual({ deleted: 2, more: false });
    expect(await log.deleteBelowLogStart(4)).toEqual({ deleted: 0, more: false });
    expect(log.sizeBytes).toBe(lastFour);
    expect(values(log.readBatches(18, 30, 1 << 20))[0]).toBe('18:v18');
    // A purge inside a batch: the batch holding the log start stays, records below it are not readable by offset.
    await log.advanceLogStart(20, 30);
    await store.close();
    store = BrokerStore.open(dir, 'full');
    const reopened = store.log('t', 0);
    expect([reopened.logStartOffset, reopened.leo, reopened.hwCheckpoint]).toEqual([20, 30, 30]);
    // A follower reset past its end keeps its log start and LEO there across a reopen, with old batches still below it.
    await reopened.resetTo(40);
    await store.close();
    store = BrokerStore.open(dir, 'full');
    const reset = store.log('t', 0);
    expect([reset.logStartOffset, reset.leo, reset.hwCheckpoint, reset.epochs()]).toEqual([40, 40, 40, []]);
    await reset.append([batch(40, 2, 3)], [], 42);
    expect(await reset.deleteBelowLogStart(100)).toEqual({ deleted: 4, more: false });
    expect(values(reset.readBatches(40, 42, 1 << 20))).toEqual(['40:v40', '41:v41']);
    expect(reset.sizeBytes).toBe(reset.readBatches(40, 42, 1 << 20)[0].bytes.length);
  });
});
