/**
 * Consumer group lag of the partitions this broker leads, in records and in seconds: the one
 * place the metrics read committed offsets and the log for it, so a change of the storage
 * changes this function only.
 */
import { DELETED_GROUP_OFFSET, decodeRecordBatch } from '@tessera/protocol';
import type { Partition } from '../partition/index.js';

export interface GroupLagSample {
  group: string;
  topic: string;
  partition: number;
  /** High watermark minus the committed offset. */
  lag: number;
  /** Age of the oldest record the group has not committed (its timestamp to `nowMs`); 0 when it is caught up. */
  lagSeconds: number;
}

export function groupLag(partition: Partition, nowMs: number): GroupLagSample[] {
  if (partition.role !== 'primary' || partition.isClosed) return [];
  const hw = partition.hw;
  // A deleted group's mark (DELETED_GROUP_OFFSET) is not a position: it has no lag.
  return partition.store.groupOffsets().filter((g) => g.offset !== DELETED_GROUP_OFFSET).map((g) => {
    const lag = Math.max(0, hw - g.offset);
    let lagSeconds = 0;
    if (lag > 0) {
      // The record at the committed offset is the oldest one the group still has to process:
      // read the one batch holding it and take that record's timestamp.
      const from = Math.max(g.offset, partition.logStartOffset);
      const [batch] = partition.store.readBatches(from, hw, 1);
      const oldest = batch && decodeRecordBatch(batch.bytes).records.find((record) => record.offset >= from);
      if (oldest) lagSeconds = Math.max(0, nowMs - oldest.timestamp) / 1000;
    }
    return { group: g.group, topic: partition.topic, partition: partition.partition, lag, lagSeconds };
  });
}
