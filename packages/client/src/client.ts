/**
 * The entry point of the client library: one `TesseraClient` per cluster holds the
 * connection pool and the metadata cache that its admin, producers and consumers share.
 */
import { DEFAULT_COORDINATOR_URL, DEFAULT_RETRY, TesseraError, type HttpTlsOptions, type RetryOptions } from '@tessera/protocol';
import { AdminClient, type Admin } from './admin/admin.js';
import { MetadataCache } from './cluster/metadata-cache.js';
import { Connection } from './connection/connection.js';
import { Consumer, type ConsumerOptions } from './consumer/consumer.js';
import { Producer, type ProducerOptions } from './producer/producer.js';

/** How a client reaches the cluster. */
export interface ClientOptions {
  /** The coordinator's URL (default `process.env.TESSERA_COORDINATOR`, else `http://127.0.0.1:7070`). */
  coordinator?: string;
  /** Deadline of each HTTP request, in ms (default 10000; a fetch adds its long-poll wait). */
  requestTimeoutMs?: number;
  /** Backoff between retries of producers and consumers (protocol defaults otherwise). */
  retry?: Partial<RetryOptions>;
  /** The cluster map is refreshed in the background when older than this, in ms (default 30000). */
  metadataMaxAgeMs?: number;
  /** TLS settings (CA, client certificate and key) for brokers reached over https. */
  tls?: HttpTlsOptions;
}

/**
 * A connection to one Tessera cluster.
 *
 * ```ts
 * const client = new TesseraClient({ coordinator: 'http://127.0.0.1:7070' });
 * await client.admin.createTopic({ name: 'orders', partitions: 6 });
 * const producer = client.producer();
 * await producer.send({ topic: 'orders', key: 'customer-1', value: 'hello' });        // text is sent as UTF-8
 * await producer.send({ topic: 'orders', value: Buffer.from([0, 1, 2]), headers: { trace: 'abc' } });
 * await producer.send({ topic: 'orders', value: codecs.json.encode({ id: 7 }) });
 * const consumer = client.consumer({ group: 'billing', topic: 'orders', fromBeginning: true });
 * const records = await consumer.poll();                 // keys, values, headers are Buffers
 * console.log(records[0]?.value?.toString(), codecs.json.decode(records[2]!.value));
 * await consumer.commit();
 * await client.close();
 * ```
 */
export class TesseraClient {
  /** Topic, group and cluster administration. */
  readonly admin: Admin;
  private readonly connection: Connection;
  private readonly metadataCache: MetadataCache;
  private readonly retryOptions: RetryOptions;
  private readonly requestTimeoutMs: number;
  private readonly producers = new Set<Producer>();
  private readonly consumers = new Set<Consumer>();
  private closed = false;

  constructor(options: ClientOptions = {}) {
    const coordinatorUrl = options.coordinator ?? process.env.TESSERA_COORDINATOR ?? DEFAULT_COORDINATOR_URL;
    if (!/^https?:\/\/[^/]+/.test(coordinatorUrl)) {
      throw new TesseraError('INVALID_REQUEST', `coordinator URL must look like http://host:port, got ${JSON.stringify(coordinatorUrl)}`);
    }
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.retryOptions = { ...DEFAULT_RETRY, ...definedOnly(options.retry ?? {}) };
    this.connection = new Connection({ coordinatorUrl, requestTimeoutMs: this.requestTimeoutMs, tls: options.tls });
    this.metadataCache = new MetadataCache(this.connection, options.metadataMaxAgeMs ?? 30_000);
    this.admin = new AdminClient(this.connection, this.metadataCache);
  }

  /** The coordinator URL this client talks to. */
  get coordinatorUrl(): string {
    return this.connection.coordinatorUrl;
  }

  /** A new producer; `close()` of the client closes it too. */
  producer(options: ProducerOptions = {}): Producer {
    this.assertOpen();
    const producer = new Producer(
      {
        connection: this.connection,
        metadata: this.metadataCache,
        retry: this.retryOptions,
        requestTimeoutMs: this.requestTimeoutMs,
        onClose: (p) => this.producers.delete(p),
      },
      options,
    );
    this.producers.add(producer);
    return producer;
  }

  /** A new consumer group member; it joins on its first `poll()` or `subscribe()`. */
  consumer(options: ConsumerOptions): Consumer {
    this.assertOpen();
    const consumer = new Consumer(
      {
        connection: this.connection,
        metadata: this.metadataCache,
        retry: this.retryOptions,
        requestTimeoutMs: this.requestTimeoutMs,
        onClose: (c) => this.consumers.delete(c),
      },
      options,
    );
    this.consumers.add(consumer);
    return consumer;
  }

  /** Closes every producer (delivering what they hold) and consumer (committing and leaving), then the connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.producers].map((p) => p.close()));
    await Promise.allSettled([...this.consumers].map((c) => c.close()));
    await this.connection.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new TesseraError('INVALID_REQUEST', 'the client is closed');
  }
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}
