/**
 * The producer: routes each record to its partition, accumulates records per partition
 * into RecordBatches (`accumulator.ts`), and sends the ready batches of every partition a
 * broker leads in one `POST /produce` request to that broker (`sender.ts`). One batch per
 * partition is in flight at a time and a failed batch is retried (the same bytes) before
 * anything after it, so records of one partition (and so of one key) are stored in the
 * order they were sent, retries included.
 *
 * Idempotent by default (`idempotent: false` turns it off): every batch carries the producer's
 * id, epoch and its partition's sequence numbers, so a batch retried after its answer was lost
 * is stored once and answered with its first offsets (`idempotence.ts` says what happens when
 * the numbering breaks).
 *
 * Latency: with the default `lingerMs: 0` a batch leaves at the end of the tick in which
 * its first record was sent (so a synchronous burst shares one batch), and records sent
 * while a partition's batch is in flight wait for it and then leave together: batching
 * comes from the round trip itself, not from a timer.
 */
import {
  isRetriable,
  parseOrThrow,
  partitionForKey,
  retry,
  TesseraError,
  topicName,
  type TopicMetadata,
} from '@tessera/protocol';
import { needsMetadataRefresh } from '../cluster/metadata-cache.js';
import type { ClientParts } from '../internal/client-parts.js';
import type { ProducerRecord, RecordMetadata } from '../records.js';
import { Accumulator, type OpenBatch, type PartitionQueue } from './accumulator.js';
import { UnsettledSends } from './unsettled.js';
import { IdempotenceManager, type BatchSequence } from './idempotence.js';
import { prepareRecord, type PreparedRecord } from './prepare.js';
import { ProduceSender } from './sender.js';

/** How a producer batches and how long it tries. */
export interface ProducerOptions {
  /**
   * How long a partition's first record waits for more before its batch is sent, in ms
   * (default 0: at the end of the current tick; records sent while a batch is in flight
   * wait for it anyway).
   */
  lingerMs?: number;
  /** Most records in one batch (default 1000). */
  maxBatchRecords?: number;
  /** Most bytes of one batch as encoded, header included; a record larger than that goes alone (default 1 MiB). */
  maxBatchBytes?: number;
  /** Most bytes of batches in one request to a broker (default 8 MiB; a larger single batch goes alone). */
  maxRequestBytes?: number;
  /**
   * Most produce requests out to one broker at a time (default 1). A partition that becomes
   * ready while its broker has this many out waits, gathering records, and leaves with the
   * other waiting partitions of that broker in the next request.
   */
  maxInFlightRequests?: number;
  /** How long `send()` keeps retrying before it rejects with TIMEOUT (default 30000 ms). */
  deliveryTimeoutMs?: number;
  /** Most records waiting or in flight; `send()` waits for room when full (default 100000). */
  maxBufferedRecords?: number;
  /**
   * Most bytes of records (keys, values, headers) waiting or in flight; `send()` waits for room
   * when full (default 64 MiB). A record larger than that is taken when nothing else is buffered.
   */
  maxBufferedBytes?: number;
  /**
   * Number batches with a producer id so that a retry is stored once (default true). With
   * false, a batch whose answer was lost and that is retried can be stored twice.
   */
  idempotent?: boolean;
}

/** What a producer needs from the client that made it. */
export interface ProducerContext extends ClientParts {
  onClose(producer: Producer): void;
}

type NumericOptions = Required<Omit<ProducerOptions, 'idempotent'>>;

const DEFAULTS = {
  lingerMs: 0,
  maxBatchRecords: 1000,
  maxBatchBytes: 1024 * 1024,
  maxRequestBytes: 8 * 1024 * 1024,
  maxInFlightRequests: 1,
  deliveryTimeoutMs: 30_000,
  maxBufferedRecords: 100_000,
  maxBufferedBytes: 64 * 1024 * 1024,
} satisfies NumericOptions;

