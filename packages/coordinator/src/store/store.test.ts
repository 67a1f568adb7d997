// Proves the store round-trips the whole coordinator state through SQLite: what was written
// before a close is exactly what a new Store on the same directory loads; that a write SQLite
// refuses is reported (the coordinator stops on it); that migration 6 tells who created each
// existing subscription as documented; and that producer ids stay unique after a restored backup.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { TesseraError } from '@tessera/protocol';
import type { GroupState, TopicState } from '../model.js';
import { Store } from './store.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-coordinator-store-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** A schema-5 file in `dir` (this release's schema without what migration 6 adds), open for the test to fill. */
function schema5Database(dir: string): Database.Database {
  new Store(dir).close();
  const db = new Database(path.join(dir, 'coordinator.db'));
  db.exec(`
    ALTER TABLE subscriptions DROP COLUMN creator_kind;
    ALTER TABLE subscriptions DROP COLUMN suspended_reason;
    ALTER TABLE subscriptions DROP COLUMN suspended_ms;
    ALTER TABLE topics DROP COLUMN first_epoch;
    ALTER TABLE partitions DROP COLUMN version;
    ALTER TABLE groups DROP COLUMN empty_since_ms;
    PRAGMA user_version = 5;
  `);
  return db;
}

const topic: TopicState = {
  name: 'orders',
  replicationFactor: 2,
  config: { minInsyncReplicas: 2 },
  createdMs: 1_700_000_000_000,
  firstEpoch: 0,
  partitions: [
    { partition: 0, primary: 1, secondary: 2, epoch: 0, isr: [1, 2], lastIsr: [], version: 0 },
    { partition: 1, primary: null, secondary: 1, epoch: 4, isr: [], lastIsr: [2], version: 3 },
  ],
};

