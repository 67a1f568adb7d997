/**
 * Migration of the former layout, one SQLite database per replica at
 * `DATA/<topic>/<partition>.db` (tables records, epochs, group_offsets, meta), into the
 * broker's one database. Each replica's records become RecordBatches (consecutive records of
 * one epoch, bounded in count and bytes, with their offsets, epoch and timestamps), its epoch
 * history, committed offsets and HW checkpoint are carried over, and the result is checked
 * against the old log (LEO, epoch history) before the old file is moved to
 * `DATA/migrated-from-per-partition-layout/` (kept, never deleted: the operator removes it).
 * While an old file is in its place it is the truth: a migration cut short is redone.
 * A file that is not of that layout stops the broker with one line saying what to do.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { encodeRecordBatch, topicName, type BatchRecordInput } from '@tessera/protocol';
import type { Logger } from '@tessera/service';
import { type BrokerStore, type EpochEntry, type GroupOffset, type StoredBatch } from './broker-store.js';
import { storedBatch } from './batch-index.js';
import { LEGACY_SQL } from './sql.js';

export const MIGRATED_DIR = 'migrated-from-per-partition-layout';
/** Records and bytes per batch made from old records. */
const MIGRATION_BATCH_RECORDS = 1_000;
const MIGRATION_BATCH_BYTES = 1024 * 1024;
/** Batches written per transaction while migrating one replica. */
const MIGRATION_WRITE_BATCHES = 200;

interface LegacyRecord {
  offset: number;
  epoch: number;
  timestamp: number;
  key: string | null;
  value: string;
  headers: string | null;
}

/**
 * Every replica database of the former layout under `dataDir`, as {topic, partition, file}.
 * Only directories named like a topic are read: a data directory at the root of a file system
 * has a `lost+found` that the broker's user may not be allowed to read.
 */
export function listLegacyFiles(dataDir: string): Array<{ topic: string; partition: number; file: string }> {
  const found: Array<{ topic: string; partition: number; file: string }> = [];
  if (!fs.existsSync(dataDir)) return found;
  for (const topicEntry of fs.readdirSync(dataDir, { withFileTypes: true })) {
    if (!topicEntry.isDirectory() || topicEntry.name === MIGRATED_DIR || !topicName.safeParse(topicEntry.name).success) continue;
    let names: string[];
    try {
      names = fs.readdirSync(path.join(dataDir, topicEntry.name));
    } catch (error) {
      throw new MigrationError(
        `cannot read ${path.join(dataDir, topicEntry.name)} to look for replicas of the per-partition layout (${(error as Error).message}); give the broker's user access to it, or move it out of the data directory`,
      );
    }
    for (const name of names) {
      const match = /^(\d+)\.db$/.exec(name);
      if (match) found.push({ topic: topicEntry.name, partition: Number(match[1]), file: path.join(dataDir, topicEntry.name, name) });
    }
  }
  return found.sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1));
}

export class MigrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MigrationError';
  }
}

/** Migrates every old replica database under `dataDir` into `store`; returns how many it migrated. */
export async function migrateLegacyLayout(dataDir: string, store: BrokerStore, logger: Logger): Promise<number> {
  const files = listLegacyFiles(dataDir);
  if (files.length === 0) return 0;
  logger.info({ replicas: files.length }, 'migrating the per-partition data layout into broker.db');
  let done = 0;
  for (const { topic, partition, file } of files) {
    const summary = await migrateOne(store, topic, partition, file);
    moveAside(dataDir, topic, file);
    done++;
    logger.info({ topic, partition, ...summary, progress: `${done}/${files.length}` }, 'replica migrated');
  }
  logger.info(
    { replicas: done, kept: path.join(dataDir, MIGRATED_DIR) },
    'migration done; the old files were kept and can be deleted once the broker runs well',
  );
  return done;
}

