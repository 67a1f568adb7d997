// Proves the RecordBatch v2 codec is Kafka's format byte for byte: kafkajs (an independent
// implementation, test-only) decodes what we encode and we decode what it encodes, CRC
// included; and that every malformed batch is refused with a clear INVALID_REQUEST.
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TesseraError } from '../errors.js';
import {
  BATCH_HEADER_BYTES,
  batchSize,
  decodeRecordBatch,
  encodeRecordBatch,
  iterateBatches,
  readBatchHeader,
  RecordBatchBuilder,
  setBaseOffset,
  setPartitionLeaderEpoch,
  validateBatch,
  type BatchRecordInput,
} from './record-batch.js';

const require = createRequire(import.meta.url);
/* eslint-disable @typescript-eslint/no-require-imports */
const { RecordBatch: kafkaRecordBatch } = require('kafkajs/src/protocol/recordBatch/v0/index.js') as {
  RecordBatch: (options: Record<string, unknown>) => Promise<{ buffer: Buffer }>;
};
const kafkaRecord = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (
  options: Record<string, unknown>,
) => unknown;
const kafkaBatchDecoder = require('kafkajs/src/protocol/recordBatch/v0/decoder.js') as (decoder: unknown) => Promise<{
  firstOffset: string;
  partitionLeaderEpoch: number;
  lastOffsetDelta: number;
  firstTimestamp: string;
  maxTimestamp: string;
  producerId: string;
  producerEpoch: number;
  firstSequence: number;
  records: Array<{ offset: string; timestamp: string; key: Buffer | null; value: Buffer | null; headers: Record<string, Buffer | null> }>;
}>;
const KafkaDecoder = require('kafkajs/src/protocol/decoder.js') as new (buffer: Buffer) => unknown;
const kafkaCrc32c = require('kafkajs/src/protocol/recordBatch/crc32C/index.js') as (buffer: Buffer) => number;
const kafkaLong = require('kafkajs/src/utils/long.js') as { fromValue: (value: number | string) => unknown };

function sampleRecords(): BatchRecordInput[] {
  const t = 1_700_000_000_000;
  return [
    { key: Buffer.from('k1'), value: Buffer.from('hello'), timestamp: t, headers: [{ key: 'h', value: Buffer.from('v') }] },
    { key: null, value: Buffer.from([0, 0xff, 0xfe, 0x00, 0xc3]), timestamp: t + 5 },
    { key: Buffer.alloc(0), value: null, timestamp: t - 3, headers: [{ key: 'ünï', value: null }] },
    { key: randomBytes(300), value: randomBytes(70_000), timestamp: t + 2 ** 35 },
  ];
}

function invalid(fn: () => unknown): TesseraError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(TesseraError);
    expect((error as TesseraError).code).toBe('INVALID_REQUEST');
    return error as TesseraError;
  }
  throw new Error('expected the batch to be refused');
}

