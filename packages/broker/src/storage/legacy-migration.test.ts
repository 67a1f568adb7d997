// Proves a data dir of the former per-partition layout (DATA/<topic>/<partition>.db, written here
// with that layout's schema) is migrated into the one database with every record (bytes, keys,
// headers, timestamps, offsets), the epoch history, committed offsets and the HW, the old files
// kept aside; a migration cut short is redone; and a foreign file is refused with one clear line.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeRecordBatch } from '@tessera/protocol';
import { createLogger } from '@tessera/service';
import { oldRecords, writeLegacyReplica } from '../test-support/legacy-layout.js';
import { BrokerStore, MIGRATED_DIR, migrateLegacyLayout } from './index.js';

const logger = createLogger('broker', { test: 'migration' }, { level: process.env.TESSERA_TEST_LOG_LEVEL ?? 'silent' });
let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-migrate-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('migration of the per-partition layout', () => {
  it('moves every record, the epoch history, committed offsets and the HW into the one database', async () => {
    const a = oldRecords(2_500, (offset) => (offset < 1_200 ? 0 : offset < 1_201 ? 2 : 5));
    writeLegacyReplica(dir, 'orders', 0, a, { hw: 2_400, groups: [['billing', 2_000, 3], ['audit', 7, 1]] });
    writeLegacyReplica(dir, 'orders', 3, [], { hw: 0, groups: [['billing', 0, 3]] });
    writeLegacyReplica(dir, 'other.topic', 1, oldRecords(3, () => 4), { hw: 9, groups: [] });

    const store = BrokerStore.open(dir, 'full');
    try {
      expect(await migrateLegacyLayout(dir, store, logger)).toBe(3);
      const log = store.log('orders', 0);
      expect(log.leo).toBe(2_500);
      expect(log.hwCheckpoint).toBe(2_400);
      expect(log.epochs()).toEqual([
        [0, 0],
        [2, 1_200],
        [5, 1_201],
      ]);
      expect(log.groupOffsets()).toEqual([
        { group: 'audit', offset: 7, generation: 1 },
        { group: 'billing', offset: 2_000, generation: 3 },
      ]);
      const back = log.readBatches(0, 2_500, Number.MAX_SAFE_INTEGER).flatMap((b) => {
        const { header, records } = decodeRecordBatch(b.bytes);
        return records.map((r) => ({
          offset: r.offset,
          epoch: header.partitionLeaderEpoch,
          timestamp: r.timestamp,
          key: r.key === null ? null : r.key.toString(),
          value: r.value!.toString(),
          headers: r.headers.length === 0 ? null : Object.fromEntries(r.headers.map((h) => [h.key, h.value!.toString()])),
        }));
      });
      expect(back).toEqual(a);
      expect(store.log('orders', 3).groupOffsets()).toEqual([{ group: 'billing', offset: 0, generation: 3 }]);
      // HW checkpoints never exceed the LEO.
      expect(store.log('other.topic', 1).hwCheckpoint).toBe(3);
      // The old files are kept aside, out of the layout, so a second start does not migrate again.
      expect(fs.existsSync(path.join(dir, 'orders', '0.db'))).toBe(false);
      expect(fs.existsSync(path.join(dir, MIGRATED_DIR, 'orders', '0.db'))).toBe(true);
      expect(await migrateLegacyLayout(dir, store, logger)).toBe(0);
    } finally {
      await store.close();
    }
  });

  it('redoes a migration cut short from the old file, which stays the truth until it is moved', async () => {
    writeLegacyReplica(dir, 't', 0, oldRecords(10, () => 1), { hw: 10, groups: [] });
    const store = BrokerStore.open(dir, 'full');
    try {
      // A partial earlier attempt left part of the log in the new database.
      await migrateLegacyLayout(dir, store, logger);
      fs.mkdirSync(path.join(dir, 't'));
      fs.renameSync(path.join(dir, MIGRATED_DIR, 't', '0.db'), path.join(dir, 't', '0.db'));
      expect(await migrateLegacyLayout(dir, store, logger)).toBe(1);
      expect(store.log('t', 0).leo).toBe(10);
      expect(store.log('t', 0).readBatches(0, 10, 1 << 20).length).toBeGreaterThan(0);
    } finally {
      await store.close();
    }
  });

  it('does not look into directories that cannot be topics, such as the lost+found of a file system root', async () => {
    // Root of an ext4 mount: lost+found belongs to root (mode 0700) while the broker runs as another user.
    fs.mkdirSync(path.join(dir, 'lost+found'));
    fs.writeFileSync(path.join(dir, 'lost+found', '0.db'), 'not a database');
    writeLegacyReplica(dir, 't', 0, oldRecords(3, () => 1), { hw: 3, groups: [] });
    const store = BrokerStore.open(dir, 'full');
    try {
      expect(await migrateLegacyLayout(dir, store, logger)).toBe(1);
      expect(store.log('t', 0).leo).toBe(3);
      expect(fs.readFileSync(path.join(dir, 'lost+found', '0.db'), 'utf8')).toBe('not a database');
    } finally {
      await store.close();
    }
  });

  it('refuses a file that is not a replica database of that layout, with one line saying what to do', async () => {
    fs.mkdirSync(path.join(dir, 'weird'));
    const db = new Database(path.join(dir, 'weird', '0.db'));
    db.exec('CREATE TABLE something (x INTEGER)');
    db.close();
    const store = BrokerStore.open(dir, 'full');
    try {
      const error = await migrateLegacyLayout(dir, store, logger).catch((e: Error) => e);
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).name).toBe('MigrationError');
      expect((error as Error).message).toMatch(/weird\/0\.db: it has no table records/);
      expect((error as Error).message).not.toContain('\n');
      // Nothing of it was moved or deleted.
      expect(fs.existsSync(path.join(dir, 'weird', '0.db'))).toBe(true);
    } finally {
      await store.close();
    }
  });
});
