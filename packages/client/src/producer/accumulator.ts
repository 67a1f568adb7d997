/**
 * The producer's accumulator: the records waiting per partition, written into batches as
 * they arrive (most records, most bytes a batch), when a partition is ready (full, lingered
 * long enough, flushing), and which partition keyless records go to (sticky: one partition
 * until its batch is cut, then the next). A waiting record is kept as its bytes in a batch
 * and its promise, not as the record: with many records in flight, that is most of what the
 * garbage collector would otherwise copy around.
 */
import { RecordBatchBuilder, type BatchRecordInput } from '@tessera/protocol';
import type { PartitionSequence } from './idempotence.js';
import type { RecordMetadata } from '../records.js';

/** A record accepted by `send()` and not yet settled (its bytes are in its batch). */
export interface PendingRecord {
  /** The generation of the `send()` it came from, for `flush()` (see UnsettledSends). */
  generation: number;
  deadlineMs: number;
  /** The `send()` promise's own functions (the producer releases the buffer slot first). */
  resolve(metadata: RecordMetadata): void;
  reject(error: unknown): void;
}

/** A batch being written or waiting to be sent: its bytes so far and the records in it, in order. */
export interface OpenBatch {
  builder: RecordBatchBuilder;
  records: PendingRecord[];
}

/** The records of one partition waiting to be sent, and whether a batch of it is out. */
export interface PartitionQueue {
  readonly topic: string;
  readonly partition: number;
  /** Oldest first; only the last one takes more records. Empty when nothing waits. */
  batches: OpenBatch[];
  /** The size of the last batch cut, to start the next one's buffer with. */
  lastBatchBytes: number;
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

/** The buffer of a partition's first batch; later ones start at the size of the one before. */
const FIRST_BUFFER_BYTES = 16 * 1024;

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
      queue = { topic, partition, batches: [], lastBatchBytes: 0, inFlight: false, lingerTimer: null, sequence: { generation: -1, next: 0 } };
      byPartition[partition] = queue;
      this.queues.push(queue);
    }
    return queue;
  }

  /** Writes `record` into the partition's open batch, or a new one when it is full or the record does not fit. */
  append(queue: PartitionQueue, entry: PendingRecord, record: BatchRecordInput): void {
    let open = queue.batches[queue.batches.length - 1];
    if (open === undefined || open.records.length >= this.limits.maxBatchRecords || !open.builder.append(record, this.limits.maxBatchBytes)) {
      open = { builder: new RecordBatchBuilder(Math.min(queue.lastBatchBytes || FIRST_BUFFER_BYTES, this.limits.maxBatchBytes)), records: [] };
      queue.batches.push(open);
      open.builder.append(record);
    }
    open.records.push(entry);
    // A full batch takes no more keyless records: they move on to the next partition.
    if (this.isFull(queue)) this.moveStickyPast(queue);
  }

  /** Whether records of the partition wait to be sent. */
  hasPending(queue: PartitionQueue): boolean {
    return queue.batches.length > 0;
  }

  /** Whether the partition's next batch takes no more records. */
  isFull(queue: PartitionQueue): boolean {
    if (queue.batches.length > 1) return true;
    const open = queue.batches[0];
    return open !== undefined && (open.records.length >= this.limits.maxBatchRecords || open.builder.sizeBytes >= this.limits.maxBatchBytes);
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
   * Cuts the next batch off the queue (call only when records wait). Keyless records move on
   * to the next partition once this one's batch is cut.
   */
  takeBatch(queue: PartitionQueue): OpenBatch {
    const batch = queue.batches.shift()!;
    queue.lastBatchBytes = batch.builder.sizeBytes;
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
