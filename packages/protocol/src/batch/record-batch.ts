/**
 * Kafka's RecordBatch v2 (magic 2), byte for byte: the one batch format of Tessera on the
 * wire, on disk and in replication. Layout (big-endian):
 *
 *   0 baseOffset int64        8 batchLength int32        12 partitionLeaderEpoch int32
 *  16 magic int8 (2)         17 crc uint32 (CRC-32C of bytes 21 .. end)
 *  21 attributes int16       23 lastOffsetDelta int32   27 baseTimestamp int64
 *  35 maxTimestamp int64     43 producerId int64        51 producerEpoch int16
 *  53 baseSequence int32     57 recordCount int32       61 records
 *
 * and each record: length varint, attributes int8, timestampDelta varlong, offsetDelta
 * varint, keyLength varint (-1: null), key, valueLength varint (-1: null), value,
 * headerCount varint, then per header keyLength varint, key (UTF-8), valueLength varint
 * (-1: null), value. baseOffset and partitionLeaderEpoch lie outside the CRC, so a leader
 * assigns offsets by rewriting them in place and the producer's CRC stays valid.
 *
 * Compression is not implemented: a batch whose attributes name a codec is refused with a
 * clear error rather than stored as bytes nobody can read.
 */
import { crc32c } from '@node-rs/crc32';
import { TesseraError } from '../errors.js';
import { assert } from '../invariant.js';
import { MAX_HEADERS_PER_RECORD } from '../limits.js';
import { malformed, VarintReader, varintSize, writeVarint } from './varint.js';

export const BATCH_MAGIC = 2;
/** Bytes before the first record. */
export const BATCH_HEADER_BYTES = 61;
/** baseOffset and batchLength: the bytes `batchLength` does not count. */
const LOG_OVERHEAD_BYTES = 12;
const CRC_AT = 17;
const ATTRIBUTES_AT = 21;

const COMPRESSION_MASK = 0x07;
const TRANSACTIONAL_FLAG = 0x10;
const CONTROL_FLAG = 0x20;
/** Kafka's codec ids, so an error can name the one a batch asked for. */
const CODEC_NAMES: Record<number, string> = { 0: 'none', 1: 'gzip', 2: 'snappy', 3: 'lz4', 4: 'zstd' };

const TWO_POW_32 = 2 ** 32;

export interface BatchHeaderInput {
  key: string;
  value: Uint8Array | null;
}

export interface BatchRecordInput {
  key: Uint8Array | null;
  value: Uint8Array | null;
  headers?: BatchHeaderInput[];
  /** Milliseconds since the Unix epoch. */
  timestamp: number;
}

export interface EncodeBatchOptions {
  baseOffset?: number;
  /** -1 until a leader stamps its epoch. */
  partitionLeaderEpoch?: number;
  /** -1: no idempotent producer. */
  producerId?: number;
  producerEpoch?: number;
  baseSequence?: number;
}

export interface RecordBatchHeader {
  baseOffset: number;
  batchLength: number;
  partitionLeaderEpoch: number;
  magic: number;
  crc: number;
  attributes: number;
  lastOffsetDelta: number;
  baseTimestamp: number;
  maxTimestamp: number;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  recordCount: number;
}

export interface DecodedRecord {
  offset: number;
  timestamp: number;
  /** Views of the decoded buffer (no copy): keep a copy if you keep a small part of a large fetch. */
  key: Buffer | null;
  value: Buffer | null;
  headers: Array<{ key: string; value: Buffer | null }>;
}

/** Encodes `records` (at least one) as one uncompressed batch. */
export function encodeRecordBatch(records: readonly BatchRecordInput[], options: EncodeBatchOptions = {}): Buffer {
  if (records.length === 0) throw new Error('a record batch holds at least one record');
  // The exact size first, so the batch is written into one allocation of its size.
  const baseTimestamp = records[0]!.timestamp;
  let total = BATCH_HEADER_BYTES;
  for (let i = 0; i < records.length; i++) total += recordSize(recordBodySize(records[i]!, records[i]!.timestamp - baseTimestamp, i));
  const builder = new RecordBatchBuilder(total);
  for (const record of records) builder.append(record);
  const buf = builder.build(options);
  assert(buf.length === total, 'batch size computed before writing matches the bytes written');
  return buf;
}

