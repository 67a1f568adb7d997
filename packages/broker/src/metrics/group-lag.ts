/**
 * Consumer group lag of the partitions this broker leads, in records and in seconds: the one
 * place the metrics read committed offsets and the log for it, so a change of the storage
 * changes this function only.
 */
import type { PartitionReplica } from '../replica/index.js';

export interface GroupLagSample {
  group: string;
  topic: string;
  partition: number;
  /** High watermark minus the committed offset. */
  lag: number;
  /** Age of the oldest record the group has not committed (its timestamp to `nowMs`); 0 when it is caught up. */
  lagSeconds: number;
}

export function groupLag(replica: PartitionReplica, nowMs: number): GroupLagSample[] {
  if (replica.role !== 'primary' || replica.isClosed) return [];
  const hw = replica.hw;
  return replica.store.groupOffsets().map((g) => {
    const lag = Math.max(0, hw - g.offset);
    let lagSeconds = 0;
    if (lag > 0) {
      // The record at the committed offset is the oldest one the group still has to process.
      const [oldest] = replica.store.readForFetch(Math.max(g.offset, replica.logStartOffset), { maxRecords: 1, maxBytes: 1, endOffset: hw }).records;
      if (oldest) lagSeconds = Math.max(0, nowMs - oldest.timestamp) / 1000;
    }
    return { group: g.group, topic: replica.topic, partition: replica.partition, lag, lagSeconds };
  });
}
