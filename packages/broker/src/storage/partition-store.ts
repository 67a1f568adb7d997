/**
 * The storage of one partition replica: one SQLite database (WAL) per replica at
 * `DATA/<topic>/<partition>.db`. Every SQL statement of the broker's storage lives in
 * this module, prepared once per database.
 *
 * Tables:
 * - records(offset PK, epoch, timestamp, key, value, headers): the log, gap-free from the log start.
 * - epochs(epoch PK, start_offset): the epoch history, the first offset each epoch wrote.
 * - group_offsets(group_id PK, offset, generation): committed offsets of consumer groups.
 * - meta(key PK, value): the high watermark checkpoint.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { assert } from '../util/assert.js';

export type Durability = 'full' | 'normal';

/** A record as stored: the offset and the epoch of the primary that wrote it. */
export interface StoredRecord {
  offset: number;
  epoch: number;
  timestamp: number;
  key: string | null;
  value: string;
  headers: Record<string, string> | null;
}

/** A record as fetch returns it (no epoch). */
export interface FetchedRecord {
  offset: number;
  key: string | null;
  value: string;
  headers: Record<string, string> | null;
  timestamp: number;
}

export interface GroupOffset {
  group: string;
  offset: number;
  generation: number;
}

/** `[epoch, startOffset]`: the first offset written in `epoch`. Sorted by epoch (and so by offset). */
export type EpochEntry = [epoch: number, startOffset: number];