/**
 * Writes records into one batch as they arrive (what Kafka's producer does with its
 * MemoryRecordsBuilder): a producer holds a waiting record's bytes, not the record, and
 * `build()` only adds the header and the CRC. The buffer grows by doubling; a builder built
 * takes no more records.
 */
export class RecordBatchBuilder {
  private buf: Buffer;
  /** Where the next record goes: the batch so far, header included. */
  private end = BATCH_HEADER_BYTES;
  private count = 0;
  private baseTimestamp = 0;
  private maxTimestamp = 0;
  private built = false;

  /** `capacityBytes`: the buffer to start with (a good guess saves copies as it grows). */
  constructor(capacityBytes = 16 * 1024) {
    this.buf = Buffer.allocUnsafe(Math.max(capacityBytes, BATCH_HEADER_BYTES));
  }

  get recordCount(): number {
    return this.count;
  }

  /** Bytes of the batch as it would be built now, header included. */
  get sizeBytes(): number {
    return this.end;
  }

  /**
   * Appends `record` as the next record, unless the batch holds records already and would
   * then take more than `maxBatchBytes`: false, and nothing is written.
   */
  append(record: BatchRecordInput, maxBatchBytes = Infinity): boolean {
    assert(!this.built, 'a built batch takes no more records');
    if (!Number.isSafeInteger(record.timestamp)) throw new Error(`record timestamp ${record.timestamp} is not an integer`);
    if (this.count === 0) this.baseTimestamp = this.maxTimestamp = record.timestamp;
    const timestampDelta = record.timestamp - this.baseTimestamp;
    const body = recordBodySize(record, timestampDelta, this.count);
    const end = this.end + recordSize(body);
    if (this.count > 0 && end > maxBatchBytes) return false;
    if (end > this.buf.length) this.grow(end);
    const at = writeRecord(this.buf, this.end, record, body, timestampDelta, this.count);
    assert(at === end, 'record size computed before writing matches the bytes written');
    this.end = end;
    this.count++;
    if (record.timestamp > this.maxTimestamp) this.maxTimestamp = record.timestamp;
    return true;
  }

  /** The batch: header and CRC written, a view of exactly its bytes. */
  build(options: EncodeBatchOptions = {}): Buffer {
    if (this.count === 0) throw new Error('a record batch holds at least one record');
    this.built = true;
    const buf = this.buf.subarray(0, this.end);
    writeInt64(buf, 0, options.baseOffset ?? 0);
    buf.writeInt32BE(this.end - LOG_OVERHEAD_BYTES, 8);
    buf.writeInt32BE(options.partitionLeaderEpoch ?? -1, 12);
    buf.writeInt8(BATCH_MAGIC, 16);
    buf.writeInt16BE(0, ATTRIBUTES_AT);
    buf.writeInt32BE(this.count - 1, 23);
    writeInt64(buf, 27, this.baseTimestamp);
    writeInt64(buf, 35, this.maxTimestamp);
    writeInt64(buf, 43, options.producerId ?? -1);
    buf.writeInt16BE(options.producerEpoch ?? -1, 51);
    buf.writeInt32BE(options.baseSequence ?? -1, 53);
    buf.writeInt32BE(this.count, 57);
    buf.writeUInt32BE(crc32c(buf.subarray(ATTRIBUTES_AT)), CRC_AT);
    return buf;
  }

  private grow(atLeast: number): void {
    const grown = Buffer.allocUnsafe(Math.max(atLeast, 2 * this.buf.length));
    this.buf.copy(grown, 0, 0, this.end);
    this.buf = grown;
  }
}

