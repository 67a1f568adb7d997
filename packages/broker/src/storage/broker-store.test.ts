// Proves the broker's one database keeps gap-free batch logs with their epoch history for many
// partitions, writes every partition's pending writes in one group commit, reads whole batches
// (from the one holding an offset, bounded but at least one), truncates inside a batch by cutting
// it, and restores everything (HW as min(checkpoint, LEO)) after a reopen. Real SQLite in a temp dir.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeRecordBatch, encodeRecordBatch, InvariantError } from '@tessera/protocol';
import Database from 'better-sqlite3';
import { BrokerStore, cutBatch, storedBatch, type StoredBatch } from './index.js';

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
    const truncating = log.truncate(6, cutBatch(straddling, straddling.baseOffset, 6));
    // Not counted durable past the cut while it is being committed (a replica promoted meanwhile takes its HW from it).
    expect(log.durableLeo).toBe(6);
    await truncating;
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

  it('reads a batch that is still queued while other partitions never stop writing', async () => {
    // A follower cutting its log at a truncation point reads the straddling batch; the store is
    // never idle on a busy broker, so the read must wait only for what was queued before it.
    const log = store.log('t', 0);
    const busy = store.log('t', 1);
    // Another partition queues a write every loop turn, so writes are queued whenever a
    // transaction ends (as on a broker under load).
    let writing = true;
    let next = 0;
    const busyWrites: Array<Promise<void>> = [];
    const writer = (async () => {
      while (writing) {
        busyWrites.push(busy.append([batch(next, 1, 1)]));
        next += 1;
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    await busyWrites[0];
    const appended = log.append([batch(0, 4, 1)]);
    const found = await log.batchAt(2);
    const busyAtRead = next;
    writing = false;
    await writer;
    await Promise.all([appended, ...busyWrites]);
    expect(found?.baseOffset).toBe(0);
    expect(found?.lastOffset).toBe(3);
    expect(busyAtRead).toBeGreaterThan(0);
  });

  it('stores every byte of every batch across transactions, one of them larger than the shared buffer the store keeps', async () => {
    // The blobs of a transaction travel to the commit thread in shared memory reused by the next
    // transaction; a transaction larger than what is kept gets memory of its own.
    const logs = [store.log('t', 0), store.log('t', 1)];
    const written: Buffer[][] = [[], []];
    const next = [0, 0];
    const write = (p: number, valueSizes: number[]) => {
      const records = valueSizes.map((size, i) => ({ key: null, value: randomBytes(size), headers: [{ key: 'n', value: Buffer.from([0, 0xff, i]) }], timestamp: 5 }));
      const stored = storedBatch(encodeRecordBatch(records, { baseOffset: next[p], partitionLeaderEpoch: 1 }));
      next[p] += valueSizes.length;
      written[p].push(stored.bytes);
      return logs[p].append([stored]);
    };
    await Promise.all([write(0, [0, 1, 300]), write(1, [1024, 2])]);
    await Promise.all([write(0, [17 * 1024 * 1024]), write(1, [7])]);
    await Promise.all([write(0, [5, 0]), write(1, [64 * 1024, 3, 0])]);
    // Compared by length and digest: a failing comparison of 17 MiB buffers would print them whole.
    const digests = (batches: Buffer[][]) => batches.map((bytes) => bytes.map((b) => `${b.length}:${createHash('sha256').update(b).digest('hex')}`));
    const readAll = (target: BrokerStore) =>
      [0, 1].map((p) => target.log('t', p).readBatches(0, next[p], Number.MAX_SAFE_INTEGER).map((b) => b.bytes));
    expect(digests(readAll(store))).toEqual(digests(written));
    await store.close();
    store = BrokerStore.open(dir, 'full');
    expect(digests(readAll(store))).toEqual(digests(written));
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
    // Back below its log start only without records and with no batch stored, and kept across a reopen.
    expect(() => reset.resetTo(10)).toThrow(InvariantError);
    await reset.advanceLogStart(42, 42);
    expect(reset.isBare()).toBe(false);
    expect(() => reset.resetTo(10)).toThrow(InvariantError);
    await reset.deleteBelowLogStart(100);
    expect(reset.isBare()).toBe(true);
    // Never counted durable past the log as it will be, while the reset is being committed.
    const resetting = reset.resetTo(10);
    expect([reset.leo, reset.durableLeo]).toEqual([10, 10]);
    await resetting;
    await store.close();
    store = BrokerStore.open(dir, 'full');
    const back = store.log('t', 0);
    expect([back.logStartOffset, back.leo, back.hwCheckpoint, back.sizeBytes, back.epochs()]).toEqual([10, 10, 10, 0, []]);
  });
});

describe('BrokerStore producer state', () => {
  /** A batch of an idempotent producer: `count` records from `base`, sequences from `sequence`. */
  function sequenced(base: number, count: number, producerId: number, sequence: number): StoredBatch {
    const records = Array.from({ length: count }, (_, i) => ({ key: null, value: Buffer.from(`p${base + i}`), timestamp: 1 }));
    return storedBatch(encodeRecordBatch(records, { baseOffset: base, partitionLeaderEpoch: 0, producerId, producerEpoch: 0, baseSequence: sequence }));
  }

  it('forgets every producer when the log starts again empty, so a producer whose batches it lost is not refused', async () => {
    // A follower that was away while retention deleted a producer's later batches on the primary
    // is reset past its end: its entry (last sequence 1) is older than the producer's next batch.
    const log = store.log('t', 0);
    await log.append([sequenced(0, 2, 9, 0)]);
    const next = { producerId: 9, producerEpoch: 0, baseSequence: 6, lastOffsetDelta: 0 };
    expect(log.producers.check(next, Date.now()).kind).toBe('out-of-order');
    await log.resetTo(40);
    expect(log.producers.check(next, Date.now())).toEqual({ kind: 'append' });
    await store.close();
    store = BrokerStore.open(dir, 'full');
    expect(store.log('t', 0).producers.check(next, Date.now())).toEqual({ kind: 'append' });
  });

  it('derives it from appended batches, forgets truncated ones (a cut batch keeps its records), and restores it after a reopen', async () => {
    // Proves the follower's path: state from the batch headers alone, stored with the log.
    const log = store.log('t', 0);
    await log.append([sequenced(0, 2, 9, 0), batch(2, 1, 0), sequenced(3, 4, 9, 2), sequenced(7, 1, 10, 0)]);
    expect(log.producers.check({ producerId: 9, producerEpoch: 0, baseSequence: 2, lastOffsetDelta: 3 }, Date.now())).toEqual({
      kind: 'duplicate',
      baseOffset: 3,
      lastOffset: 6,
    });
    // Cut inside the second batch of producer 9: it keeps offsets 3..4, sequences 2..3.
    const straddling = (await log.batchAt(5))!;
    await log.truncate(5, cutBatch(straddling, straddling.baseOffset, 5));
    const check = (producerId: number, baseSequence: number) =>
      log.producers.check({ producerId, producerEpoch: 0, baseSequence, lastOffsetDelta: 0 }, Date.now()).kind;
    expect(check(9, 4)).toBe('append');
    expect(check(9, 6)).toBe('out-of-order');
    expect(log.producers.entry(10, Date.now())).toBeUndefined();
    await store.close();

    store = BrokerStore.open(dir, 'full');
    const reopened = store.log('t', 0);
    expect(reopened.producers.entry(9, Date.now())).toEqual(log.producers.entry(9, Date.now()));
    expect(reopened.producers.size).toBe(1);
    await reopened.destroy();
    await store.close();
    store = BrokerStore.open(dir, 'full');
    expect(store.log('t', 0).producers.size).toBe(0);
  });

  it('forgets the producers and group offsets of a log without records that starts again below its log start', async () => {
    // A replica of a deleted topic, reset past its end, taken for the new topic's: what it kept
    // of the old topic's producers and groups must not be taken for the new topic's.
    const log = store.log('t', 0);
    await log.append([sequenced(0, 5, 9, 0)], [{ group: 'g', offset: 3, generation: 1 }], 5);
    await log.resetTo(30);
    // A reset forward keeps the group offsets (the log is the same topic's, only further on)
    // and forgets the producers (their later batches are not in it).
    expect(log.producers.size).toBe(0);
    expect(log.groupOffset('g')).toEqual({ group: 'g', offset: 3, generation: 1 });
    while ((await log.deleteBelowLogStart(1_000)).more);

    await log.resetTo(0);
    expect(log.producers.size).toBe(0);
    expect(log.groupOffsets()).toEqual([]);
    // The new topic's first batch of producer 9 is recorded, not taken for one it already holds.
    await log.append([sequenced(0, 2, 9, 30)], [], 2);
    expect(log.producers.check({ producerId: 9, producerEpoch: 0, baseSequence: 32, lastOffsetDelta: 0 }, Date.now()).kind).toBe('append');
    await store.close();
    store = BrokerStore.open(dir, 'full');
    const reopened = store.log('t', 0);
    expect(reopened.producers.entry(9, Date.now())?.batches).toEqual([{ firstSeq: 30, lastSeq: 31, baseOffset: 0, lastOffset: 1 }]);
    expect(reopened.groupOffsets()).toEqual([]);
  });

  it('migrates a database of schema 2 (no producer state) and refuses an unknown schema', async () => {
    await store.log('t', 0).append([batch(0, 2, 0)]);
    await store.close();
    const file = path.join(dir, 'broker.db');
    const db = new Database(file);
    db.exec('DROP TABLE producers');
    db.prepare("UPDATE meta SET value = '2' WHERE key = 'schema_version'").run();
    db.close();

    store = BrokerStore.open(dir, 'full');
    const log = store.log('t', 0);
    expect(log.leo).toBe(2);
    await log.append([sequenced(2, 1, 5, 0)]);
    expect(log.producers.size).toBe(1);
    await store.close();
    const check = new Database(file, { readonly: true });
    expect(check.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get()).toEqual({ value: '4' });
    expect(check.prepare('SELECT producer_id FROM producers').all()).toEqual([{ producer_id: 5 }]);
    check.close();

    const future = new Database(file);
    future.prepare("UPDATE meta SET value = '5' WHERE key = 'schema_version'").run();
    future.close();
    expect(() => BrokerStore.open(dir, 'full')).toThrow(/storage schema 5, this broker reads schema 4/);
    // Back to schema 4, so the store of this test can be opened and closed as usual.
    const back = new Database(file);
    back.prepare("UPDATE meta SET value = '4' WHERE key = 'schema_version'").run();
    back.close();
    store = BrokerStore.open(dir, 'full');
  });

  it('reads the producer state a broker of schema 3 stored as JSON text, and writes bytes from then on', async () => {
    const log = store.log('t', 0);
    await log.append([sequenced(0, 2, 9, 0), sequenced(2, 3, 9, 2)]);
    const entry = log.producers.entry(9, Date.now());
    await store.close();
    // What a broker of schema 3 left: the same spans as JSON text (its format, spelled out here).
    const file = path.join(dir, 'broker.db');
    const db = new Database(file);
    const spans = [
      { firstSeq: 0, lastSeq: 1, baseOffset: 0, lastOffset: 1 },
      { firstSeq: 2, lastSeq: 4, baseOffset: 2, lastOffset: 4 },
    ];
    const stored = db.prepare('SELECT epoch, last_update_ms FROM producers WHERE producer_id = 9').get() as { epoch: number; last_update_ms: number };
    // The table as schema 3 declared it: the spans in a TEXT column.
    db.exec(`DROP TABLE producers;
      CREATE TABLE producers (topic TEXT NOT NULL, partition INTEGER NOT NULL, producer_id INTEGER NOT NULL,
        epoch INTEGER NOT NULL, last_update_ms INTEGER NOT NULL, batches TEXT NOT NULL, idempotency_key TEXT,
        PRIMARY KEY (topic, partition, producer_id));`);
    db.prepare("INSERT INTO producers VALUES ('t', 0, 9, ?, ?, ?, NULL)").run(stored.epoch, stored.last_update_ms, JSON.stringify(spans));
    db.prepare("UPDATE meta SET value = '3' WHERE key = 'schema_version'").run();
    db.close();

    store = BrokerStore.open(dir, 'full');
    const reopened = store.log('t', 0);
    expect(reopened.producers.entry(9, Date.now())).toEqual(entry);
    expect(reopened.producers.check({ producerId: 9, producerEpoch: 0, baseSequence: 2, lastOffsetDelta: 2 }, Date.now())).toEqual({
      kind: 'duplicate',
      baseOffset: 2,
      lastOffset: 4,
    });
    await reopened.append([sequenced(5, 1, 9, 5)]);
    await store.close();
    const check = new Database(file, { readonly: true });
    expect(check.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get()).toEqual({ value: '4' });
    const row = check.prepare('SELECT typeof(batches) AS type FROM producers WHERE producer_id = 9').get();
    check.close();
    expect(row).toEqual({ type: 'blob' });
    store = BrokerStore.open(dir, 'full');
    expect(store.log('t', 0).producers.check({ producerId: 9, producerEpoch: 0, baseSequence: 6, lastOffsetDelta: 0 }, Date.now()).kind).toBe('append');
  });

  it('refuses to open a log whose stored producer spans are not in a layout it knows', async () => {
    await store.log('t', 0).append([sequenced(0, 2, 9, 0)]);
    await store.close();
    const db = new Database(path.join(dir, 'broker.db'));
    db.prepare('UPDATE producers SET batches = ? WHERE producer_id = 9').run(Buffer.from([7, 1, 2, 3]));
    db.close();
    store = BrokerStore.open(dir, 'full');
    expect(() => store.log('t', 0)).toThrow(/producer 9: stored producer spans of 4 bytes have an unknown layout \(first byte 7\)/);
  });
});

describe('cutBatch', () => {
  it('numbers the kept records of an idempotent batch as the producer did, across the wrap of sequence numbers', () => {
    const records = Array.from({ length: 4 }, (_, i) => ({ key: null, value: Buffer.from(`v${i}`), timestamp: 1_000 + i }));
    const bytes = encodeRecordBatch(records, { baseOffset: 10, partitionLeaderEpoch: 2, producerId: 5, producerEpoch: 1, baseSequence: 2 ** 31 - 2 });
    const cut = cutBatch(storedBatch(bytes), 12, 14)!;
    const { header, records: kept } = decodeRecordBatch(cut.bytes);
    // Offsets 10 and 11 had sequences 2^31 - 2 and 2^31 - 1; offset 12 has 0.
    expect(header).toMatchObject({ baseOffset: 12, producerId: 5, producerEpoch: 1, baseSequence: 0 });
    expect(kept.map((r) => r.value?.toString())).toEqual(['v2', 'v3']);
  });
});
