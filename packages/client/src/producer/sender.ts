/**
 * The producer's sender: one channel per broker that gathers the batches submitted in the
 * same tick, for every partition that broker leads, into one `POST /produce` frame, and
 * hands each partition its own result (offsets, or its error). The producer keeps at most
 * one batch per partition in flight, so a frame never carries two batches of a partition.
 *
 * A channel has at most `maxInFlightRequests` requests out. Batches submitted while it is
 * full wait and leave together in the next request, and the producer is told when a channel
 * has room again (`onRoom`), so it can hold a ready partition back and cut its batch only
 * then, with every record that arrived meanwhile: fewer, larger requests and batches when
 * many partitions each have a few records.
 */
import {
  BROKER_ROUTES,
  encodeFrame,
  TesseraError,
  type ErrorBody,
  type ProduceFrameHead,
} from '@tessera/protocol';
import type { PartitionRoute } from '../cluster/metadata-cache.js';
import type { Connection } from '../connection/connection.js';

/** Where a partition's batch was stored. */
export interface PartitionAck {
  baseOffset: number;
  lastOffset: number;
  epoch: number;
}

/** `POST /produce` answer: one entry per partition of the request, in request order. */
interface ProduceBatchesResponse {
  partitions: Array<
    | { topic: string; partition: number; baseOffset: number; lastOffset: number; epoch: number; error?: undefined }
    | { topic: string; partition: number; error: ErrorBody['error'] }
  >;
}

interface Submitted {
  topic: string;
  partition: number;
  /** The partition's epoch in the map the batch was routed by. */
  epoch: number;
  batch: Buffer;
  resolve(ack: PartitionAck): void;
  reject(error: unknown): void;
}

export interface SenderOptions {
  requestTimeoutMs: number;
  /** Most bytes of batches in one request; a batch larger than this goes alone. */
  maxRequestBytes: number;
  /** Most requests out to one broker at a time. */
  maxInFlightRequests: number;
  /** A request to the broker at `url` came back: it has room for another. */
  onRoom(url: string): void;
  /** Whether partitions wait for room at the broker at `url`. */
  isWaiting(url: string): boolean;
}

export class ProduceSender {
  private readonly channels = new Map<string, BrokerChannel>();

  constructor(
    private readonly connection: Connection,
    private readonly options: SenderOptions,
  ) {}

  /**
   * Sends `batch` (one encoded RecordBatch) for the partition in the next request to its
   * primary (`route`). Resolves with the partition's offsets; rejects with its own error (or
   * the request's, when the whole request failed).
   */
  submit(route: PartitionRoute, topic: string, partition: number, batch: Buffer): Promise<PartitionAck> {
    let channel = this.channels.get(route.url);
    if (channel === undefined) {
      channel = new BrokerChannel(route.url, this.connection, this.options);
      this.channels.set(route.url, channel);
    }
    return channel.submit(topic, partition, route.epoch, batch);
  }

  /** Whether a batch submitted now for the broker at `url` leaves without waiting for a request to come back. */
  hasRoom(url: string): boolean {
    return this.channels.get(url)?.hasRoom() ?? true;
  }
}

class BrokerChannel {
  private pending: Submitted[] = [];
  private scheduled = false;
  private inFlight = 0;

  constructor(
    private readonly url: string,
    private readonly connection: Connection,
    private readonly options: SenderOptions,
  ) {}

  submit(topic: string, partition: number, epoch: number, batch: Buffer): Promise<PartitionAck> {
    return new Promise<PartitionAck>((resolve, reject) => {
      this.pending.push({ topic, partition, epoch, batch, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // Everything submitted in this tick shares the request.
        queueMicrotask(() => this.flush());
      }
    });
  }

  /** Fewer than the most requests are out (submits of one tick share a request). */
  hasRoom(): boolean {
    return this.inFlight < this.options.maxInFlightRequests;
  }

  /** Sends what is pending, in requests of at most maxRequestBytes, while there is room; the rest waits for a request to come back. */
  private flush(): void {
    this.scheduled = false;
    const pending = this.pending;
    let start = 0;
    while (start < pending.length && this.inFlight < this.options.maxInFlightRequests) {
      let bytes = pending[start]!.batch.length;
      let end = start + 1;
      while (end < pending.length && bytes + pending[end]!.batch.length <= this.options.maxRequestBytes) {
        bytes += pending[end]!.batch.length;
        end++;
      }
      this.inFlight++;
      void this.send(pending.slice(start, end)).finally(() => {
        const open = () => {
          this.inFlight--;
          if (this.pending.length > 0) this.flush();
          this.options.onRoom(this.url);
        };
        // With partitions waiting, the room opens after the answered partitions have queued
        // what arrived meanwhile (their promise callbacks run first), so those leave in one
        // request with the waiting ones, not in a request of their own before them. With
        // nobody waiting it opens now: a producer sending one record at a time waits for nothing.
        if (this.pending.length > 0 || this.options.isWaiting(this.url)) setImmediate(open);
        else open();
      });
      start = end;
    }
    this.pending = pending.slice(start);
  }

  /** One request; settles every entry, never rejects. */
  private async send(entries: Submitted[]): Promise<void> {
    const head: ProduceFrameHead = {
      partitions: entries.map((entry) => ({ topic: entry.topic, partition: entry.partition, epoch: entry.epoch, bytes: entry.batch.length })),
    };
    let answer: ProduceBatchesResponse;
    try {
      answer = await this.connection.brokerFrame<ProduceBatchesResponse>(
        this.url,
        BROKER_ROUTES.produceBatches,
        encodeFrame(head, entries.map((entry) => entry.batch)),
        { timeoutMs: this.options.requestTimeoutMs },
      );
      if (!Array.isArray(answer?.partitions) || answer.partitions.length !== entries.length) {
        throw new TesseraError('INTERNAL', `broker ${this.url} answered ${answer?.partitions?.length} partitions to a produce of ${entries.length}`);
      }
    } catch (error) {
      for (const entry of entries) entry.reject(error);
      return;
    }
    entries.forEach((entry, i) => {
      const result = answer.partitions[i]!;
      if (result.topic !== entry.topic || result.partition !== entry.partition) {
        entry.reject(new TesseraError('INTERNAL', `broker ${this.url} answered ${result.topic}/${result.partition} in the place of ${entry.topic}/${entry.partition}`));
      } else if (result.error !== undefined) {
        entry.reject(TesseraError.fromBody({ error: result.error }) ?? new TesseraError('INTERNAL', String(result.error.message)));
      } else {
        entry.resolve({ baseOffset: result.baseOffset, lastOffset: result.lastOffset, epoch: result.epoch });
      }
    });
  }
}