/** Bytes of a record's body (everything after its length varint) at `offsetDelta` in its batch. */
function recordBodySize(record: BatchRecordInput, timestampDelta: number, offsetDelta: number): number {
  let size = 1 + varintSize(timestampDelta) + varintSize(offsetDelta);
  size += bytesFieldSize(record.key) + bytesFieldSize(record.value);
  const headers = record.headers ?? [];
  size += varintSize(headers.length);
  for (const header of headers) {
    const keyBytes = Buffer.byteLength(header.key, 'utf8');
    size += varintSize(keyBytes) + keyBytes + bytesFieldSize(header.value);
  }
  return size;
}

/** Bytes of a record with a body of `bodySize`: its length varint, then the body. */
function recordSize(bodySize: number): number {
  return varintSize(bodySize) + bodySize;
}

/** Writes one record (length varint, then body) at `at`; returns the position after it. */
function writeRecord(buf: Buffer, at: number, record: BatchRecordInput, bodySize: number, timestampDelta: number, offsetDelta: number): number {
  at = writeVarint(buf, at, bodySize);
  buf[at++] = 0; // record attributes: unused in v2
  at = writeVarint(buf, at, timestampDelta);
  at = writeVarint(buf, at, offsetDelta);
  at = writeBytesField(buf, at, record.key);
  at = writeBytesField(buf, at, record.value);
  const headers = record.headers ?? [];
  at = writeVarint(buf, at, headers.length);
  for (const header of headers) {
    at = writeVarint(buf, at, Buffer.byteLength(header.key, 'utf8'));
    at += buf.write(header.key, at, 'utf8');
    at = writeBytesField(buf, at, header.value);
  }
  return at;
}

/** Reads the 61-byte header of the batch at `at`, without checking the CRC or reading records. */
export function readBatchHeader(buf: Buffer, at = 0): RecordBatchHeader {
  if (at < 0 || at + BATCH_HEADER_BYTES > buf.length) {
    throw malformed(`truncated batch: ${buf.length - at} bytes left, a batch header takes ${BATCH_HEADER_BYTES}`);
  }
  return {
    baseOffset: readInt64(buf, at, 'baseOffset'),
    batchLength: buf.readInt32BE(at + 8),
    partitionLeaderEpoch: buf.readInt32BE(at + 12),
    magic: buf.readInt8(at + 16),
    crc: buf.readUInt32BE(at + CRC_AT),
    attributes: buf.readInt16BE(at + ATTRIBUTES_AT),
    lastOffsetDelta: buf.readInt32BE(at + 23),
    baseTimestamp: readInt64(buf, at + 27, 'baseTimestamp'),
    maxTimestamp: readInt64(buf, at + 35, 'maxTimestamp'),
    producerId: readInt64(buf, at + 43, 'producerId'),
    producerEpoch: buf.readInt16BE(at + 51),
    baseSequence: buf.readInt32BE(at + 53),
    recordCount: buf.readInt32BE(at + 57),
  };
}

/** Bytes the whole batch takes, header included. */
export function batchSize(header: Pick<RecordBatchHeader, 'batchLength'>): number {
  return LOG_OVERHEAD_BYTES + header.batchLength;
}

/** The offset of the batch's last record. */
export function lastOffsetOf(header: Pick<RecordBatchHeader, 'baseOffset' | 'lastOffsetDelta'>): number {
  return header.baseOffset + header.lastOffsetDelta;
}

/**
 * Checks the batch at `at` completely: magic, lengths, CRC, codec, and that its records
 * are well formed and number `recordCount` with offset deltas 0, 1, 2, … Throws
 * INVALID_REQUEST naming the problem; returns the header when the batch is sound.
 */
