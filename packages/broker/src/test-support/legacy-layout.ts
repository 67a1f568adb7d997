/**
 * Test support: data dirs of the former per-partition layout (DATA/<topic>/<partition>.db),
 * written with that layout's schema as the broker before the one-database layout created it.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

/** The schema of the per-partition layout, as the broker before this one created it. */
const LEGACY_SCHEMA = `
  CREATE TABLE IF NOT EXISTS records (
    offset INTEGER PRIMARY KEY, epoch INTEGER NOT NULL, timestamp INTEGER NOT NULL,
    key TEXT, value TEXT NOT NULL, headers TEXT
  );
  CREATE TABLE IF NOT EXISTS epochs (epoch INTEGER PRIMARY KEY, start_offset INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS group_offsets (group_id TEXT PRIMARY KEY, offset INTEGER NOT NULL, generation INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

export interface OldRecord {
  offset: number;
  epoch: number;
  timestamp: number;
  key: string | null;
  value: string;
  headers: Record<string, string> | null;
}

/** Writes one replica database of the old layout, in WAL mode like the old broker. */
export function writeLegacyReplica(dataDir: string, topic: string, partition: number, records: OldRecord[], extra: { hw: number; groups: Array<[string, number, number]> }): void {
  fs.mkdirSync(path.join(dataDir, topic), { recursive: true });
  const db = new Database(path.join(dataDir, topic, `${partition}.db`));
  db.pragma('journal_mode = WAL');
  db.exec(LEGACY_SCHEMA);
  const insert = db.prepare('INSERT INTO records (offset, epoch, timestamp, key, value, headers) VALUES (?, ?, ?, ?, ?, ?)');
  const epoch = db.prepare('INSERT OR REPLACE INTO epochs (epoch, start_offset) VALUES (?, ?)');
  let last: number | undefined;
  for (const r of records) {
    if (last === undefined || r.epoch > last) epoch.run(r.epoch, r.offset);
    last = r.epoch;
    insert.run(r.offset, r.epoch, r.timestamp, r.key, r.value, r.headers === null ? null : JSON.stringify(r.headers));
  }
  for (const [group, offset, generation] of extra.groups) {
    db.prepare('INSERT INTO group_offsets (group_id, offset, generation) VALUES (?, ?, ?)').run(group, offset, generation);
  }
  db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run('hw', String(extra.hw));
  db.close();
}

export function oldRecords(count: number, epochAt: (offset: number) => number): OldRecord[] {
  return Array.from({ length: count }, (_, offset) => ({
    offset,
    epoch: epochAt(offset),
    timestamp: 1_700_000_000_000 + offset,
    key: offset % 3 === 0 ? null : `key-${offset % 7}`,
    value: offset % 5 === 0 ? '' : `välue ${offset} ✓`,
    headers: offset % 4 === 0 ? { trace: `t${offset}`, empty: '' } : null,
  }));
}

