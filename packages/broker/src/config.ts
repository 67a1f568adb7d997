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
import type { Durability } from './storage/index.js';

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
  maxValueBytes: number;
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
  limits?: Partial<BrokerLimits>;
}

/** Every queue and batch of the broker has a bound; these are them. */
export interface BrokerLimits {
  /** Most records waiting for a flush in one partition; more get 503 UNAVAILABLE (retriable). */
  maxQueuedRecordsPerPartition: number;
  /** Most records in one flush (one transaction, one replicate call). */
  maxFlushRecords: number;
  /** Records and (estimated) bytes per replicate call, for flushes and catch-up alike. */
  catchUpBatchRecords: number;
  catchUpBatchBytes: number;
  /** Most fetches waiting in a long-poll at once; more are answered at once (empty). */
  maxPendingFetches: number;
  fetchMaxRecords: number;
  fetchMaxBytes: number;
  /** Deadline of one call to the coordinator. */
  coordinatorTimeoutMs: number;
}

export const DEFAULT_LIMITS: BrokerLimits = {
  maxQueuedRecordsPerPartition: 2 * MAX_RECORDS_PER_REQUEST,
  maxFlushRecords: MAX_RECORDS_PER_REQUEST,
  catchUpBatchRecords: 20_000,
  // Well below the 16 MiB request body limit: JSON escaping can make a body larger than its estimate.
  catchUpBatchBytes: 4 * 1024 * 1024,
  maxPendingFetches: 10_000,
  fetchMaxRecords: DEFAULT_FETCH_MAX_RECORDS,
  fetchMaxBytes: DEFAULT_FETCH_MAX_BYTES,
  coordinatorTimeoutMs: 2_000,
};

export const DEFAULT_CONFIG = {
  port: 7071,
  host: '127.0.0.1',
  coordinatorUrl: DEFAULT_COORDINATOR_URL,
  durability: 'full' as Durability,
  heartbeatMs: DEFAULT_HEARTBEAT_MS,
  replicaTimeoutMs: 2_000,
  maxValueBytes: DEFAULT_MAX_VALUE_BYTES,
};
