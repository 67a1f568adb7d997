/**
 * The producer: routes each record to its partition, batches records per partition
 * (linger, most records, most bytes), and sends each batch straight to the partition's
 * primary. One request per partition is in flight at a time and a failed batch is
 * retried before anything after it, so records of one partition (and so of one key)
 * are stored in the order they were sent, retries included.
 */
import {
  backoffMs,
  BROKER_ROUTES,
  DEFAULT_MAX_VALUE_BYTES,
  isRetriable,
  parseOrThrow,
  partitionForKey,
  recordInput,
  TesseraError,
  topicName,
  type ProduceResponse,
  type RecordInput,
  type RetryOptions,
  type TopicMetadata,
} from '@tessera/protocol';
import type { Connection } from '../connection/connection.js';
import { needsMetadataRefresh, type MetadataCache } from '../cluster/metadata-cache.js';
import { delay } from '../internal/signal.js';

/** How a producer batches and how long it tries. */
export interface ProducerOptions {
  /** How long a partition's first record waits for more to share its request (default 5 ms). */
  lingerMs?: number;
  /** Most records in one request (default 1000). */
  maxBatchRecords?: number;
  /** Most bytes (about: keys, values and headers) in one request (default 1 MiB). */
  maxBatchBytes?: number;
  /** How long `send()` keeps retrying before it rejects with TIMEOUT (default 30000 ms). */
  deliveryTimeoutMs?: number;
  /** Most records waiting or in flight; `send()` waits for room when full (default 100000). */
  maxBufferedRecords?: number;
}

/** A record to send. */
export interface ProducerRecord {
  topic: string;
  value: string;
  /** Records with one key go to one partition, in order; keyless records are spread over partitions. */
  key?: string | null;
  headers?: Record<string, string>;
  /** Sends to this partition instead of the one the key picks. */
  partition?: number;
  /** Milliseconds since the Unix epoch; the broker stamps its clock when absent. */
  timestamp?: number;
}

/** Where an acknowledged record was stored. */
export interface RecordMetadata {
  topic: string;
  partition: number;
  offset: number;
}

/** What a producer needs from the client that made it. */
export interface ProducerContext {
  connection: Connection;
  metadata: MetadataCache;
  retry: RetryOptions;
  requestTimeoutMs: number;
  onClose(producer: Producer): void;
}

const DEFAULTS = {
  lingerMs: 5,
  maxBatchRecords: 1000,
  maxBatchBytes: 1024 * 1024,
  deliveryTimeoutMs: 30_000,
  maxBufferedRecords: 100_000,
} satisfies Required<ProducerOptions>;

/** Rough fixed cost of one record in a JSON body, in bytes. */
const RECORD_OVERHEAD_BYTES = 48;
/** The longest key `recordInput` accepts, in UTF-16 units (as zod's `.max` counts). */
const MAX_KEY_LENGTH = 64 * 1024;
/** Topic names already validated, so a hot loop on one topic does not run the schema per record. */
const MAX_VALIDATED_TOPICS = 1_000;

interface PendingRecord {
  /** The `send()` it came from, for `flush()`. */
  id: number;
  record: RecordInput;
  bytes: number;
  deadlineMs: number;
  resolve(metadata: RecordMetadata): void;
  reject(error: unknown): void;
}

/** The records of one partition waiting to be sent, and whether a request for it is out. */
interface PartitionQueue {
  topic: string;
  partition: number;
  pending: PendingRecord[];
  pendingBytes: number;
  inFlight: boolean;
  lingerTimer: NodeJS.Timeout | null;
}

/**
 * Sends records to their partitions' primaries in batches. Make one with
 * `client.producer()`; `send()` resolves once the record is stored on every in-sync
 * replica.
 */
export class Producer {
  private readonly options: Required<ProducerOptions>;
  /** Every partition queue, and the same queues by topic and partition. */
  private readonly queues: PartitionQueue[] = [];
  private readonly queuesByTopic = new Map<string, PartitionQueue[]>();
  /** Records accepted by `send()` and not yet settled; bounded by maxBufferedRecords. */
  private buffered = 0;
  /** `send()` calls waiting for room, oldest first (a FIFO with a moving head: no O(n) shift per release). */
  private spaceWaiters: Array<() => void> = [];
  private spaceWaitersHead = 0;
  /**
   * Ids of the `send()` calls not yet settled, so `flush()` can wait for exactly those that
   * came before it (a Set entry per record instead of a promise chain per record).
   */
  private readonly unsettled = new Set<number>();
  private lastSendId = 0;
  private flushWaiters: Array<{ ids: Set<number>; resolve: () => void }> = [];
  /** `send()` calls on the slow path (waiting for room or metadata); while any is, every send takes it, to keep send order. */
  private slowEnqueues = 0;
  private readonly validTopics = new Set<string>();
  /** The partition keyless records of each topic go to until that partition's batch is sent. */
  private readonly stickyPartition = new Map<string, number>();
  private flushing = 0;
  private closed = false;
  private closing: Promise<void> | null = null;