export function validateBatch(buf: Buffer, at = 0, limits: { maxValueBytes?: number } = {}): RecordBatchHeader {
  const header = checkedHeader(buf, at);
  const crc = crc32c(buf.subarray(at + ATTRIBUTES_AT, at + batchSize(header)));
  if (crc !== header.crc) {
    throw malformed(`batch CRC mismatch: the batch says ${hex(header.crc)}, its bytes give ${hex(crc)}`);
  }
  const maxTimestamp = readRecords(buf, at, header, null, limits.maxValueBytes ?? Number.MAX_SAFE_INTEGER);
  // Retention by time and lookups by time trust this field of the header: it must be the records'.
  if (header.recordCount > 0 && maxTimestamp !== header.maxTimestamp) {
    throw malformed(`batch maxTimestamp ${header.maxTimestamp} is not the largest timestamp of its records (${maxTimestamp})`);
  }
  return header;
}

/** Decodes the batch at `at` (checking its structure but not its CRC: validate what you did not write). */
export function decodeRecordBatch(buf: Buffer, at = 0): { header: RecordBatchHeader; records: DecodedRecord[] } {
  const header = checkedHeader(buf, at);
  const records: DecodedRecord[] = [];
  readRecords(buf, at, header, records, Number.MAX_SAFE_INTEGER);
  return { header, records };
}

/**
 * The batches of `buf`, which holds whole batches back to back (a frame part, a stored
 * range). Checks only each header's lengths; a partial batch at the end is an error.
 */
export function* iterateBatches(buf: Buffer): Generator<{ at: number; header: RecordBatchHeader }> {
  let at = 0;
  while (at < buf.length) {
    const header = readBatchHeader(buf, at);
    const size = batchSize(header);
    if (header.batchLength < BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES || at + size > buf.length) {
      throw malformed(`truncated batch at byte ${at}: it says ${size} bytes, ${buf.length - at} are left`);
    }
    yield { at, header };
    at += size;
  }
}

/** The largest sequence number; the one after it is 0 (Kafka's wrap-around of int32 sequences). */
export const MAX_SEQUENCE = 0x7fffffff;

/** The sequence `increment` after `sequence`, wrapping past MAX_SEQUENCE to 0 (as Kafka does). */
export function addSequence(sequence: number, increment: number): number {
  return sequence > MAX_SEQUENCE - increment ? increment - (MAX_SEQUENCE - sequence) - 1 : sequence + increment;
}

/** Rewrites the batch's baseOffset in place; the CRC does not cover it. */
export function setBaseOffset(buf: Buffer, at: number, baseOffset: number): void {
  writeInt64(buf, at, baseOffset);
}

/** Rewrites the batch's partitionLeaderEpoch in place; the CRC does not cover it. */
export function setPartitionLeaderEpoch(buf: Buffer, at: number, epoch: number): void {
  buf.writeInt32BE(epoch, at + 12);
}

/** The header, after the checks every reader needs before it walks the records. */
function checkedHeader(buf: Buffer, at: number): RecordBatchHeader {
  const header = readBatchHeader(buf, at);
  if (header.magic !== BATCH_MAGIC) throw malformed(`unsupported batch magic ${header.magic} (only 2 is supported)`);
  if (header.batchLength < BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) {
    throw malformed(`invalid batch length ${header.batchLength}`);
  }
  if (at + batchSize(header) > buf.length) {
    throw malformed(`truncated batch: it says ${batchSize(header)} bytes, ${buf.length - at} are left`);
  }
  const codec = header.attributes & COMPRESSION_MASK;
  if (codec !== 0) {
    throw malformed(`unsupported compression codec ${codec} (${CODEC_NAMES[codec] ?? 'unknown'}): send batches uncompressed`);
  }
  if (header.attributes & CONTROL_FLAG) throw malformed('control batches are not supported');
  if (header.attributes & TRANSACTIONAL_FLAG) throw malformed('transactional batches are not supported');
  if (header.recordCount < 1) throw malformed(`batch holds ${header.recordCount} records, at least 1 is needed`);
  if (header.lastOffsetDelta !== header.recordCount - 1) {
    throw malformed(`batch lastOffsetDelta ${header.lastOffsetDelta} does not match its ${header.recordCount} records`);
  }
  return header;
}

/**
 * Walks the records of a checked batch, proving each one fits its length exactly and the
 * records end where the batch does. With `out`, decodes them into it. Returns the largest
 * record timestamp.
 */