export interface ReadLimits {
  maxRecords: number;
  maxBytes: number;
  /** Exclusive upper bound: the high watermark for consumers, the LEO for replication. */
  endOffset: number;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS records (
    offset INTEGER PRIMARY KEY,
    epoch INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    key TEXT,
    value TEXT NOT NULL,
    headers TEXT
  );
  CREATE TABLE IF NOT EXISTS epochs (epoch INTEGER PRIMARY KEY, start_offset INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS group_offsets (
    group_id TEXT PRIMARY KEY,
    offset INTEGER NOT NULL,
    generation INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

const SQL = {
  insertRecord: 'INSERT INTO records (offset, epoch, timestamp, key, value, headers) VALUES (?, ?, ?, ?, ?, ?)',
  insertEpoch: 'INSERT OR REPLACE INTO epochs (epoch, start_offset) VALUES (?, ?)',
  selectEpochs: 'SELECT epoch, start_offset FROM epochs ORDER BY epoch',
  selectFirstOffset: 'SELECT MIN(offset) AS first, MAX(offset) AS last FROM records',
  readForFetch:
    'SELECT offset, key, value, headers, timestamp FROM records WHERE offset >= ? AND offset < ? ORDER BY offset LIMIT ?',
  readForReplication:
    'SELECT offset, epoch, timestamp, key, value, headers FROM records WHERE offset >= ? AND offset < ? ORDER BY offset LIMIT ?',
  deleteRecordsFrom: 'DELETE FROM records WHERE offset >= ?',
  deleteEpochsFrom: 'DELETE FROM epochs WHERE start_offset >= ?',
  upsertGroupOffset:
    'INSERT INTO group_offsets (group_id, offset, generation) VALUES (?, ?, ?) ' +
    'ON CONFLICT(group_id) DO UPDATE SET offset = excluded.offset, generation = excluded.generation',
  selectGroupOffset: 'SELECT offset, generation FROM group_offsets WHERE group_id = ?',
  selectGroupOffsets: 'SELECT group_id, offset, generation FROM group_offsets ORDER BY group_id',
  upsertMeta: 'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
  selectMeta: 'SELECT value FROM meta WHERE key = ?',
} as const;

const META_HW = 'hw';
const META_LOG_START = 'log_start_offset';

/** Bytes a record counts for in fetch and replication size limits (an estimate: UTF-16 length plus overhead). */
function recordBytes(record: { key: string | null; value: string; headers: unknown }, headersText: string | null): number {
  return record.value.length + (record.key?.length ?? 0) + (headersText?.length ?? 0) + 32;
}

type Stmt = Database.Statement;

/** A row of `records` as the read statements select it. */
interface RecordRow {
  offset: number;
  key: string | null;
  value: string;
  headers: string | null;
  timestamp: number;
}

export class PartitionStore {
  readonly file: string;
  private readonly db: Database.Database;
  private readonly stmt: Record<keyof typeof SQL, Stmt>;
  private leoValue: number;
  private logStartValue: number;
  private epochHistory: EpochEntry[];
  private checkpointedHw: number;
  private closed = false;
  private readonly appendTx: (records: StoredRecord[], commits: GroupOffset[], hw: number | undefined) => void;
  private readonly truncateTx: (toOffset: number) => void;

  private constructor(file: string, durability: Durability) {
    this.file = file;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${durability === 'full' ? 'FULL' : 'NORMAL'}`);
    this.db.exec(SCHEMA);
    const stmt = {} as Record<keyof typeof SQL, Stmt>;
    for (const [name, sql] of Object.entries(SQL)) stmt[name as keyof typeof SQL] = this.db.prepare(sql);
    this.stmt = stmt;

    const bounds = stmt.selectFirstOffset.get() as { first: number | null; last: number | null };
    const storedLogStart = this.readMeta(META_LOG_START);
    this.logStartValue = bounds.first ?? (storedLogStart === undefined ? 0 : Number(storedLogStart));
    this.leoValue = bounds.last === null ? this.logStartValue : bounds.last + 1;
    this.epochHistory = (stmt.selectEpochs.all() as Array<{ epoch: number; start_offset: number }>).map(
      (row): EpochEntry => [row.epoch, row.start_offset],
    );
    const hwText = this.readMeta(META_HW);
    // The checkpoint may be ahead of the log if the tail was lost or truncated; HW never exceeds LEO.
    this.checkpointedHw = Math.min(hwText === undefined ? 0 : Number(hwText), this.leoValue);

    this.appendTx = this.db.transaction((records: StoredRecord[], commits: GroupOffset[], hw: number | undefined) => {
      let lastEpoch = this.lastEpoch;
      for (const record of records) {
        // Offsets are gap-free: a record can only be written at the log end.
        assert(record.offset === this.leoValue, `append at offset ${record.offset} but LEO is ${this.leoValue}`);
        // Epochs never go backwards in a log; a lower epoch here means divergence went unnoticed.
        assert(lastEpoch === undefined || record.epoch >= lastEpoch, `record epoch ${record.epoch} < last epoch ${lastEpoch}`);
        if (lastEpoch === undefined || record.epoch > lastEpoch) {
          this.stmt.insertEpoch.run(record.epoch, record.offset);
          this.epochHistory.push([record.epoch, record.offset]);
          lastEpoch = record.epoch;
        }
        const headersText = record.headers === null ? null : JSON.stringify(record.headers);
        this.stmt.insertRecord.run(record.offset, record.epoch, record.timestamp, record.key, record.value, headersText);
        this.leoValue++;
      }
      for (const commit of commits) this.stmt.upsertGroupOffset.run(commit.group, commit.offset, commit.generation);
      if (hw !== undefined) this.writeHw(hw);
    });

    this.truncateTx = this.db.transaction((toOffset: number) => {
      this.stmt.deleteRecordsFrom.run(toOffset);
      this.stmt.deleteEpochsFrom.run(toOffset);
      if (this.checkpointedHw > toOffset) this.writeHw(toOffset);
    });
  }

  static open(file: string, durability: Durability): PartitionStore {
    return new PartitionStore(file, durability);
  }

  /** Log end offset: the offset the next record gets. */
  get leo(): number {
    return this.leoValue;
  }

  get logStartOffset(): number {
    return this.logStartValue;
  }

  /** The high watermark last checkpointed (restored on open as min(checkpoint, LEO)). */
  get hwCheckpoint(): number {
    return this.checkpointedHw;
  }

  /** The epoch of the last record, undefined for an empty log. */
  get lastEpoch(): number | undefined {
    return this.epochHistory.length === 0 ? undefined : this.epochHistory[this.epochHistory.length - 1][0];
  }

  /** The epoch that wrote `offset` (undefined outside the log). */
  epochAt(offset: number): number | undefined {
    if (offset < this.logStartValue || offset >= this.leoValue) return undefined;
    let found: number | undefined;
    for (const [epoch, start] of this.epochHistory) {
      if (start > offset) break;
      found = epoch;
    }
    return found;
  }

  /** A copy of the epoch history, `[epoch, startOffset]` pairs in order. */
  epochs(): EpochEntry[] {
    return this.epochHistory.map((entry): EpochEntry => [entry[0], entry[1]]);
  }

  /**
   * Appends `records` (which must start at the LEO, in offset order, with non-decreasing epochs),
   * stores `commits`, and checkpoints `hw`, all in ONE transaction.
   */
  append(records: StoredRecord[], commits: GroupOffset[] = [], hw?: number): void {
    this.assertOpen();
    if (hw !== undefined) assert(hw <= this.leoValue + records.length, `hw ${hw} beyond LEO after append`);
    const leoBefore = this.leoValue;
    const epochsBefore = this.epochHistory.length;
    try {
      this.appendTx(records, commits, hw);
    } catch (error) {
      // The transaction rolled back: undo the in-memory view too.
      this.leoValue = leoBefore;
      this.epochHistory.length = epochsBefore;
      throw error;
    }
  }

  /** Records from `fromOffset` up to `endOffset` (exclusive), at most maxRecords and about maxBytes (at least one). */
  readForFetch(fromOffset: number, limits: ReadLimits): { records: FetchedRecord[]; bytes: number } {
    return this.readBounded(this.stmt.readForFetch, fromOffset, limits, (row, headers) => ({
      offset: row.offset,
      key: row.key,
      value: row.value,
      headers,
      timestamp: row.timestamp,
    }));
  }

  /** Like readForFetch, with each record's epoch, for pushing to a secondary. */
  readForReplication(fromOffset: number, limits: ReadLimits): StoredRecord[] {
    return this.readBounded<RecordRow & { epoch: number }, StoredRecord>(this.stmt.readForReplication, fromOffset, limits, (row, headers) => ({
      offset: row.offset,
      epoch: row.epoch,
      timestamp: row.timestamp,
      key: row.key,
      value: row.value,
      headers,
    })).records;
  }

  /** The one bounded read both paths share: stops at `endOffset`, the LEO, maxRecords or about maxBytes. */
  private readBounded<R extends RecordRow, T>(
    statement: Stmt,
    fromOffset: number,
    limits: ReadLimits,
    toRecord: (row: R, headers: Record<string, string> | null) => T,
  ): { records: T[]; bytes: number } {
    this.assertOpen();
    const end = Math.min(limits.endOffset, this.leoValue);
    if (fromOffset >= end || limits.maxRecords <= 0) return { records: [], bytes: 0 };
    const records: T[] = [];
    let bytes = 0;
    for (const row of statement.iterate(fromOffset, end, limits.maxRecords) as Iterable<R>) {
      const size = recordBytes(row, row.headers);
      if (records.length > 0 && bytes + size > limits.maxBytes) break;
      bytes += size;
      records.push(toRecord(row, row.headers === null ? null : (JSON.parse(row.headers) as Record<string, string>)));
    }
    return { records, bytes };
  }

  /**
   * Deletes every record at or above `toOffset` and the epochs that started there, so the
   * epoch history describes the remaining log. The HW checkpoint follows the LEO down.
   */
  truncate(toOffset: number): void {
    this.assertOpen();
    assert(toOffset >= this.logStartValue, `truncate to ${toOffset} below log start ${this.logStartValue}`);
    if (toOffset >= this.leoValue) return;
    this.truncateTx(toOffset);
    this.leoValue = toOffset;
    this.epochHistory = this.epochHistory.filter((entry) => entry[1] < toOffset);
  }

  /** Checkpoints the high watermark (restored on reopen as min(checkpoint, LEO)). */
  checkpointHw(hw: number): void {
    this.assertOpen();
    assert(hw <= this.leoValue, `hw ${hw} > leo ${this.leoValue}`);
    if (hw !== this.checkpointedHw) this.writeHw(hw);
  }

  groupOffset(group: string): GroupOffset | undefined {
    this.assertOpen();
    const row = this.stmt.selectGroupOffset.get(group) as { offset: number; generation: number } | undefined;
    return row === undefined ? undefined : { group, offset: row.offset, generation: row.generation };
  }

  groupOffsets(): GroupOffset[] {
    this.assertOpen();
    return (this.stmt.selectGroupOffsets.all() as Array<{ group_id: string; offset: number; generation: number }>).map(
      (row) => ({ group: row.group_id, offset: row.offset, generation: row.generation }),
    );
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  private writeHw(hw: number): void {
    this.stmt.upsertMeta.run(META_HW, String(hw));
    this.checkpointedHw = hw;
  }

  private readMeta(key: string): string | undefined {
    const row = this.stmt.selectMeta.get(key) as { value: string } | undefined;
    return row?.value;
  }

  private assertOpen(): void {
    assert(!this.closed, `partition store ${this.file} is closed`);
  }
}

/** The database file of one replica. Topic names are validated ([A-Za-z0-9._-], not "." or ".."). */
export function partitionFile(dataDir: string, topic: string, partition: number): string {
  return path.join(dataDir, topic, `${partition}.db`);
}

/** Removes a replica's database and its WAL files (the store must be closed). */
export function deletePartitionFiles(file: string): void {
  for (const suffix of ['', '-wal', '-shm']) fs.rmSync(file + suffix, { force: true });
  const dir = path.dirname(file);
  try {
    if (fs.readdirSync(dir).length === 0) fs.rmdirSync(dir);
  } catch {
    // The topic directory is shared by partitions; leaving it is harmless.
  }
}

/** Every replica database under `dataDir`, as {topic, partition, file}. */
export function listPartitionFiles(dataDir: string): Array<{ topic: string; partition: number; file: string }> {
  const found: Array<{ topic: string; partition: number; file: string }> = [];
  if (!fs.existsSync(dataDir)) return found;
  for (const topicEntry of fs.readdirSync(dataDir, { withFileTypes: true })) {
    if (!topicEntry.isDirectory()) continue;
    for (const name of fs.readdirSync(path.join(dataDir, topicEntry.name))) {
      const match = /^(\d+)\.db$/.exec(name);
      if (match) {
        found.push({ topic: topicEntry.name, partition: Number(match[1]), file: path.join(dataDir, topicEntry.name, name) });
      }
    }
  }
  return found;
}