  /** @internal Use `TesseraClient.producer()`. */
  constructor(
    private readonly context: ProducerContext,
    options: ProducerOptions = {},
  ) {
    this.options = { ...DEFAULTS, ...definedOnly(options) };
    for (const [name, value] of Object.entries(this.options)) {
      if (!Number.isFinite(value) || value < (name === 'lingerMs' ? 0 : 1)) {
        throw new TesseraError('INVALID_REQUEST', `producer option ${name} must be a positive number, got ${value}`);
      }
    }
  }

  /**
   * Sends one record. Resolves with its partition and offset once it is acknowledged;
   * rejects with the TesseraError of a non-retriable failure, or TIMEOUT after
   * `deliveryTimeoutMs` of retriable ones (the record may then be stored or not).
   */
  send(record: ProducerRecord): Promise<RecordMetadata> {
    if (this.closed) return Promise.reject(new TesseraError('INVALID_REQUEST', 'the producer is closed'));
    const id = ++this.lastSendId;
    this.unsettled.add(id);
    try {
      return this.enqueue(record, id);
    } catch (error) {
      // Invalid input: settled at once.
      this.settle(id);
      return Promise.reject(error);
    }
  }

  /** Sends many records; resolves with their metadata in the same order, or rejects with the first failure. */
  sendBatch(records: ProducerRecord[]): Promise<RecordMetadata[]> {
    return Promise.all(records.map((record) => this.send(record)));
  }

  /** Sends everything buffered now (no linger) and waits until every earlier `send()` has settled. */
  async flush(): Promise<void> {
    this.flushing++;
    try {
      for (const queue of this.queues) this.sendNext(queue);
      if (this.unsettled.size > 0) {
        const ids = new Set(this.unsettled);
        await new Promise<void>((resolve) => this.flushWaiters.push({ ids, resolve }));
      }
    } finally {
      this.flushing--;
    }
  }