async function migrateOne(store: BrokerStore, topic: string, partition: number, file: string): Promise<{ records: number; leo: number; hw: number }> {
  let db: Database.Database;
  try {
    db = new Database(file, { fileMustExist: true });
  } catch (error) {
    throw refuse(file, `cannot be opened (${(error as Error).message})`);
  }
  try {
    const tables = new Set((db.prepare(LEGACY_SQL.tables).all() as Array<{ name: string }>).map((row) => row.name));
    for (const table of ['records', 'epochs', 'group_offsets', 'meta']) {
      if (!tables.has(table)) throw refuse(file, `has no table ${table}, so it is not a replica database of the per-partition layout`);
    }
    const meta = new Map((db.prepare(LEGACY_SQL.meta).all() as Array<{ key: string; value: string }>).map((row) => [row.key, row.value]));
    const epochs = (db.prepare(LEGACY_SQL.epochs).all() as Array<{ epoch: number; start_offset: number }>).map(
      (row): EpochEntry => [row.epoch, row.start_offset],
    );
    const commits = (db.prepare(LEGACY_SQL.groupOffsets).all() as Array<{ group_id: string; offset: number; generation: number }>).map(
      (row): GroupOffset => ({ group: row.group_id, offset: row.offset, generation: row.generation }),
    );

    // Whatever a migration cut short left in the new database is redone from the old file.
    await store.log(topic, partition).destroy();
    const log = store.log(topic, partition);
    let pending: StoredBatch[] = [];
    let group: LegacyRecord[] = [];
    let groupBytes = 0;
    let records = 0;
    let expected: number | undefined;
    const closeGroup = () => {
      if (group.length === 0) return;
      pending.push(toBatch(group));
      group = [];
      groupBytes = 0;
    };
    const writePending = async () => {
      if (pending.length === 0) return;
      const written = log.append(pending);
      pending = [];
      await written;
    };
    for (const record of db.prepare(LEGACY_SQL.records).iterate() as Iterable<LegacyRecord>) {
      if (expected !== undefined && record.offset !== expected) throw refuse(file, `has a gap in its records at offset ${expected}`);
      expected = record.offset + 1;
      const size = Buffer.byteLength(record.value) + (record.key === null ? 0 : Buffer.byteLength(record.key)) + (record.headers?.length ?? 0);
      if (group.length > 0 && (group[0].epoch !== record.epoch || group.length >= MIGRATION_BATCH_RECORDS || groupBytes + size > MIGRATION_BATCH_BYTES)) {
        closeGroup();
        if (pending.length >= MIGRATION_WRITE_BATCHES) await writePending();
      }
      group.push(record);
      groupBytes += size;
      records++;
    }
    closeGroup();
    const leo = expected ?? log.leo;
    const hw = Math.min(Number(meta.get('hw') ?? 0), leo);
    if (pending.length === 0) {
      // An empty log (or one whose tail only held commits): still carry the commits and HW.
      await log.append([], commits, hw);
    } else {
      const written = log.append(pending, commits, hw);
      pending = [];
      await written;
    }
    // The new log must say what the old one said.
    if (log.leo !== leo) throw refuse(file, `migrated to LEO ${log.leo}, the old log ends at ${leo}`);
    const migrated = JSON.stringify(log.epochs());
    const relevant = JSON.stringify(epochs.filter(([, start]) => start < leo));
    if (records > 0 && migrated !== relevant) throw refuse(file, `epoch history ${relevant} came out as ${migrated}`);
    return { records, leo, hw };
  } finally {
    db.close();
  }
}

function toBatch(records: LegacyRecord[]): StoredBatch {
  const inputs: BatchRecordInput[] = records.map((record) => {
    const headers = record.headers === null ? {} : (JSON.parse(record.headers) as Record<string, string>);
    return {
      key: record.key === null ? null : Buffer.from(record.key, 'utf8'),
      value: Buffer.from(record.value, 'utf8'),
      headers: Object.entries(headers).map(([key, value]) => ({ key, value: Buffer.from(value, 'utf8') })),
      timestamp: record.timestamp,
    };
  });
  return storedBatch(encodeRecordBatch(inputs, { baseOffset: records[0].offset, partitionLeaderEpoch: records[0].epoch }));
}

function moveAside(dataDir: string, topic: string, file: string): void {
  const targetDir = path.join(dataDir, MIGRATED_DIR, topic);
  fs.mkdirSync(targetDir, { recursive: true });
  for (const suffix of ['', '-wal', '-shm']) {
    if (fs.existsSync(file + suffix)) fs.renameSync(file + suffix, path.join(targetDir, path.basename(file) + suffix));
  }
  try {
    if (fs.readdirSync(path.dirname(file)).length === 0) fs.rmdirSync(path.dirname(file));
  } catch {
    // A topic directory with other files in it stays.
  }
}

function refuse(file: string, why: string): MigrationError {
  return new MigrationError(
    `cannot migrate ${file}: it ${why}. Move it out of the data directory (or start with an empty one) and start the broker again; ` +
      'the replica then catches up from its primary.',
  );
}