describe('encodeRecordBatch against kafkajs', () => {
  it('kafkajs decodes our batch to the same records, and its CRC-32C matches ours', async () => {
    const records = sampleRecords();
    const buf = encodeRecordBatch(records, { baseOffset: 2 ** 40 + 7, partitionLeaderEpoch: 9, producerId: 12345, producerEpoch: 3, baseSequence: 77 });

    const header = readBatchHeader(buf);
    expect(header.crc).toBe(kafkaCrc32c(buf.subarray(21)));
    const decoded = await kafkaBatchDecoder(new KafkaDecoder(buf));
    expect(decoded.firstOffset).toBe(String(2 ** 40 + 7));
    expect(decoded.partitionLeaderEpoch).toBe(9);
    expect(decoded.producerId).toBe('12345');
    expect(decoded.producerEpoch).toBe(3);
    expect(decoded.firstSequence).toBe(77);
    expect(decoded.lastOffsetDelta).toBe(3);
    expect(decoded.firstTimestamp).toBe(String(records[0]!.timestamp));
    expect(decoded.maxTimestamp).toBe(String(records[3]!.timestamp));
    expect(decoded.records).toHaveLength(4);
    decoded.records.forEach((record, i) => {
      expect(record.offset).toBe(String(2 ** 40 + 7 + i));
      expect(record.timestamp).toBe(String(records[i]!.timestamp));
      expect(record.key === null ? null : Buffer.from(record.key)).toEqual(records[i]!.key === null ? null : Buffer.from(records[i]!.key!));
      expect(record.value === null ? null : Buffer.from(record.value)).toEqual(
        records[i]!.value === null ? null : Buffer.from(records[i]!.value!),
      );
    });
    expect(decoded.records[0]!.headers).toEqual({ h: Buffer.from('v') });
    expect(decoded.records[2]!.headers).toEqual({ 'ünï': null });
  });

  it('we decode kafkajs batches byte-identical to our own encoding of the same records', async () => {
    const t = 1_650_000_000_000;
    const records = [
      { key: Buffer.from('a'), value: Buffer.from('first'), headers: { trace: Buffer.from('x') }, timestamp: t },
      { key: null, value: Buffer.from([0, 1, 2, 0xff]), headers: {}, timestamp: t + 10 },
      { key: Buffer.from('c'), value: Buffer.alloc(0), headers: { a: Buffer.from('1'), b: Buffer.from('') }, timestamp: t + 1 },
    ];
    const theirs = (
      await kafkaRecordBatch({
        firstOffset: kafkaLong.fromValue(100),
        firstTimestamp: t,
        maxTimestamp: t + 10,
        partitionLeaderEpoch: 4,
        lastOffsetDelta: records.length - 1,
        producerId: kafkaLong.fromValue(-1),
        producerEpoch: -1,
        firstSequence: -1,
        records: records.map((record, i) =>
          kafkaRecord({ offsetDelta: i, timestampDelta: record.timestamp - t, key: record.key, value: record.value, headers: record.headers }),
        ),
      })
    ).buffer;

    expect(validateBatch(theirs)).toMatchObject({ baseOffset: 100, partitionLeaderEpoch: 4, recordCount: 3, lastOffsetDelta: 2 });
    const { records: ours } = decodeRecordBatch(theirs);
    expect(ours.map((r) => r.offset)).toEqual([100, 101, 102]);
    expect(ours.map((r) => r.timestamp)).toEqual(records.map((r) => r.timestamp));
    expect(ours.map((r) => r.key)).toEqual(records.map((r) => r.key));
    expect(ours.map((r) => r.value)).toEqual(records.map((r) => r.value));
    expect(ours[2]!.headers).toEqual([
      { key: 'a', value: Buffer.from('1') },
      { key: 'b', value: Buffer.alloc(0) },
    ]);

    const mine = encodeRecordBatch(
      records.map((r) => ({ ...r, headers: Object.entries(r.headers).map(([key, value]) => ({ key, value })) })),
      { baseOffset: 100, partitionLeaderEpoch: 4 },
    );
    expect(mine.equals(theirs)).toBe(true);
  });
});

describe('RecordBatchBuilder', () => {
  const options = { baseOffset: 31, partitionLeaderEpoch: 2, producerId: 99, producerEpoch: 1, baseSequence: 5 };

  it('records appended one at a time, from a buffer too small for the first, give the bytes of encodeRecordBatch', () => {
    const records = sampleRecords();
    const builder = new RecordBatchBuilder(8);
    for (const record of records) expect(builder.append(record)).toBe(true);
    expect(builder.recordCount).toBe(4);
    const built = builder.build(options);
    expect(built.length).toBe(builder.sizeBytes);
    expect(built.equals(encodeRecordBatch(records, options))).toBe(true);
    expect(validateBatch(built)).toMatchObject({ baseOffset: 31, recordCount: 4, producerId: 99, baseSequence: 5 });
  });

  it('refuses the record that would take the batch past the byte limit, never the first, and nothing once built', () => {
    const value = Buffer.alloc(100, 1);
    const builder = new RecordBatchBuilder();
    expect(builder.append({ key: null, value: Buffer.alloc(500), timestamp: 1 }, 200)).toBe(true); // the first always goes in
    expect(builder.append({ key: null, value, timestamp: 2 }, 200)).toBe(false);
    expect(builder.recordCount).toBe(1);
    const limit = builder.sizeBytes + 110;
    expect(builder.append({ key: null, value, timestamp: 2 }, limit)).toBe(true);
    expect(builder.sizeBytes).toBeLessThanOrEqual(limit);
    const built = builder.build();
    expect(decodeRecordBatch(built).records.map((r) => r.value?.length)).toEqual([500, 100]);
    expect(() => builder.append({ key: null, value, timestamp: 3 })).toThrow(/built batch/);
    expect(() => new RecordBatchBuilder().build()).toThrow(/at least one record/);
  });
});