function readRecords(buf: Buffer, at: number, header: RecordBatchHeader, out: DecodedRecord[] | null, maxValueBytes: number): number {
  const end = at + batchSize(header);
  const reader = new VarintReader(buf, at + BATCH_HEADER_BYTES, end);
  let maxTimestampDelta = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < header.recordCount; i++) {
    const length = reader.varint('record length');
    if (length < 1 || reader.at + length > end) throw malformed(`record ${i}: length ${length} does not fit the batch`);
    const recordEnd = reader.at + length;
    const record = new VarintReader(buf, reader.at, recordEnd);
    record.skip(1, 'record attributes');
    const timestampDelta = record.varlong('timestampDelta');
    if (timestampDelta > maxTimestampDelta) maxTimestampDelta = timestampDelta;
    const offsetDelta = record.varint('offsetDelta');
    if (offsetDelta !== i) throw malformed(`record ${i}: offsetDelta is ${offsetDelta}`);
    const key = readBytesField(record, 'key');
    const value = readBytesField(record, 'value');
    if (value !== null && value.length > maxValueBytes) {
      throw new TesseraError('PAYLOAD_TOO_LARGE', `record ${i}: value of ${value.length} bytes is larger than ${maxValueBytes}`);
    }
    const headerCount = record.varint('header count');
    if (headerCount < 0 || headerCount > MAX_HEADERS_PER_RECORD) {
      throw malformed(`record ${i}: ${headerCount} headers (at most ${MAX_HEADERS_PER_RECORD})`);
    }
    const headers: Array<{ key: string; value: Buffer | null }> = [];
    for (let h = 0; h < headerCount; h++) {
      const keyLength = record.varint('header key length');
      if (keyLength < 0) throw malformed(`record ${i}: header ${h} has no key`);
      const headerKey = record.bytes(keyLength, 'header key');
      const headerValue = readBytesField(record, 'header value');
      if (out) headers.push({ key: headerKey.toString('utf8'), value: headerValue });
    }
    if (record.at !== recordEnd) throw malformed(`record ${i}: ${recordEnd - record.at} bytes beyond its fields`);
    reader.at = recordEnd;
    if (out) {
      out.push({
        offset: header.baseOffset + offsetDelta,
        timestamp: header.baseTimestamp + timestampDelta,
        key,
        value,
        headers,
      });
    }
  }
  if (reader.at !== end) throw malformed(`batch: ${end - reader.at} bytes after its ${header.recordCount} records`);
  return header.baseTimestamp + maxTimestampDelta;
}

function readBytesField(reader: VarintReader, what: string): Buffer | null {
  const length = reader.varint(`${what} length`);
  if (length < -1) throw malformed(`invalid ${what} length ${length}`);
  return length === -1 ? null : reader.bytes(length, what);
}

function bytesFieldSize(bytes: Uint8Array | null): number {
  return bytes === null ? 1 : varintSize(bytes.length) + bytes.length;
}

function writeBytesField(buf: Buffer, at: number, bytes: Uint8Array | null): number {
  if (bytes === null) return writeVarint(buf, at, -1);
  at = writeVarint(buf, at, bytes.length);
  buf.set(bytes, at);
  return at + bytes.length;
}

/** Writes a safe integer as a big-endian int64 (two's complement for negatives). */
function writeInt64(buf: Buffer, at: number, value: number): void {
  if (!Number.isSafeInteger(value)) throw new Error(`int64 field value ${value} is not a safe integer`);
  const high = Math.floor(value / TWO_POW_32);
  buf.writeInt32BE(high, at);
  buf.writeUInt32BE(value - high * TWO_POW_32, at + 4);
}

function readInt64(buf: Buffer, at: number, what: string): number {
  const value = buf.readInt32BE(at) * TWO_POW_32 + buf.readUInt32BE(at + 4);
  if (!Number.isSafeInteger(value)) throw malformed(`batch ${what} out of the supported range`);
  return value;
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}