/** Topic names already validated, so a hot loop on one topic does not run the schema per record. */
const MAX_VALIDATED_TOPICS = 1_000;

/**
 * Sends records to their partitions' primaries in batches. Make one with
 * `client.producer()`; `send()` resolves once the record is stored on every in-sync
 * replica.
 */
export class Producer {
  private readonly options: NumericOptions;
  /** Producer id and sequence numbers; undefined when not idempotent. */
  private readonly idempotence: IdempotenceManager | undefined;
  private readonly accumulator: Accumulator;
  private readonly sender: ProduceSender;
  /** Partitions ready to send, drained at the end of the tick. */
  private readonly ready = new Set<PartitionQueue>();
  /** Partitions whose batch came back with records waiting, sent at the end of this turn of the event loop. */
  private readonly refills = new Set<PartitionQueue>();
  private drainScheduled = false;
  /** Ready partitions held back while their broker has maxInFlightRequests requests out, by broker URL. */
  private readonly waitingForRoom = new Map<string, Set<PartitionQueue>>();
  /** Records accepted by `send()` and not yet settled, and their bytes; bounded by maxBufferedRecords and maxBufferedBytes. */
  private buffered = 0;
  private bufferedBytes = 0;
  /** Wakes the slow lane when it waits for room in the buffer. */
  private roomWaiter: (() => void) | null = null;
  /** The `send()` calls not yet settled, so `flush()` can wait for exactly those that came before it. */
  private readonly unsettled = new UnsettledSends();
  /**
   * `send()` calls waiting for room in the buffer, oldest first (a FIFO with a moving head).
   * While any waits, every send joins them, and one loop takes them on in the order they were
   * sent, so a later send never overtakes an earlier one.
   */
  private slowLane: Array<SlowSend | undefined> = [];
  private slowLaneHead = 0;
  private slowLaneRunning = false;
  /**
   * Sends whose room is taken and whose topic's map is being looked up, in send order, by topic.
   * Later sends to that topic queue behind them; sends to other topics go on.
   */
  private readonly awaitingMap = new Map<string, SlowSend[]>();
  private readonly validTopics = new Set<string>();
  private flushing = 0;
  private closed = false;
  private closing: Promise<void> | null = null;

  /** @internal Use `TesseraClient.producer()`. */
  constructor(
    private readonly context: ProducerContext,
    options: ProducerOptions = {},
  ) {
    const { idempotent = true, ...numeric } = options;
    if (typeof idempotent !== 'boolean') throw new TesseraError('INVALID_REQUEST', `producer option idempotent must be a boolean, got ${String(idempotent)}`);
    this.options = { ...DEFAULTS, ...definedOnly(numeric) };
    this.idempotence = idempotent ? new IdempotenceManager(context.connection, context.retry) : undefined;
    for (const [name, value] of Object.entries(this.options)) {
      if (!Number.isFinite(value) || value < (name === 'lingerMs' ? 0 : 1)) {
        throw new TesseraError('INVALID_REQUEST', `producer option ${name} must be a positive number, got ${value}`);
      }
    }
    this.accumulator = new Accumulator(this.options);
    this.sender = new ProduceSender(context.connection, {
      requestTimeoutMs: context.requestTimeoutMs,
      maxRequestBytes: this.options.maxRequestBytes,
      maxInFlightRequests: this.options.maxInFlightRequests,
      onRoom: (url) => this.roomAt(url),
      isWaiting: (url) => this.waitingForRoom.has(url),
    });
  }

