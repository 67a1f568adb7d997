/** The broker's configuration, as main.ts parses it from flags and env, or as a test passes it. */
import {
  DEFAULT_COORDINATOR_URL,
  DEFAULT_FETCH_MAX_BYTES,
  DEFAULT_FETCH_MAX_RECORDS,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_MAX_VALUE_BYTES,
  MAX_RECORDS_PER_REQUEST,
} from '@tessera/protocol';
import type { TlsClientOptions, TlsServerOptions } from '@tessera/protocol';
import type { Logger, ServerLimits } from '@tessera/service';
import { DEFAULT_IDEMPOTENCY_WINDOW_MS, DEFAULT_PRODUCER_STATE_EXPIRY_MS, type Durability } from './storage/index.js';

export type ReplicationTransport = 'stream' | 'http';

export interface BrokerConfig {
  id: number;
  /** Port to listen on; 0 picks a free one (the advertised URL then uses the actual port). */
  port: number;
  host: string;
  /** The URL clients reach this broker at (default http://HOST:PORT). */
  advertisedUrl?: string;
  /** The URL the coordinator and other brokers reach this broker at (default: the advertised URL). */
  internalUrl?: string;
  dataDir: string;
  coordinatorUrl: string;
  durability: Durability;
  heartbeatMs: number;
  /** How long a secondary in the ISR may fail before the primary asks to shrink the ISR. */
  replicaTimeoutMs: number;
  /**
   * How this broker sends replicate exchanges: `stream` (default) on a kept-open connection per
   * peer (replication/stream/), `http` as one `POST /internal/replicate` each. Either way it
   * answers both.
   */
  replicationTransport?: ReplicationTransport;
  maxValueBytes: number;
  /** How long a partition keeps the state of an idempotent producer it has not stored a batch of (default 7 days). */
  producerStateExpiryMs?: number;
  /** How long a partition remembers the Idempotency-Key of a JSON produce (default 2 minutes). */
  idempotencyWindowMs?: number;
  logLevel?: string;
  logPretty?: boolean;
  /** Serve HTTPS with this certificate (else plain HTTP). */
  tls?: TlsServerOptions;
  /** What the coordinator's and other brokers' certificates must chain to. */
  clientTls?: TlsClientOptions;
  /** Cluster secrets (the first signs): calls between services are signed and checked with them. */
  clusterSecrets?: string[];
  serverLimits?: Partial<ServerLimits>;
  /** A logger to use instead of creating one (tests). */
  logger?: Logger;
  /** What to do on a broken invariant or a failed storage write (default: log it and exit 1; tests pass their own). */
  onFatal?: (error: Error) => void;
  limits?: Partial<BrokerLimits>;
  /** Time between two background retention passes over the replicas held here. */
  retentionCheckMs: number;
  /** Size of the file kept in the data dir and deleted when the disk fills, so deletions can commit. */
  storageReserveBytes: number;
  /** Below this many bytes available for data, produce, commits and replicated records get STORAGE_FULL. */
  storageMinFreeBytes: number;
}

/** Every queue and batch of the broker has a bound; these are them. */
export interface BrokerLimits {
  /** Most records waiting for a flush in one partition; more get 503 UNAVAILABLE (retriable). */
  maxQueuedRecordsPerPartition: number;
  /** Most records in one partition's flush (one push to its secondary). */
  maxFlushRecords: number;
  /** Bytes of batches per push to a follower, for flushes and catch-up alike (at least one batch). */
  catchUpBatchBytes: number;
  /** Most bytes of batches in one replication exchange between two brokers (a larger push goes alone). */
  maxExchangeBytes: number;
  /** Largest RecordBatch a producer may send (Kafka's max.message.bytes); a larger one is 413. */
  maxBatchBytes: number;
  /** Most fetches waiting in a long-poll at once; more are answered at once (empty). */
  maxPendingFetches: number;
  fetchMaxRecords: number;
  fetchMaxBytes: number;
  /** Deadline of one call to the coordinator. */
  coordinatorTimeoutMs: number;
  /** Most batches one replica deletes in one retention pass (one statement in the group commit). */
  retentionMaxBatchesPerPass: number;
}

export const DEFAULT_LIMITS: BrokerLimits = {
  maxQueuedRecordsPerPartition: 2 * MAX_RECORDS_PER_REQUEST,
  maxFlushRecords: MAX_RECORDS_PER_REQUEST,
  catchUpBatchBytes: 4 * 1024 * 1024,
  // Well below the 16 MiB request body limit.
  maxExchangeBytes: 8 * 1024 * 1024,
  // A 1 MiB value with its key and headers fits; the request body limit (16 MiB) bounds a whole produce.
  maxBatchBytes: 4 * 1024 * 1024,
  maxPendingFetches: 10_000,
  fetchMaxRecords: DEFAULT_FETCH_MAX_RECORDS,
  fetchMaxBytes: DEFAULT_FETCH_MAX_BYTES,
  coordinatorTimeoutMs: 2_000,
  retentionMaxBatchesPerPass: 1_000,
};

export const DEFAULT_CONFIG = {
  port: 7071,
  host: '127.0.0.1',
  coordinatorUrl: DEFAULT_COORDINATOR_URL,
  durability: 'full' as Durability,
  producerStateExpiryMs: DEFAULT_PRODUCER_STATE_EXPIRY_MS,
  idempotencyWindowMs: DEFAULT_IDEMPOTENCY_WINDOW_MS,
  heartbeatMs: DEFAULT_HEARTBEAT_MS,
  replicaTimeoutMs: 2_000,
  maxValueBytes: DEFAULT_MAX_VALUE_BYTES,
  retentionCheckMs: 30_000,
  storageReserveBytes: 32 * 1024 * 1024,
  storageMinFreeBytes: 64 * 1024 * 1024,
};