describe('decodeRecordBatch', () => {
  it('round-trips keys, values, headers and timestamps, including NUL bytes, invalid UTF-8 and 1 MiB values', () => {
    const records = [...sampleRecords(), { key: null, value: randomBytes(1024 * 1024), timestamp: 5 }];
    const buf = encodeRecordBatch(records, { baseOffset: 10 });
    expect(validateBatch(buf).recordCount).toBe(5);
    const { header, records: out } = decodeRecordBatch(buf);
    expect(header).toMatchObject({ baseOffset: 10, magic: 2, attributes: 0, recordCount: 5, producerId: -1, partitionLeaderEpoch: -1 });
    expect(batchSize(header)).toBe(buf.length);
    out.forEach((record, i) => {
      expect(record.offset).toBe(10 + i);
      expect(record.timestamp).toBe(records[i]!.timestamp);
      expect(sameBytes(record.key, records[i]!.key)).toBe(true);
      expect(sameBytes(record.value, records[i]!.value)).toBe(true);
      expect(record.headers).toEqual((records[i]!.headers ?? []).map((h) => ({ key: h.key, value: h.value === null ? null : Buffer.from(h.value) })));
    });
  });

  it('accepts Uint8Array keys and values that are views into a larger buffer', () => {
    const backing = new Uint8Array([9, 9, 1, 2, 3, 9]);
    const buf = encodeRecordBatch([{ key: backing.subarray(2, 3), value: backing.subarray(2, 5), timestamp: 1 }]);
    const [record] = decodeRecordBatch(buf).records;
    expect(record!.key).toEqual(Buffer.from([1]));
    expect(record!.value).toEqual(Buffer.from([1, 2, 3]));
  });
});

describe('in-place rewrites', () => {
  it('setBaseOffset and setPartitionLeaderEpoch leave the CRC valid', () => {
    const buf = encodeRecordBatch(sampleRecords());
    setBaseOffset(buf, 0, 2 ** 50);
    setPartitionLeaderEpoch(buf, 0, 17);
    const header = validateBatch(buf);
    expect(header.baseOffset).toBe(2 ** 50);
    expect(header.partitionLeaderEpoch).toBe(17);
    expect(decodeRecordBatch(buf).records.map((r) => r.offset)).toEqual([0, 1, 2, 3].map((i) => 2 ** 50 + i));
  });
});

describe('iterateBatches', () => {
  it('walks batches laid back to back and refuses a partial one at the end', () => {
    const a = encodeRecordBatch([{ key: null, value: Buffer.from('a'), timestamp: 1 }], { baseOffset: 0 });
    const b = encodeRecordBatch(sampleRecords(), { baseOffset: 1 });
    const both = Buffer.concat([a, b]);
    expect([...iterateBatches(both)].map(({ at, header }) => [at, header.baseOffset, header.recordCount])).toEqual([
      [0, 0, 1],
      [a.length, 1, 4],
    ]);
    expect([...iterateBatches(Buffer.alloc(0))]).toEqual([]);
    expect(invalid(() => [...iterateBatches(both.subarray(0, both.length - 1))]).message).toMatch(/truncated batch/);
    expect(invalid(() => [...iterateBatches(both.subarray(0, a.length + 10))]).message).toMatch(/truncated batch/);
  });
});

