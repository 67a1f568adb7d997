/**
 * The entry point of the client library: one `TesseraClient` per cluster holds the
 * connection pool and the metadata cache that its admin, producers and consumers share.
 */
import { DEFAULT_RETRY, TesseraError, type RetryOptions, type TlsClientOptions } from '@tessera/protocol';
import { AdminClient, type Admin } from './admin/admin.js';
import { Subscriptions } from './admin/subscriptions.js';
import { MetadataCache } from './cluster/metadata-cache.js';
import { Connection, type DataTransport } from './connection/connection.js';
import { type Credentials, discoverCredentials } from './connection/credentials.js';
import { defaultCoordinatorUrl } from './connection/dev-cluster.js';
import { discoverTls } from './connection/tls.js';
import type { ClientParts } from './internal/client-parts.js';
import { Consumer, type ConsumerOptions } from './consumer/consumer.js';
import { Reader, type ReaderOptions } from './consumer/reader.js';
import { Producer, type ProducerOptions } from './producer/producer.js';

/** How a client reaches the cluster. */
export interface ClientOptions {
  /** The coordinator's URL (default: TESSERA_COORDINATOR, else a `tessera dev` cluster's from `.tessera/dev`, else `http://127.0.0.1:7070`). */
  coordinator?: string;
  /** Deadline of each HTTP request, in ms (default 10000; a fetch adds its long-poll wait). */
  requestTimeoutMs?: number;
  /** Backoff between retries of producers and consumers (protocol defaults otherwise). */
  retry?: Partial<RetryOptions>;
  /** The cluster map is refreshed in the background when older than this, in ms (default 30000). */
  metadataMaxAgeMs?: number;
  /**
   * Who the client is: `{ principal, secret }` (exchanged for short-lived tokens) or `{ token }`.
   * Default: TESSERA_TOKEN, else TESSERA_PRINCIPAL and TESSERA_SECRET, else the admin credentials
   * of a `tessera dev` cluster at this coordinator (from `.tessera/dev`); `null` sends none.
   */
  credentials?: Credentials | null;
  /**
   * What the cluster's certificates must chain to, for an https coordinator: `{ ca }` (PEM), plus
   * `cert`/`key` for a client certificate. Default: TESSERA_CA_FILE, else the CA of a
   * `tessera dev` cluster (`.tessera/dev/tls/ca.crt`), else the system CAs. The server's
   * certificate is always verified unless `rejectUnauthorized: false`.
   */
  tls?: TlsClientOptions;
  /**
   * How produce, fetch and commit reach the brokers: `stream` (default), one kept-open data
   * stream per broker, or `http`, an HTTP request per call. Default: TESSERA_DATA_TRANSPORT,
   * else `stream`. A broker that offers no stream gets HTTP requests either way.
   */
  transport?: DataTransport;
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
  /** Push subscriptions: the cluster delivers a topic's records to an HTTP endpoint. */
  readonly subscriptions: Subscriptions;
  /** Shared by every producer, consumer and reader of this client. */
  private readonly parts: ClientParts;
  private readonly producers = new Set<Producer>();
  private readonly consumers = new Set<Consumer>();
  private readonly readers = new Set<Reader>();
  private closed = false;

  constructor(options: ClientOptions = {}) {
    const coordinatorUrl = options.coordinator ?? defaultCoordinatorUrl();
    if (!/^https?:\/\/[^/]+/.test(coordinatorUrl)) {
      throw new TesseraError('INVALID_REQUEST', `coordinator URL must look like http://host:port, got ${JSON.stringify(coordinatorUrl)}`);
    }
    const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    const retry = { ...DEFAULT_RETRY, ...definedOnly(options.retry ?? {}) };
    const credentials = options.credentials === undefined ? discoverCredentials(coordinatorUrl) : (options.credentials ?? undefined);
    const tls = options.tls ?? discoverTls(coordinatorUrl);
    const transport = options.transport ?? defaultTransport();
    const connection = new Connection({ coordinatorUrl, requestTimeoutMs, credentials, transport, ...(tls ? { tls } : {}) });
    const metadata = new MetadataCache(connection, options.metadataMaxAgeMs ?? 30_000);
    this.parts = { connection, metadata, retry, requestTimeoutMs };
    this.admin = new AdminClient(connection, metadata);
    this.subscriptions = new Subscriptions(connection);
  }

  /** The coordinator URL this client talks to. */
  get coordinatorUrl(): string {
    return this.parts.connection.coordinatorUrl;
  }

  /** A new producer; `close()` of the client closes it too. */
  producer(options: ProducerOptions = {}): Producer {
    this.assertOpen();
    const producer = new Producer({ ...this.parts, onClose: (p) => this.producers.delete(p) }, options);
    this.producers.add(producer);
    return producer;
  }

  /** A new consumer group member; it joins on its first `poll()` or `subscribe()`. */
  consumer(options: ConsumerOptions): Consumer {
    this.assertOpen();
    const consumer = new Consumer({ ...this.parts, onClose: (c) => this.consumers.delete(c), producer: () => this.producer() }, options);
    this.consumers.add(consumer);
    return consumer;
  }

  /** A reader of chosen partitions from chosen offsets, without a group (no commits). */
  reader(options: ReaderOptions): Reader {
    this.assertOpen();
    const reader = new Reader({ ...this.parts, onClose: (r) => this.readers.delete(r) }, options);
    this.readers.add(reader);
    return reader;
  }

  /** Closes every producer (delivering what they hold) and consumer (committing and leaving), then the connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.producers].map((p) => p.close()));
    await Promise.allSettled([...this.consumers].map((c) => c.close()));
    await Promise.allSettled([...this.readers].map((r) => r.close()));
    await this.parts.connection.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new TesseraError('INVALID_REQUEST', 'the client is closed');
  }
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}

/** TESSERA_DATA_TRANSPORT, else `stream`. */
function defaultTransport(): DataTransport {
  const value = process.env.TESSERA_DATA_TRANSPORT;
  if (value === undefined || value === '') return 'stream';
  if (value !== 'stream' && value !== 'http') {
    throw new TesseraError('INVALID_REQUEST', `TESSERA_DATA_TRANSPORT must be stream or http, got ${JSON.stringify(value.slice(0, 50))}`);
  }
  return value;
}