  /** Refuses new records, delivers (or fails) every accepted one, then detaches from the client. */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closed = true;
    this.closing = this.flush().finally(() => {
      for (const queue of this.queues) {
        if (queue.lingerTimer !== null) clearTimeout(queue.lingerTimer);
      }
      this.context.onClose(this);
    });
    return this.closing;
  }

  /**
   * Validates the record (throws synchronously when invalid) and queues it. With room in the
   * buffer and the topic's map cached, it is queued at once; otherwise it waits on the slow path.
   */
  private enqueue(input: ProducerRecord, id: number): Promise<RecordMetadata> {
    const topic = this.validTopic(input.topic);
    const record =
      plainRecord(input) ??
      parseOrThrow(recordInput, { key: input.key, value: input.value, headers: input.headers, timestamp: input.timestamp }, 'record');
    const valueBytes = Buffer.byteLength(record.value);
    if (valueBytes > DEFAULT_MAX_VALUE_BYTES) {
      throw new TesseraError('PAYLOAD_TOO_LARGE', `record value is ${valueBytes} bytes, more than ${DEFAULT_MAX_VALUE_BYTES}`);
    }
    const deadlineMs = Date.now() + this.options.deliveryTimeoutMs;
    const fast =
      this.slowEnqueues === 0 && this.spaceWaitersHead >= this.spaceWaiters.length && this.buffered < this.options.maxBufferedRecords;
    const cached = fast ? this.context.metadata.cachedTopic(topic) : undefined;
    if (cached === undefined) return this.enqueueSlowly(input, id, topic, record, valueBytes, deadlineMs);
    this.buffered++;
    let partition: number;
    try {
      partition = this.choosePartition(cached, record, input.partition);
    } catch (error) {
      this.release();
      throw error;
    }
    return this.push(id, topic, partition, record, valueBytes, deadlineMs);
  }

  /** Waits for room in the buffer and for the topic's map, then queues the record. */
  private async enqueueSlowly(
    input: ProducerRecord,
    id: number,
    topic: string,
    record: RecordInput,
    valueBytes: number,
    deadlineMs: number,
  ): Promise<RecordMetadata> {
    this.slowEnqueues++;
    let partition: number;
    try {
      while (this.buffered >= this.options.maxBufferedRecords) {
        await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
      }
      // The slot is taken before any wait below, so the buffer bound holds with concurrent sends.
      this.buffered++;
      try {
        const metadata = await this.topicMetadata(topic, deadlineMs);
        partition = this.choosePartition(metadata, record, input.partition);
      } catch (error) {
        this.release();
        throw error;
      }
    } catch (error) {
      this.settle(id);
      throw error;
    } finally {
      this.slowEnqueues--;
    }
    return this.push(id, topic, partition, record, valueBytes, deadlineMs);
  }

  /** Puts an accepted record (its buffer slot taken) on its partition's queue. */
  private push(id: number, topic: string, partition: number, record: RecordInput, valueBytes: number, deadlineMs: number): Promise<RecordMetadata> {
    const bytes =
      RECORD_OVERHEAD_BYTES +
      valueBytes +
      (record.key == null ? 0 : Buffer.byteLength(record.key)) +
      (record.headers == null ? 0 : JSON.stringify(record.headers).length);
    return new Promise<RecordMetadata>((resolve, reject) => {
      const queue = this.queueFor(topic, partition);
      queue.pending.push({
        id,
        record,
        bytes,
        deadlineMs,
        resolve: (result) => {
          this.release();
          this.settle(id);
          resolve(result);
        },
        reject: (error) => {
          this.release();
          this.settle(id);
          reject(error);
        },
      });
      queue.pendingBytes += bytes;
      this.schedule(queue);
    });
  }

  private validTopic(name: string): string {
    if (this.validTopics.has(name)) return name;
    const topic = parseOrThrow(topicName, name, 'topic name');
    if (this.validTopics.size >= MAX_VALIDATED_TOPICS) this.validTopics.clear();
    this.validTopics.add(topic);
    return topic;
  }

  /** A `send()` is over (acknowledged, failed or refused): wakes the flushes waiting for it. */
  private settle(id: number): void {
    this.unsettled.delete(id);
    if (this.flushWaiters.length === 0) return;
    this.flushWaiters = this.flushWaiters.filter((waiter) => {
      if (waiter.ids.delete(id) && waiter.ids.size === 0) {
        waiter.resolve();
        return false;
      }
      return true;
    });
  }

  /**
   * The topic's map. Without a cached map it is retried per the client's retry policy
   * (not the whole delivery timeout), so a coordinator that was never reachable is
   * reported within seconds.
   */
  private async topicMetadata(topic: string, deadlineMs: number): Promise<TopicMetadata> {
    const cached = this.context.metadata.cachedTopic(topic);
    if (cached !== undefined) return cached;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.context.metadata.topic(topic);
      } catch (error) {
        const waitMs = backoffMs(Math.min(attempt, 20), this.context.retry);
        if (!isRetriable(error) || attempt >= this.context.retry.retries || Date.now() + waitMs >= deadlineMs) throw error;
        await delay(waitMs);
      }
    }
  }

  private choosePartition(topic: TopicMetadata, record: RecordInput, explicit: number | undefined): number {
    const count = topic.partitions.length;
    if (explicit !== undefined) {
      if (!Number.isInteger(explicit) || explicit < 0 || explicit >= count) {
        throw new TesseraError('INVALID_REQUEST', `topic ${topic.name} has partitions 0..${count - 1}, not ${explicit}`);
      }
      return explicit;
    }
    if (record.key != null) return partitionForKey(record.key, count);
    let sticky = this.stickyPartition.get(topic.name);
    if (sticky === undefined || sticky >= count) {
      sticky = Math.floor(Math.random() * count);
      this.stickyPartition.set(topic.name, sticky);
    }
    return sticky;
  }

  private queueFor(topic: string, partition: number): PartitionQueue {
    // Per topic an array by partition: no key string built per record.
    let byPartition = this.queuesByTopic.get(topic);
    if (byPartition === undefined) {
      byPartition = [];
      this.queuesByTopic.set(topic, byPartition);
    }
    let queue = byPartition[partition];
    if (queue === undefined) {
      queue = { topic, partition, pending: [], pendingBytes: 0, inFlight: false, lingerTimer: null };
      byPartition[partition] = queue;
      this.queues.push(queue);
    }
    return queue;
  }

  /** Sends now when the batch is full, flushing or not lingering; else starts the linger timer. */
  private schedule(queue: PartitionQueue): void {
    if (queue.inFlight) return; // The batch goes out when the request in flight finishes.
    const full = queue.pending.length >= this.options.maxBatchRecords || queue.pendingBytes >= this.options.maxBatchBytes;
    if (full || this.flushing > 0 || this.options.lingerMs === 0) {
      this.sendNext(queue);
    } else if (queue.lingerTimer === null) {
      queue.lingerTimer = setTimeout(() => this.sendNext(queue), this.options.lingerMs);
    }
  }

  /** Takes the next batch of a partition and sends it, unless a request for the partition is out. */
  private sendNext(queue: PartitionQueue): void {
    if (queue.lingerTimer !== null) {
      clearTimeout(queue.lingerTimer);
      queue.lingerTimer = null;
    }
    if (queue.inFlight || queue.pending.length === 0) return;
    const batch = this.takeBatch(queue);
    queue.inFlight = true;
    void this.deliver(queue, batch).finally(() => {
      queue.inFlight = false;
      // Records that arrived meanwhile have already waited a whole request: send them now.
      if (queue.pending.length > 0) this.sendNext(queue);
    });
  }

  private takeBatch(queue: PartitionQueue): PendingRecord[] {
    let count = 0;
    let bytes = 0;
    while (count < queue.pending.length && count < this.options.maxBatchRecords) {
      const next = queue.pending[count].bytes;
      if (count > 0 && bytes + next > this.options.maxBatchBytes) break;
      bytes += next;
      count++;
    }
    const batch = queue.pending.splice(0, count);
    queue.pendingBytes -= bytes;
    // Keyless records move on to the next partition once this one's batch is out (sticky partitioning).
    const sticky = this.stickyPartition.get(queue.topic);
    if (sticky === queue.partition) {
      const count = this.context.metadata.cachedTopic(queue.topic)?.partitions.length ?? 1;
      this.stickyPartition.set(queue.topic, (sticky + 1) % count);
    }
    return batch;
  }

  /**
   * Sends one batch to the partition's primary until it is acknowledged, fails with a
   * non-retriable error, or its first record's delivery deadline passes. Never rejects.
   */
  private async deliver(queue: PartitionQueue, batch: PendingRecord[]): Promise<void> {
    const { topic, partition } = queue;
    const body = { records: batch.map((entry) => entry.record) };
    let deadlineMs = Infinity;
    for (const entry of batch) deadlineMs = Math.min(deadlineMs, entry.deadlineMs);
    for (let attempt = 0; ; attempt++) {
      try {
        const url = await this.context.metadata.primaryUrl(topic, partition);
        const response = await this.context.connection.broker<ProduceResponse>(
          url,
          BROKER_ROUTES.produce,
          { topic, partition },
          body,
          { timeoutMs: this.context.requestTimeoutMs },
        );
        if (response?.count !== batch.length || !Number.isInteger(response.baseOffset)) {
          throw new TesseraError('INTERNAL', `broker ${url} acknowledged ${response?.count} records of ${batch.length} for ${topic}/${partition}`);
        }
        batch.forEach((entry, i) => entry.resolve({ topic, partition, offset: response.baseOffset + i }));
        return;
      } catch (error) {
        const waitMs = backoffMs(Math.min(attempt, 20), this.context.retry);
        if (!isRetriable(error)) {
          for (const entry of batch) entry.reject(error);
          return;
        }
        if (Date.now() + waitMs >= deadlineMs) {
          const reason = error instanceof Error ? error.message : String(error);
          const timeout = new TesseraError(
            'TIMEOUT',
            `${topic}/${partition}: not acknowledged within ${this.options.deliveryTimeoutMs} ms (last error: ${reason}); the records may or may not be stored`,
            {},
            { cause: error },
          );
          for (const entry of batch) entry.reject(timeout);
          return;
        }
        if (needsMetadataRefresh(error)) await this.context.metadata.refresh().catch(() => undefined);
        await delay(waitMs);
      }
    }
  }

  private release(): void {
    this.buffered--;
    if (this.spaceWaitersHead < this.spaceWaiters.length) {
      const waiter = this.spaceWaiters[this.spaceWaitersHead++];
      if (this.spaceWaitersHead === this.spaceWaiters.length) {
        this.spaceWaiters = [];
        this.spaceWaitersHead = 0;
      }
      waiter();
    }
  }
}

/**
 * The record as `recordInput` would parse it, for the shape nearly every record has (text
 * value, text or no key, no headers, no or a valid timestamp), checked without running the
 * schema; undefined for anything else, which then goes through the schema (and its messages).
 */
export function plainRecord(input: ProducerRecord): RecordInput | undefined {
  const { key, value, headers, timestamp } = input;
  if (typeof value !== 'string' || headers != null) return undefined;
  if (key != null && (typeof key !== 'string' || key.length > MAX_KEY_LENGTH)) return undefined;
  if (timestamp !== undefined && !(Number.isSafeInteger(timestamp) && timestamp >= 0)) return undefined;
  return { key, value, headers, timestamp };
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}