describe('validateBatch refuses', () => {
  const good = () => encodeRecordBatch(sampleRecords());

  it('a flipped bit anywhere the CRC covers', () => {
    const buf = good();
    buf[buf.length - 1]! ^= 0x01;
    expect(invalid(() => validateBatch(buf)).message).toMatch(/batch CRC mismatch/);
  });

  it('a maxTimestamp that is not the largest timestamp of its records', () => {
    const forged = withFixedCrc(good(), (buf) => buf.writeBigInt64BE(BigInt(Number.MAX_SAFE_INTEGER), 35));
    expect(invalid(() => validateBatch(forged)).message).toMatch(/maxTimestamp 9007199254740991 is not the largest timestamp/);
    const records = [
      { key: null, value: Buffer.from('a'), timestamp: 5_000 },
      { key: null, value: Buffer.from('b'), timestamp: 3_000 },
    ];
    // Records out of time order are fine; the header names the largest.
    expect(validateBatch(encodeRecordBatch(records)).maxTimestamp).toBe(5_000);
  });

  it('a compression codec, naming it', () => {
    const buf = encodeRecordBatch([{ key: null, value: Buffer.from('x'), timestamp: 1 }]);
    for (const [codec, name] of [[1, 'gzip'], [2, 'snappy'], [3, 'lz4'], [4, 'zstd'], [6, 'unknown']] as const) {
      buf.writeInt16BE(codec, 21);
      expect(invalid(() => validateBatch(buf)).message).toContain(`unsupported compression codec ${codec} (${name})`);
      expect(invalid(() => decodeRecordBatch(buf)).message).toContain('unsupported compression codec');
    }
  });

  it('another magic, a short buffer, a length beyond the buffer', () => {
    const magic = good();
    magic.writeInt8(1, 16);
    expect(invalid(() => validateBatch(magic)).message).toMatch(/unsupported batch magic 1/);
    expect(invalid(() => validateBatch(good().subarray(0, BATCH_HEADER_BYTES - 1))).message).toMatch(/truncated batch/);
    expect(invalid(() => validateBatch(good().subarray(0, 100))).message).toMatch(/truncated batch/);
    const negative = good();
    negative.writeInt32BE(-5, 8);
    expect(invalid(() => validateBatch(negative)).message).toMatch(/invalid batch length/);
  });

  it('a record count that disagrees with lastOffsetDelta or with the records', () => {
    const delta = good();
    delta.writeInt32BE(7, 23);
    expect(invalid(() => validateBatch(delta)).message).toMatch(/lastOffsetDelta 7/);
    // Count and delta agree with each other but not with the records: the walk finds it (CRC recomputed on purpose).
    const count = withFixedCrc(good(), (buf) => {
      buf.writeInt32BE(3, 57);
      buf.writeInt32BE(2, 23);
    });
    expect(invalid(() => validateBatch(count)).message).toMatch(/bytes after its 3 records/);
    const zero = good();
    zero.writeInt32BE(0, 57);
    expect(invalid(() => validateBatch(zero)).message).toMatch(/at least 1/);
  });

  it('records whose lengths lie, with a valid CRC', () => {
    const lying = withFixedCrc(encodeRecordBatch([{ key: null, value: Buffer.from('abc'), timestamp: 1 }]), (buf) => {
      buf[BATCH_HEADER_BYTES + 5] = 2 * 50; // value length varint: 50 bytes, but only 3 follow
    });
    expect(invalid(() => validateBatch(lying)).message).toMatch(/truncated value/);
    const garbage = withFixedCrc(good(), (buf) => buf.fill(0xff, BATCH_HEADER_BYTES));
    expect(invalid(() => validateBatch(garbage)).message).toMatch(/record 0|varint/);
  });

  it('control and transactional batches', () => {
    const control = good();
    control.writeInt16BE(0x20, 21);
    expect(invalid(() => validateBatch(control)).message).toMatch(/control batches/);
    const transactional = good();
    transactional.writeInt16BE(0x10, 21);
    expect(invalid(() => validateBatch(transactional)).message).toMatch(/transactional batches/);
  });
});

/** Applies `edit` and recomputes the CRC, to reach the checks behind it. */
function withFixedCrc(buf: Buffer, edit: (buf: Buffer) => void): Buffer {
  edit(buf);
  buf.writeUInt32BE(kafkaCrc32c(buf.subarray(21)), 17);
  return buf;
}

/** Byte equality without vitest's element-by-element diff (slow on 1 MiB). */
function sameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}
