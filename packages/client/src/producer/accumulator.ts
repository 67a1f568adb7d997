/**
 * The producer's accumulator: the records waiting per partition, written into batches as
 * they arrive (most records, most bytes a batch), when a partition is ready (full, lingered
 * long enough, flushing), and which partition keyless records go to (sticky: one partition
 * until its batch is cut, then the next). A waiting record is kept as its bytes in a batch
 * and a promise derived from its batch's, not as the record and its own resolving functions:
 * with many records in flight, that is most of what the garbage collector would otherwise
 * copy around.
 */
import { RecordBatchBuilder, type BatchRecordInput } from '@tessera/protocol';
import type { PartitionSequence } from './idempotence.js';
import type { RecordMetadata } from '../records.js';

/** What a batch settles with: where the broker stored its first record. */
export interface BatchAck {
  topic: string;
  partition: number;
  baseOffset: number;
}

/** A batch being written or waiting to be sent: its bytes so far and what its records' `send()` calls wait for. */
export interface OpenBatch {
  /** Its records so far (`recordCount`, `sizeBytes`). */
  builder: RecordBatchBuilder;
  /** Its records' bytes as the producer's buffer bound counts them. */
  recordBytes: number;
  /** The earliest delivery deadline of its records (performance.now() ms). */
  deadlineMs: number;
  /**
   * The flush generations of its records (see UnsettledSends) as runs, `[generation, records,
   * generation, records, …]`: consecutive records nearly always share one.
   */
  generations: number[];
  /** Every record's `send()` promise is derived from this one (settled once, for the whole batch). */
  settled: Promise<BatchAck>;
  resolve(ack: BatchAck): void;
  reject(error: unknown): void;
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

  /**
   * Writes `record` into the partition's open batch, or a new one when it is full or the
   * record does not fit; returns the record's `send()` promise.
   */
  append(queue: PartitionQueue, record: BatchRecordInput, recordBytes: number, generation: number, deadlineMs: number): Promise<RecordMetadata> {
    let open = queue.batches[queue.batches.length - 1];
    if (open === undefined || open.builder.recordCount >= this.limits.maxBatchRecords || !open.builder.append(record, this.limits.maxBatchBytes)) {
      open = openBatch(new RecordBatchBuilder(Math.min(queue.lastBatchBytes || FIRST_BUFFER_BYTES, this.limits.maxBatchBytes)));
      queue.batches.push(open);
      open.builder.append(record);
    }
    const index = open.builder.recordCount - 1;
    open.recordBytes += recordBytes;
    if (deadlineMs < open.deadlineMs) open.deadlineMs = deadlineMs;
    const runs = open.generations;
    if (runs.length > 0 && runs[runs.length - 2] === generation) runs[runs.length - 1]!++;
    else runs.push(generation, 1);
    // A full batch takes no more keyless records: they move on to the next partition.
    if (this.isFull(queue)) this.moveStickyPast(queue);
    return open.settled.then(metadataAt(index));
  }

  /** Whether records of the partition wait to be sent. */
  hasPending(queue: PartitionQueue): boolean {
    return queue.batches.length > 0;
  }

  /** Whether the partition's next batch takes no more records. */
  isFull(queue: PartitionQueue): boolean {
    if (queue.batches.length > 1) return true;
    const open = queue.batches[0];
    return open !== undefined && (open.builder.recordCount >= this.limits.maxBatchRecords || open.builder.sizeBytes >= this.limits.maxBatchBytes);
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

function openBatch(builder: RecordBatchBuilder): OpenBatch {
  let resolve!: (ack: BatchAck) => void;
  let reject!: (error: unknown) => void;
  const settled = new Promise<BatchAck>((onResolve, onReject) => {
    resolve = onResolve;
    reject = onReject;
  });
  return { builder, recordBytes: 0, deadlineMs: Infinity, generations: [], settled, resolve, reject };
}

/**
 * The function that turns a batch's acknowledgement into the metadata of its record at
 * `index`, one per index shared by every batch: a record in flight costs its derived promise,
 * not a closure of its own. Indexes past SHARED_METADATA_FUNCTIONS (a `maxBatchRecords` far
 * above the default) get a function of their own, so the shared ones stay few.
 */
function metadataAt(index: number): (ack: BatchAck) => RecordMetadata {
  if (index >= SHARED_METADATA_FUNCTIONS) return metadataFunction(index);
  while (metadataFunctions.length <= index) metadataFunctions.push(metadataFunction(metadataFunctions.length));
  return metadataFunctions[index]!;
}

function metadataFunction(index: number): (ack: BatchAck) => RecordMetadata {
  return (ack) => ({ topic: ack.topic, partition: ack.partition, offset: ack.baseOffset + index });
}

const SHARED_METADATA_FUNCTIONS = 10_000;
const metadataFunctions: Array<(ack: BatchAck) => RecordMetadata> = [];
