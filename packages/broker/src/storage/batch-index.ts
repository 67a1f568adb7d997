/**
 * What the broker knows of a batch without reading its records: its place in the log, from
 * the header alone. And the one cold path that does read records: cutting a stored batch at
 * an offset inside it (a truncation point, or a secondary that stopped mid-batch), which
 * re-encodes the kept records with the same offsets, timestamps, epoch and producer fields.
 */
import { addSequence, decodeRecordBatch, encodeRecordBatch, lastOffsetOf, readBatchHeader, type RecordBatchHeader } from '@tessera/protocol';
import { assert } from '../util/assert.js';
import type { StoredBatch } from './broker-store.js';

/** A stored batch from its bytes (offsets and epoch as the header says). */
export function storedBatch(bytes: Buffer, header: RecordBatchHeader = readBatchHeader(bytes)): StoredBatch {
  return {
    baseOffset: header.baseOffset,
    lastOffset: lastOffsetOf(header),
    epoch: header.partitionLeaderEpoch,
    maxTimestamp: header.maxTimestamp,
    bytes,
  };
}

/** The records of `batch` in `[fromOffset, toOffset)` as one batch of their own (undefined when none). */
export function cutBatch(batch: StoredBatch, fromOffset: number, toOffset: number): StoredBatch | undefined {
  if (fromOffset <= batch.baseOffset && toOffset > batch.lastOffset) return batch;
  const { header, records } = decodeRecordBatch(batch.bytes);
  const kept = records.filter((record) => record.offset >= fromOffset && record.offset < toOffset);
  if (kept.length === 0) return undefined;
  const first = kept[0].offset;
  const bytes = encodeRecordBatch(
    kept.map((record) => ({
      key: record.key,
      value: record.value,
      headers: record.headers.map((h) => ({ key: h.key, value: h.value })),
      timestamp: record.timestamp,
    })),
    {
      baseOffset: first,
      partitionLeaderEpoch: header.partitionLeaderEpoch,
      producerId: header.producerId,
      producerEpoch: header.producerEpoch,
      // Sequence numbers wrap after 2^31 - 1, as the producer counts them.
      baseSequence: header.baseSequence < 0 ? header.baseSequence : addSequence(header.baseSequence, first - header.baseOffset),
    },
  );
  const cut = storedBatch(bytes);
  assert(cut.baseOffset === first && cut.lastOffset === kept[kept.length - 1].offset, `cut batch ${cut.baseOffset}..${cut.lastOffset} is not contiguous`);
  return cut;
}
