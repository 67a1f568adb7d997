/**
 * The producer's accumulator: the records waiting per partition, how they are cut into
 * batches (most records, most bytes), when a partition is ready (full, lingered long
 * enough, flushing), and which partition keyless records go to (sticky: one partition
 * until its batch is cut, then the next).
 */
import type { PartitionSequence } from './idempotence.js';
import type { RecordMetadata } from '../records.js';
import type { PreparedRecord } from './prepare.js';

/** A record accepted by `send()` and not yet settled. */
export interface PendingRecord {
  /** The `send()` it came from, for `flush()`. */
  id: number;
  record: PreparedRecord;
  deadlineMs: number;
  /** The `send()` promise's own functions (the producer releases the buffer slot first). */
  resolve(metadata: RecordMetadata): void;
  reject(error: unknown): void;
}

/** The records of one partition waiting to be sent, and whether a batch of it is out. */
export interface PartitionQueue {
  readonly topic: string;
  readonly partition: number;
  pending: PendingRecord[];
  pendingBytes: number;
  /** A batch of this partition is being delivered: nothing else of it is sent meanwhile. */
  inFlight: boolean;
  lingerTimer: NodeJS.Timeout | null;
  /** The idempotent producer's numbering of this partition's batches. */
  sequence: PartitionSequence;
}

export interface BatchLimits {
  maxBatchRecords: number;
  maxBatchBytes: number;
}

export class Accumulator {
  /** Every partition queue, and the same queues by topic and partition. */
  readonly queues: PartitionQueue[] = [];
  private readonly queuesByTopic = new Map<string, PartitionQueue[]>();
  /** The partition keyless records of each topic go to until that partition's batch is full or cut. */
  private readonly sticky = new Map<string, { partition: number; partitionCount: number }>();

  constructor(private readonly limits: BatchLimits) {}

  queueFor(topic: string, partition: number): PartitionQueue {
    // Per topic an array by partition: no key string built per record.
    let byPartition = this.queuesByTopic.get(topic);
    if (byPartition === undefined) {
      byPartition = [];
      this.queuesByTopic.set(topic, byPartition);
    }
    let queue = byPartition[partition];
    if (queue === undefined) {
      queue = { topic, partition, pending: [], pendingBytes: 0, inFlight: false, lingerTimer: null, sequence: { generation: -1, next: 0 } };
      byPartition[partition] = queue;
      this.queues.push(queue);
    }
    return queue;
  }

  append(queue: PartitionQueue, entry: PendingRecord): void {
    queue.pending.push(entry);
    queue.pendingBytes += entry.record.sizeBytes;
    // A full batch takes no more keyless records: they move on to the next partition.
    if (this.isFull(queue)) this.moveStickyPast(queue);
  }

  isFull(queue: PartitionQueue): boolean {
    return queue.pending.length >= this.limits.maxBatchRecords || queue.pendingBytes >= this.limits.maxBatchBytes;
  }

  /** The partition for a keyless record of `topic` with `partitionCount` partitions. */
  stickyFor(topic: string, partitionCount: number): number {
    let sticky = this.sticky.get(topic);
    if (sticky === undefined || sticky.partitionCount !== partitionCount) {
      sticky = { partition: Math.floor(Math.random() * partitionCount), partitionCount };
      this.sticky.set(topic, sticky);
    }
    return sticky.partition;
  }

  /**
   * Cuts the next batch off the queue (at least one record, then up to the limits). Keyless
   * records move on to the next partition once this one's batch is cut.
   */
  takeBatch(queue: PartitionQueue): PendingRecord[] {
    let count = 0;
    let bytes = 0;
    while (count < queue.pending.length && count < this.limits.maxBatchRecords) {
      const next = queue.pending[count]!.record.sizeBytes;
      if (count > 0 && bytes + next > this.limits.maxBatchBytes) break;
      bytes += next;
      count++;
    }
    const batch = queue.pending.splice(0, count);
    queue.pendingBytes -= bytes;
    this.moveStickyPast(queue);
    return batch;
  }

  private moveStickyPast(queue: PartitionQueue): void {
    const sticky = this.sticky.get(queue.topic);
    if (sticky?.partition === queue.partition) sticky.partition = (sticky.partition + 1) % sticky.partitionCount;
  }

  clearTimers(): void {
    for (const queue of this.queues) {
      if (queue.lingerTimer !== null) clearTimeout(queue.lingerTimer);
      queue.lingerTimer = null;
    }
  }
}