describe('Store', () => {
  it('restores version, brokers, topics, partitions, groups and members after reopening', () => {
    const dir = tempDir();
    const store = new Store(dir);
    const group: GroupState = {
      group: 'billing',
      topic: 'orders',
      generation: 7,
      members: new Map([
        ['m-1', { memberId: 'm-1', clientId: 'c', sessionTimeoutMs: 5_000, lastHeartbeatMs: 0, ackedGeneration: 7 }],
      ]),
      owner: ['m-1', null],
      target: ['m-1', 'm-1'],
      emptySinceMs: null,
    };
    store.transaction(() => {
      store.saveBroker({ id: 1, url: 'http://127.0.0.1:7071', internalUrl: 'http://127.0.0.1:7071', alive: true });
      store.saveBroker({ id: 2, url: 'http://127.0.0.1:7072', internalUrl: 'http://broker-2:7072', alive: false, draining: true });
      store.insertTopic(topic);
      store.saveVersion(42);
      store.saveMove({ topic: 'orders', partition: 1, targetPrimary: 2, targetSecondary: 1, reason: 'rebalance', startedMs: 5 });
      store.saveRebalanceRequested(true);
    });
    store.saveGroup(group);
    store.appendEvent(123, 'failover', { topic: 'orders', partition: 1 });
    store.close();

    const reopened = new Store(dir);
    const loaded = reopened.loadAll();
    expect(loaded.version).toBe(42);
    expect(loaded.brokers).toEqual([
      { id: 1, url: 'http://127.0.0.1:7071', internalUrl: 'http://127.0.0.1:7071', alive: true, draining: false },
      { id: 2, url: 'http://127.0.0.1:7072', internalUrl: 'http://broker-2:7072', alive: false, draining: true },
    ]);
    expect(loaded.topics).toEqual([topic]);
    // Moves in progress and a wanted rebalance survive a restart.
    expect(loaded.moves).toEqual([{ topic: 'orders', partition: 1, targetPrimary: 2, targetSecondary: 1, reason: 'rebalance', startedMs: 5 }]);
    expect(loaded.rebalanceRequested).toBe(true);
    expect(loaded.groups).toEqual([
      {
        group: 'billing',
        topic: 'orders',
        generation: 7,
        owner: ['m-1', null],
        target: ['m-1', 'm-1'],
        emptySinceMs: null,
        members: [{ memberId: 'm-1', clientId: 'c', sessionTimeoutMs: 5_000, ackedGeneration: 7 }],
      },
    ]);
    expect(reopened.latestEvents(10)).toEqual([{ id: 1, timeMs: 123, type: 'failover', topic: 'orders', partition: 1 }]);
    reopened.close();
  });

  it('deletes a topic with its partitions, and keeps events newest last', () => {
    const dir = tempDir();
    const store = new Store(dir);
    store.insertTopic(topic);
    store.saveMove({ topic: 'orders', partition: 0, targetPrimary: 1, targetSecondary: 2, reason: 'replace', startedMs: 1 });
    store.deleteTopic(topic);
    expect(store.loadAll().moves).toEqual([]);
    for (let i = 0; i < 5; i++) store.appendEvent(i, 'e', { i });
    expect(store.loadAll().topics).toEqual([]);
    expect(store.latestEvents(2).map((e) => e.i)).toEqual([3, 4]);
    store.close();
  });

  it('raises the epoch a new topic starts at above every epoch of a deleted topic, and keeps it after reopening', () => {
    const dir = tempDir();
    const store = new Store(dir);
    expect(store.topicEpochFloor()).toBe(0);
    store.insertTopic(topic);
    store.deleteTopic(topic);
    expect(store.topicEpochFloor()).toBe(5);
    // The topic made again starts at the floor; deleting it raises the floor above its epochs.
    const again = { ...topic, firstEpoch: 5, partitions: topic.partitions.map((p) => ({ ...p, epoch: 5 })) };
    store.insertTopic(again);
    expect(store.loadAll().topics[0]).toMatchObject({ firstEpoch: 5, partitions: [{ epoch: 5 }, { epoch: 5 }] });
    store.deleteTopic(again);
    expect(store.topicEpochFloor()).toBe(6);
    store.close();
    const reopened = new Store(dir);
    expect(reopened.topicEpochFloor()).toBe(6);
    reopened.close();
  });

  it('hands out producer ids strictly increasing from a floor of 100 per millisecond of the wall clock, also when the clock goes back', () => {
    const dir = tempDir();
    const store = new Store(dir);
    const wallMs = 1_750_000_000_000;
    expect(store.allocateProducerId(wallMs)).toBe(175_000_000_000_000);
    // In the same millisecond, and after the clock went back an hour, the stored counter wins.
    expect(store.allocateProducerId(wallMs)).toBe(175_000_000_000_001);
    expect(store.allocateProducerId(wallMs - 3_600_000)).toBe(175_000_000_000_002);
    store.close();
    const reopened = new Store(dir);
    expect(reopened.allocateProducerId(wallMs - 3_600_000)).toBe(175_000_000_000_003);
    // The floor of a later millisecond is above every id of an earlier one.
    expect(reopened.allocateProducerId(wallMs + 1)).toBe(175_000_000_000_100);
    reopened.close();
  });

  it('gives a restored backup of the database producer ids above every id handed out before the restore', () => {
    const dir = tempDir();
    const file = path.join(dir, 'coordinator.db');
    const backup = path.join(tempDir(), 'coordinator-backup.db');
    const store = new Store(dir);
    const wallMs = 1_750_000_000_000;
    const before = [store.allocateProducerId(wallMs), store.allocateProducerId(wallMs + 5)];
    // The backup as docs/operations.md takes it offline: a copy of the closed database.
    store.close();
    fs.copyFileSync(file, backup);
    const again = new Store(dir);
    for (let i = 0; i < 250; i++) before.push(again.allocateProducerId(wallMs + 10 + Math.floor(i / 100)));
    again.close();
    fs.copyFileSync(backup, file);
    const restored = new Store(dir);
    expect(restored.allocateProducerId(wallMs + 13)).toBeGreaterThan(Math.max(...before));
    restored.close();
  });

  it('refuses to hand out a producer id from 2^52 (the ids of idempotency keys)', () => {
    const store = new Store(tempDir());
    // The last millisecond whose floor is below 2^52 still has ids; the next has none.
    expect(store.allocateProducerId(45_035_996_273_704)).toBe(4_503_599_627_370_400);
    expect(() => store.allocateProducerId(45_035_996_273_705)).toThrow(/no producer id left below 2\^52/);
    store.setMeta('next_producer_id', String(2 ** 52));
    expect(() => store.allocateProducerId(0)).toThrow(/not a producer id/);
    store.close();
  });

  it('counts the pages deleted rows leave as free bytes, and nothing once closed', () => {
    const store = new Store(tempDir());
    const partitions = Array.from({ length: 2_000 }, (_, partition) => ({ partition, primary: 1, secondary: 2, epoch: 0, isr: [1, 2], lastIsr: [], version: 0 }));
    store.insertTopic({ ...topic, partitions });
    const before = store.freePageBytes();
    store.deleteTopic({ ...topic, partitions });
    expect(store.freePageBytes()).toBeGreaterThan(before);
    store.close();
    expect(store.freePageBytes()).toBe(0);
  });

  it('reports a transaction SQLite could not store (the coordinator stops on it), not a change the caller refused', () => {
    const store = new Store(tempDir());
    const failures: Error[] = [];
    store.onWriteFailed = (error) => failures.push(error);
    const notStored = () =>
      store.transaction(() => {
        store.appendEvent(1, 'e', {});
        store.setMeta('k', 'v');
        // What a full disk or a broken file does to a statement.
        throw new Database.SqliteError('database or disk is full', 'SQLITE_FULL');
      });
    expect(notStored).toThrow(/disk is full/);
    expect(failures.map((error) => (error as { code?: string }).code)).toEqual(['SQLITE_FULL']);
    // Rolled back: nothing of it is stored.
    expect(store.getMeta('k')).toBeUndefined();
    const refused = () =>
      store.transaction(() => {
        throw new TesseraError('INVALID_REQUEST', 'refused');
      });
    expect(refused).toThrow(/refused/);
    expect(failures).toHaveLength(1);
    store.close();
  });

  it('keeps its database readable by its own user only', () => {
    const dir = path.join(tempDir(), 'data');
    const store = new Store(dir);
    store.setMeta('k', 'v');
    for (const name of ['coordinator.db', 'coordinator.db-wal', 'coordinator.db-shm']) {
      expect({ name, others: fs.statSync(path.join(dir, name)).mode & 0o077 }).toEqual({ name, others: 0 });
    }
    expect(fs.statSync(dir).mode & 0o077).toBe(0);
    store.close();
  });

  it(`migrates a schema-5 database: each subscription is its named principal's, or anonymous when none has the name "anonymous"`, () => {
    const dir = tempDir();
    const db = schema5Database(dir);
    const insert = db.prepare(
      `INSERT INTO subscriptions (name, topic, config, secret, state, group_id, start_offsets, created_ms, created_by)
       VALUES (?, 'orders', '{}', 'whsec_x', 'active', ?, '{}', 1, ?)`,
    );
    for (const [name, createdBy] of [
      ['by-alice', 'alice'],
      ['by-anonymous', 'anonymous'],
      ['by-member', 'member'],
    ]) {
      insert.run(name, `subscription.${name}.0`, createdBy);
    }
    db.close();

    const store = new Store(dir);
    expect(store.subscriptions().map((row) => [row.name, row.created_by, row.creator_kind, row.suspended_reason, row.suspended_ms])).toEqual([
      ['by-alice', 'alice', 'principal', null, null],
      // Created with authentication off: no principal of that name exists.
      ['by-anonymous', 'anonymous', 'anonymous', null, null],
      // A cluster member or a principal named "member": the rows cannot tell, so it follows the principal's access.
      ['by-member', 'member', 'principal', null, null],
    ]);
    store.close();
  });

  it(`migrates a subscription created by a principal named "anonymous" as that principal's`, () => {
    const dir = tempDir();
    const db = schema5Database(dir);
    db.exec(`
      INSERT INTO principals (name, secret_hash, credential, created_ms) VALUES ('anonymous', 'scrypt$1$1$1$x$y', 'c', 1);
      INSERT INTO subscriptions (name, topic, config, secret, state, group_id, start_offsets, created_ms, created_by)
        VALUES ('s', 'orders', '{}', 'whsec_x', 'active', 'subscription.s.0', '{}', 1, 'anonymous');
    `);
    db.close();
    const store = new Store(dir);
    expect(store.subscriptions().map((row) => row.creator_kind)).toEqual(['principal']);
    store.close();
  });

  it('deletes a group with its member rows', () => {
    const dir = tempDir();
    const store = new Store(dir);
    const member = { clientId: 'c', sessionTimeoutMs: 5_000, lastHeartbeatMs: 0, ackedGeneration: 1 };
    const group = (name: string): GroupState => ({
      group: name,
      topic: 'orders',
      generation: 1,
      members: new Map([
        ['m-1', { memberId: 'm-1', ...member }],
        ['m-2', { memberId: 'm-2', ...member }],
      ]),
      owner: ['m-1', 'm-2'],
      target: ['m-1', 'm-2'],
    });
    store.saveGroup(group('billing'));
    store.saveGroup(group('audit'));
    store.deleteGroup('billing');
    expect(store.loadAll().groups.map((g) => g.group)).toEqual(['audit']);
    store.close();
    const db = new Database(path.join(dir, 'coordinator.db'), { readonly: true });
    const rows = db.prepare('SELECT group_id AS groupId, member_id AS memberId FROM group_members ORDER BY member_id').all();
    db.close();
    expect(rows).toEqual([
      { groupId: 'audit', memberId: 'm-1' },
      { groupId: 'audit', memberId: 'm-2' },
    ]);
  });
});