  /**
   * Sends one record. Resolves with its partition and offset once it is acknowledged;
   * rejects with the TesseraError of a non-retriable failure, or TIMEOUT after
   * `deliveryTimeoutMs` of retriable ones (the record may then be stored or not). A record
   * that is queued is copied into its batch before `send()` returns, so its buffers may be
   * reused at once (one that waits for room or for the topic's map is copied when it is queued).
   */
  send(record: ProducerRecord): Promise<RecordMetadata> {
    if (this.closed) return Promise.reject(new TesseraError('INVALID_REQUEST', 'the producer is closed'));
    const generation = this.unsettled.started();
    try {
      return this.enqueue(record, generation);
    } catch (error) {
      // Invalid input: settled at once.
      this.unsettled.settled(generation);
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
      for (const queue of this.accumulator.queues) {
        if (!queue.inFlight && this.accumulator.hasPending(queue)) this.markReady(queue);
      }
      await this.unsettled.drained();
    } finally {
      this.flushing--;
    }
  }

  /** Refuses new records, delivers (or fails) every accepted one, then detaches from the client. */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closed = true;
    this.closing = this.flush().finally(() => {
      this.accumulator.clearTimers();
      this.context.onClose(this);
    });
    return this.closing;
  }

  /**
   * Validates the record (throws synchronously when invalid) and queues it. With room in the
   * buffer and the topic's map cached, it is queued at once; otherwise it waits on the slow path.
   */
  private enqueue(input: ProducerRecord, generation: number): Promise<RecordMetadata> {
    const topic = this.validTopic(input?.topic);
    const record = prepareRecord(input, Date.now());
    const deadlineMs = performance.now() + this.options.deliveryTimeoutMs;
    const size = recordBytes(record);
    if (this.slowLaneHead === this.slowLane.length && !this.awaitingMap.has(topic) && this.hasRoom(size)) {
      const cached = this.context.metadata.cachedTopic(topic);
      if (cached !== undefined) {
        const partition = this.choosePartition(cached, record, input.partition);
        this.take(size);
        try {
          return this.push(generation, topic, partition, record, size, deadlineMs);
        } catch (error) {
          this.giveBack(1, size);
          throw error;
        }
      }
    }
    return new Promise<RecordMetadata>((resolve, reject) => {
      this.slowLane.push({ explicitPartition: input.partition, generation, topic, record, size, deadlineMs, resolve, reject });
      if (!this.slowLaneRunning) void this.runSlowLane();
    });
  }

  /** Whether a record of `size` bytes fits in the buffer now (one that does not fit an empty buffer goes alone). */
  private hasRoom(size: number): boolean {
    return this.buffered < this.options.maxBufferedRecords && (this.bufferedBytes === 0 || this.bufferedBytes + size <= this.options.maxBufferedBytes);
  }

  private take(size: number): void {
    this.buffered++;
    this.bufferedBytes += size;
  }

  /** Frees buffer room (settled records, or a send that was not queued after all) and wakes the slow lane. */
  private giveBack(records: number, bytes: number): void {
    this.buffered -= records;
    this.bufferedBytes -= bytes;
    const waiter = this.roomWaiter;
    if (waiter !== null) {
      this.roomWaiter = null;
      waiter();
    }
  }

  /**
   * Takes on the sends of the slow lane in order, each once there is room in the buffer: queued
   * at once when its topic's map is cached, else behind the lookup of that map (one per topic).
   * Those that find room and a map queue in one go, so a burst that waited leaves in one batch.
   */
  private async runSlowLane(): Promise<void> {
    this.slowLaneRunning = true;
    try {
      while (this.slowLaneHead < this.slowLane.length) {
        const next = this.slowLane[this.slowLaneHead]!;
        if (!this.hasRoom(next.size)) {
          await new Promise<void>((resolve) => (this.roomWaiter = resolve));
          continue;
        }
        // Taken off the lane (its slot cleared, so a lane that never empties keeps no records).
        this.slowLane[this.slowLaneHead++] = undefined;
        if (this.slowLaneHead === this.slowLane.length) {
          this.slowLane = [];
          this.slowLaneHead = 0;
        } else if (this.slowLaneHead >= 1024 && this.slowLaneHead * 2 >= this.slowLane.length) {
          this.slowLane = this.slowLane.slice(this.slowLaneHead);
          this.slowLaneHead = 0;
        }
        this.take(next.size);
        const waiting = this.awaitingMap.get(next.topic);
        if (waiting !== undefined) {
          waiting.push(next);
          continue;
        }
        const cached = this.context.metadata.cachedTopic(next.topic);
        if (cached !== undefined) {
          this.queueTaken(next, cached);
          continue;
        }
        this.awaitingMap.set(next.topic, [next]);
        void this.lookUpMap(next.topic);
      }
    } finally {
      this.slowLaneRunning = false;
    }
  }

  /**
   * Looks up a topic's map for the sends waiting for it, then queues them in order; when it
   * cannot be had, every one of them fails with the same error (they waited for the same answer).
   */
  private async lookUpMap(topic: string): Promise<void> {
    let metadata: TopicMetadata | undefined;
    let failure: unknown;
    try {
      metadata = await this.topicMetadata(topic);
    } catch (error) {
      failure = error;
    }
    const waiting = this.awaitingMap.get(topic) ?? [];
    this.awaitingMap.delete(topic);
    for (const send of waiting) {
      if (metadata !== undefined) this.queueTaken(send, metadata);
      else this.refuseTaken(send, failure);
    }
  }

  /** Queues a slow send whose buffer room is taken. */
  private queueTaken(send: SlowSend, metadata: TopicMetadata): void {
    try {
      const partition = this.choosePartition(metadata, send.record, send.explicitPartition);
      send.resolve(this.push(send.generation, send.topic, partition, send.record, send.size, send.deadlineMs));
    } catch (error) {
      this.refuseTaken(send, error);
    }
  }

  private refuseTaken(send: SlowSend, error: unknown): void {
    this.giveBack(1, send.size);
    this.unsettled.settled(send.generation);
    send.reject(error);
  }

  /** Puts an accepted record, its buffer room taken, on its partition's queue. */
  private push(generation: number, topic: string, partition: number, record: PreparedRecord, size: number, deadlineMs: number): Promise<RecordMetadata> {
    const queue = this.accumulator.queueFor(topic, partition);
    const sent = this.accumulator.append(queue, record, size, generation, deadlineMs);
    this.schedule(queue);
    return sent;
  }

  private validTopic(name: string): string {
    if (this.validTopics.has(name)) return name;
    const topic = parseOrThrow(topicName, name, 'topic name');
    if (this.validTopics.size >= MAX_VALIDATED_TOPICS) this.validTopics.clear();
    this.validTopics.add(topic);
    return topic;
  }

  /**
   * The topic's map. Without a cached map it is retried per the client's retry policy
   * (not the whole delivery timeout), so a coordinator that was never reachable is
   * reported within seconds.
   */
  private topicMetadata(topic: string): Promise<TopicMetadata> {
    const cached = this.context.metadata.cachedTopic(topic);
    if (cached !== undefined) return Promise.resolve(cached);
    return retry(() => this.context.metadata.topic(topic), this.context.retry);
  }

  private choosePartition(topic: TopicMetadata, record: PreparedRecord, explicit: number | undefined): number {
    const count = topic.partitions.length;
    if (explicit !== undefined) {
      if (!Number.isInteger(explicit) || explicit < 0 || explicit >= count) {
        throw new TesseraError('INVALID_REQUEST', `topic ${topic.name} has partitions 0..${count - 1}, not ${explicit}`);
      }
      return explicit;
    }
    if (record.key !== null) return partitionForKey(record.key, count);
    return this.accumulator.stickyFor(topic.name, count);
  }

  /** Marks the partition ready when its batch is full, when flushing or not lingering; else starts the linger timer. */
  private schedule(queue: PartitionQueue): void {
    if (queue.inFlight) return; // The batch goes out when the one in flight is acknowledged.
    if (this.accumulator.isFull(queue) || this.flushing > 0 || this.options.lingerMs === 0) {
      this.markReady(queue);
    } else if (queue.lingerTimer === null) {
      queue.lingerTimer = setTimeout(() => {
        queue.lingerTimer = null;
        this.markReady(queue);
      }, this.options.lingerMs);
    }
  }

  private markReady(queue: PartitionQueue): void {
    this.ready.add(queue);
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    queueMicrotask(() => this.drain());
  }

  /**
   * Sends the batch of every ready partition, and with them the waiting records of every
   * other partition the same brokers lead (they would otherwise need a request of their own
   * a moment later): one request per broker.
   */
  private drain(): void {
    this.drainScheduled = false;
    const ready = [...this.ready];
    this.ready.clear();
    const brokers = new Set<number>();
    for (const queue of ready) {
      if (this.heldForRoom(queue)) continue;
      const primary = this.primaryOf(queue);
      if (primary !== null) brokers.add(primary);
      this.sendNext(queue);
    }
    if (brokers.size === 0) return;
    for (const queue of this.accumulator.queues) {
      if (queue.inFlight || !this.accumulator.hasPending(queue)) continue;
      const primary = this.primaryOf(queue);
      if (primary !== null && brokers.has(primary) && !this.heldForRoom(queue)) this.sendNext(queue);
    }
  }

  private primaryOf(queue: PartitionQueue): number | null {
    return this.context.metadata.cachedTopic(queue.topic)?.partitions[queue.partition]?.primary ?? null;
  }

  /**
   * Holds a partition back while its primary has the most requests out (its batch is cut
   * when one comes back, with the records that arrived meanwhile). A partition whose primary
   * the cached map does not name (not cached, offline) is never held: delivery finds it,
   * retrying until there is one.
   */
  private heldForRoom(queue: PartitionQueue): boolean {
    let url: string | undefined;
    try {
      url = this.context.metadata.cachedPrimaryUrl(queue.topic, queue.partition);
    } catch {
      return false; // PARTITION_OFFLINE or unknown here; deliver() gets the same error and retries it
    }
    if (url === undefined || this.sender.hasRoom(url)) return false;
    let waiting = this.waitingForRoom.get(url);
    if (waiting === undefined) this.waitingForRoom.set(url, (waiting = new Set()));
    waiting.add(queue);
    return true;
  }

  /** A request to `url` came back: the partitions waiting for it are ready again. */
  private roomAt(url: string): void {
    const waiting = this.waitingForRoom.get(url);
    if (waiting === undefined) return;
    this.waitingForRoom.delete(url);
    for (const queue of waiting) this.markReady(queue);
  }

  /** Cuts the next batch of a partition and delivers it, unless a batch of the partition is out. */
  private sendNext(queue: PartitionQueue): void {
    if (queue.lingerTimer !== null) {
      clearTimeout(queue.lingerTimer);
      queue.lingerTimer = null;
    }
    if (queue.inFlight || !this.accumulator.hasPending(queue)) return;
    const batch = this.accumulator.takeBatch(queue);
    // Registered after every record's own reaction (the batch takes no more records now), so the
    // records' callers hear of their records before a flush() waiting for them returns.
    const settle = () => {
      this.settledBatch(batch);
      queue.inFlight = false;
      if (this.accumulator.hasPending(queue)) this.refillSoon(queue);
    };
    batch.settled.then(settle, settle);
    queue.inFlight = true;
    void this.deliver(queue, batch);
  }

  /**
   * Records that arrived while a partition's batch was out have waited a whole request. They
   * leave at the end of this turn of the event loop, together with what the callers of the
   * acknowledged records send in answer (their callbacks run after this), not in a batch of
   * their own just before those. A send in the meantime takes them along at once.
   */
  private refillSoon(queue: PartitionQueue): void {
    this.refills.add(queue);
    if (this.refills.size > 1) return;
    setImmediate(() => {
      const queues = [...this.refills];
      this.refills.clear();
      for (const waiting of queues) {
        if (!waiting.inFlight && this.accumulator.hasPending(waiting)) this.markReady(waiting);
      }
    });
  }

  /**
   * Delivers one batch to the partition's primary until it is acknowledged, fails with a
   * non-retriable error, or its first record's delivery deadline passes; settles the batch
   * (and so every record's `send()`) either way. Never rejects.
   */
  private async deliver(queue: PartitionQueue, batch: OpenBatch): Promise<void> {
    const { topic, partition } = queue;
    const { deadlineMs } = batch;
    const count = batch.builder.recordCount;
    let sequence: BatchSequence | undefined;
    let attempts = 0;
    try {
      if (this.idempotence !== undefined) {
        const identity = await this.idempotence.current(deadlineMs);
        sequence = this.idempotence.take(identity, queue.sequence, count);
      }
      // Encoded once: every retry sends these bytes, with the same sequence numbers.
      const encoded = batch.builder.build(
        sequence === undefined ? {} : { producerId: sequence.producerId, producerEpoch: sequence.producerEpoch, baseSequence: sequence.baseSequence },
      );
      const ack = await retry(
        async () => {
          const metadata = this.context.metadata;
          const route = metadata.cachedRoute(topic, partition) ?? (await metadata.route(topic, partition));
          attempts++;
          return this.sender.submit(route, topic, partition, encoded);
        },
        {
          ...this.context.retry,
          retries: Infinity,
          deadlineMs,
          onRetry: async (error) => {
            if (needsMetadataRefresh(error)) await this.context.metadata.refresh().catch(() => undefined);
          },
        },
      );
      if (ack.lastOffset - ack.baseOffset + 1 !== count || !Number.isSafeInteger(ack.baseOffset)) {
        throw new TesseraError('INTERNAL', `${topic}/${partition}: broker stored offsets ${ack.baseOffset}..${ack.lastOffset} for ${count} records`);
      }
      batch.resolve({ topic, partition, baseOffset: ack.baseOffset });
    } catch (error) {
      if (!isRetriable(error)) {
        if (sequence !== undefined) this.idempotence?.failed(sequence, queue.sequence, error, attempts);
        batch.reject(error);
        return;
      }
      const reason = error instanceof Error ? error.message : String(error);
      const timeout = new TesseraError(
        'TIMEOUT',
        `${topic}/${partition}: not acknowledged within ${this.options.deliveryTimeoutMs} ms (last error: ${reason}); the records may or may not be stored`,
        {},
        { cause: error },
      );
      if (sequence !== undefined) this.idempotence?.failed(sequence, queue.sequence, timeout, attempts);
      batch.reject(timeout);
    }
  }

  /** A batch is settled: its records' buffer slots and their places among the unsettled sends are freed. */
  private settledBatch(batch: OpenBatch): void {
    const runs = batch.generations;
    for (let i = 0; i < runs.length; i += 2) this.unsettled.settled(runs[i]!, runs[i + 1]!);
    this.giveBack(batch.builder.recordCount, batch.recordBytes);
  }
}

/** A `send()` on the slow lane: validated, waiting for room and for its topic's map. */
interface SlowSend {
  explicitPartition: number | undefined;
  generation: number;
  topic: string;
  record: PreparedRecord;
  /** Its bytes, as the buffer bound counts them. */
  size: number;
  deadlineMs: number;
  resolve(sent: Promise<RecordMetadata>): void;
  reject(error: unknown): void;
}

/** A record's bytes as the buffer bound counts them: key, value, header names and values. */
function recordBytes(record: PreparedRecord): number {
  let bytes = (record.key?.length ?? 0) + (record.value?.length ?? 0);
  if (record.headers !== undefined) for (const header of record.headers) bytes += header.key.length + (header.value?.length ?? 0);
  return bytes;
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}
