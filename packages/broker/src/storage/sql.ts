/**
 * Every SQL statement of the broker's storage, in one place: the schema of the broker's one
 * database (`DATA/broker.db`) and the statements run against it, plus the few reads of the
 * former per-partition layout that migration needs.
 *
 * Tables of `broker.db`:
 * - batches(topic, partition, base_offset, last_offset, epoch, max_timestamp, data): the logs,
 *   one row per RecordBatch exactly as it travels on the wire (Kafka RecordBatch v2 bytes).
 * - epochs(topic, partition, epoch, start_offset): each log's epoch history.
 * - group_offsets(topic, partition, group_id, offset, generation): committed offsets.
 * - partitions(topic, partition, hw, log_start_offset): every log this broker holds, with its
 *   HW checkpoint.
 * - producers(topic, partition, producer_id, epoch, last_update_ms, batches): the idempotent
 *   producers' state of each log (their epoch, the spans of their last batches in a few bytes
 *   each (encodeSpans) and, for a producer id of an idempotency key, the key; see producers/),
 *   written in the transaction of the batches that changed it.
 * - meta(key, value): the schema version.
 */

export const SCHEMA_VERSION = 4;

const PRODUCERS_TABLE = `
  CREATE TABLE IF NOT EXISTS producers (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    producer_id INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    last_update_ms INTEGER NOT NULL,
    -- Bytes (encodeSpans); a database made before schema 4 declares TEXT, which keeps bytes as they are.
    batches BLOB NOT NULL,
    idempotency_key TEXT,
    PRIMARY KEY (topic, partition, producer_id)
  );
`;

/**
 * MIGRATIONS[v] brings a database of schema v to v + 1 (run in one transaction at open).
 * - Version 2 had no producer state: its logs hold no batch with a producer id, so an empty table is right.
 * - Version 3 stored a producer's spans as JSON text; version 4 writes them as bytes and still
 *   reads the text of rows written before. Nothing is rewritten: the version only changes so
 *   that a broker of schema 3, which cannot read the bytes, refuses the database at start.
 */
export const MIGRATIONS: Readonly<Record<number, string>> = {
  2: PRODUCERS_TABLE,
  3: '',
};

export const SCHEMA = `
  CREATE TABLE IF NOT EXISTS batches (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    base_offset INTEGER NOT NULL,
    last_offset INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    max_timestamp INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (topic, partition, base_offset)
  );
  CREATE TABLE IF NOT EXISTS epochs (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    start_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition, epoch)
  );
  CREATE TABLE IF NOT EXISTS group_offsets (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    group_id TEXT NOT NULL,
    offset INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (topic, partition, group_id)
  );
  CREATE TABLE IF NOT EXISTS partitions (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    hw INTEGER NOT NULL,
    log_start_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
  );
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
${PRODUCERS_TABLE}`;

export const SQL = {
  insertBatch:
    'INSERT INTO batches (topic, partition, base_offset, last_offset, epoch, max_timestamp, data) VALUES (?, ?, ?, ?, ?, ?, ?)',
  firstBatch: 'SELECT base_offset FROM batches WHERE topic = ? AND partition = ? ORDER BY base_offset ASC LIMIT 1',
  lastBatch: 'SELECT last_offset FROM batches WHERE topic = ? AND partition = ? ORDER BY base_offset DESC LIMIT 1',
  /** Whole batches from the one holding @from (or the first after it) below @end, in offset order. */
  readBatches:
    'SELECT base_offset, last_offset, epoch, data FROM batches WHERE topic = @topic AND partition = @partition ' +
    'AND base_offset >= COALESCE((SELECT MAX(base_offset) FROM batches WHERE topic = @topic AND partition = @partition AND base_offset <= @from), @from) ' +
    'AND base_offset < @end ORDER BY base_offset',
  /** The batch holding an offset (for a truncation inside it). */
  batchAt:
    'SELECT base_offset, last_offset, epoch, max_timestamp, data FROM batches WHERE topic = ? AND partition = ? ' +
    'AND base_offset <= ? ORDER BY base_offset DESC LIMIT 1',
  /**
   * The first batch (in offset order) from @from below @end holding a record at or after @ts: its
   * max_timestamp is at least @ts. A scan in offset order within the partition, stopping at the
   * first match (timestamps are the producers' clocks, so they need not grow with offsets).
   */
  firstBatchAtTime:
    'SELECT base_offset, last_offset, epoch, max_timestamp, data FROM batches WHERE topic = @topic AND partition = @partition ' +
    'AND last_offset >= @from AND base_offset < @end AND max_timestamp >= @ts ORDER BY base_offset LIMIT 1',
  deleteBatchesFrom: 'DELETE FROM batches WHERE topic = ? AND partition = ? AND base_offset >= ?',
  /**
   * Retention: the oldest batches wholly below @below (the log start), at most @limit of them,
   * with their sizes, so a pass deletes a bounded range and knows the bytes it frees.
   */
  batchesBelow:
    'SELECT base_offset, last_offset, length(data) AS bytes FROM batches WHERE topic = @topic AND partition = @partition ' +
    // base_offset < @below bounds the primary-key range (batches are gap-free, so it holds for
    // every batch wholly below): nothing below is one seek, not a scan of the partition.
    'AND base_offset < @below AND last_offset < @below ORDER BY base_offset LIMIT @limit',
  /** Retention: the oldest batches from the one holding @from, at most @limit, with what retention decides on. */
  batchesFrom:
    'SELECT base_offset, last_offset, max_timestamp, length(data) AS bytes FROM batches WHERE topic = @topic AND partition = @partition ' +
    'AND last_offset >= @from ORDER BY base_offset LIMIT @limit',
  /** Deletes the batches whose base offset is in [?, ?] (a range read with batchesBelow). */
  deleteBatchRange: 'DELETE FROM batches WHERE topic = ? AND partition = ? AND base_offset >= ? AND base_offset <= ?',
  /** The bytes stored for one log (once on open, and after a truncation). */
  logBytes: 'SELECT COALESCE(SUM(length(data)), 0) AS bytes FROM batches WHERE topic = ? AND partition = ?',
  deleteBatches: 'DELETE FROM batches WHERE topic = ? AND partition = ?',
  insertEpoch: 'INSERT OR REPLACE INTO epochs (topic, partition, epoch, start_offset) VALUES (?, ?, ?, ?)',
  selectEpochs: 'SELECT epoch, start_offset FROM epochs WHERE topic = ? AND partition = ? ORDER BY epoch',
  deleteEpochsFrom: 'DELETE FROM epochs WHERE topic = ? AND partition = ? AND start_offset >= ?',
  deleteEpochs: 'DELETE FROM epochs WHERE topic = ? AND partition = ?',
  upsertGroupOffset:
    'INSERT INTO group_offsets (topic, partition, group_id, offset, generation) VALUES (?, ?, ?, ?, ?) ' +
    'ON CONFLICT(topic, partition, group_id) DO UPDATE SET offset = excluded.offset, generation = excluded.generation',
  selectGroupOffset: 'SELECT offset, generation FROM group_offsets WHERE topic = ? AND partition = ? AND group_id = ?',
  selectGroupOffsets: 'SELECT group_id, offset, generation FROM group_offsets WHERE topic = ? AND partition = ? ORDER BY group_id',
  deleteGroupOffsets: 'DELETE FROM group_offsets WHERE topic = ? AND partition = ?',
  upsertPartition:
    'INSERT INTO partitions (topic, partition, hw, log_start_offset) VALUES (?, ?, ?, ?) ' +
    'ON CONFLICT(topic, partition) DO UPDATE SET hw = excluded.hw, log_start_offset = excluded.log_start_offset',
  selectPartition: 'SELECT hw, log_start_offset FROM partitions WHERE topic = ? AND partition = ?',
  selectPartitions: 'SELECT topic, partition FROM partitions ORDER BY topic, partition',
  deletePartition: 'DELETE FROM partitions WHERE topic = ? AND partition = ?',
  upsertProducer:
    'INSERT INTO producers (topic, partition, producer_id, epoch, last_update_ms, batches, idempotency_key) VALUES (?, ?, ?, ?, ?, ?, ?) ' +
    'ON CONFLICT(topic, partition, producer_id) DO UPDATE SET epoch = excluded.epoch, last_update_ms = excluded.last_update_ms, ' +
    'batches = excluded.batches, idempotency_key = excluded.idempotency_key',
  deleteProducer: 'DELETE FROM producers WHERE topic = ? AND partition = ? AND producer_id = ?',
  selectProducers: 'SELECT producer_id, epoch, last_update_ms, batches, idempotency_key FROM producers WHERE topic = ? AND partition = ?',
  deleteProducers: 'DELETE FROM producers WHERE topic = ? AND partition = ?',
  upsertMeta: 'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
  selectMeta: 'SELECT value FROM meta WHERE key = ?',
} as const;

/** Reads of a database of the former layout (`DATA/<topic>/<partition>.db`, one per replica), for migration. */
export const LEGACY_SQL = {
  tables: "SELECT name FROM sqlite_master WHERE type = 'table'",
  records: 'SELECT offset, epoch, timestamp, key, value, headers FROM records ORDER BY offset',
  epochs: 'SELECT epoch, start_offset FROM epochs ORDER BY epoch',
  groupOffsets: 'SELECT group_id, offset, generation FROM group_offsets ORDER BY group_id',
  meta: 'SELECT key, value FROM meta',
} as const;

export const META_SCHEMA_VERSION = 'schema_version';
