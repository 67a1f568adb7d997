import {
  DEFAULT_BROKER_TIMEOUT_MS,
  DEFAULT_COORDINATOR_PORT,
  DEFAULT_GROUP_SESSION_TIMEOUT_MS,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_TOKEN_TTL_MS,
  DEFAULT_ALLOWED_TARGETS,
  type TlsClientOptions,
  type TlsServerOptions,
} from '@tessera/protocol';
import type { ServerLimits } from '@tessera/service';

export const DEFAULT_MAX_CONCURRENT_MOVES = 2;
export const DEFAULT_REPLACE_DEAD_AFTER_MS = 30_000;
export const DEFAULT_BROKER_START_GRACE_MS = 60_000;
export const DEFAULT_LEADERSHIP_BALANCE_DELAY_MS = 5_000;
/** Retention of a topic that sets none: 7 days, like Kafka's default, and no size limit (-1). */
export const DEFAULT_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;
export const DEFAULT_RETENTION_BYTES = -1;
/** A consumer group without members this long is deleted with its committed offsets: 7 days, like Kafka's offset retention. */
export const DEFAULT_GROUP_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;
/** The coordinator writes little: a small reserve lets topic deletions commit on a full disk. */
export const DEFAULT_STORAGE_RESERVE_BYTES = 8 * 1024 * 1024;
export const DEFAULT_STORAGE_MIN_FREE_BYTES = 16 * 1024 * 1024;

/** Everything the coordinator is started with; `main.ts` fills it from flags and env. */
export interface CoordinatorConfig {
  /** 0 picks a free port (tests); the bound one is in the returned url. */
  port: number;
  host: string;
  /** The SQLite file is `dataDir/coordinator.db`. */
  dataDir: string;
  /** How often brokers are asked to heartbeat. */
  heartbeatMs: number;
  /** A broker without a heartbeat for this long is dead. */
  brokerTimeoutMs: number;
  /** A group member without a heartbeat for this long is removed (unless it asked for its own timeout). */
  groupSessionTimeoutMs: number;
  /** A group without members this long is deleted with its committed offsets (-1: never). */
  groupRetentionMs: number;
  /** Longest wait for brokers to answer a metadata-changed notification. */
  notifyTimeoutMs: number;
  /** Partition moves (rebalance, drain, replacement of dead secondaries) running at once. */
  maxConcurrentMoves: number;
  /** An rf=2 partition whose secondary has been dead this long gets a new secondary. */
  replaceDeadAfterMs: number;
  /**
   * After the coordinator starts, brokers are not declared dead before one of them was heard
   * (then the others get a full brokerTimeoutMs) or before this long has passed.
   */
  brokerStartGraceMs: number;
  /** Primaries unbalanced for this long start leadership transfers to even them out. */
  leadershipBalanceDelayMs: number;
  /** Retention of the topics that set none (-1: no limit). */
  defaultRetentionMs: number;
  defaultRetentionBytes: number;
  /** Size of the reserve file released when the disk fills. */
  storageReserveBytes: number;
  /** Below this many bytes free for data, topic creation is refused with STORAGE_FULL. */
  storageMinFreeBytes: number;
  logLevel: string;
  logPretty: boolean;
  /** Serve HTTPS with this certificate (else plain HTTP). */
  tls?: TlsServerOptions;
  /** What the brokers' certificates must chain to. */
  clientTls?: TlsClientOptions;
  /** Cluster secrets (the first signs): calls between services are signed and checked with them. */
  clusterSecrets?: string[];
  serverLimits?: Partial<ServerLimits>;
  /** Client authentication and ACLs on (the default): every client call needs a token. */
  auth: boolean;
  /** How long a token is valid. */
  tokenTtlMs: number;
  /** The bootstrap admin's secret on first start (TESSERA_BOOTSTRAP_ADMIN_SECRET); generated into DATA/bootstrap-admin.json when absent. */
  bootstrapAdminSecret?: string;
  /**
   * Which addresses push subscriptions may target (`TargetPolicy`): `public`, `loopback`, CIDR
   * ranges, host names, comma-separated. Default `public` only: the brokers call these URLs, and
   * a target inside the cluster's network would let a subscriber reach what it cannot.
   */
  subscriptionAllowedTargets: string;
  /** Token requests checking a secret at once, and waiting to (default 2 and 256); more get 429. */
  secretChecks?: { running: number; waiting: number };
}

export function defaultConfig(overrides: Partial<CoordinatorConfig> & Pick<CoordinatorConfig, 'dataDir'>): CoordinatorConfig {
  return {
    port: DEFAULT_COORDINATOR_PORT,
    host: '127.0.0.1',
    heartbeatMs: DEFAULT_HEARTBEAT_MS,
    brokerTimeoutMs: DEFAULT_BROKER_TIMEOUT_MS,
    groupSessionTimeoutMs: DEFAULT_GROUP_SESSION_TIMEOUT_MS,
    groupRetentionMs: DEFAULT_GROUP_RETENTION_MS,
    notifyTimeoutMs: 2_000,
    maxConcurrentMoves: DEFAULT_MAX_CONCURRENT_MOVES,
    replaceDeadAfterMs: DEFAULT_REPLACE_DEAD_AFTER_MS,
    brokerStartGraceMs: DEFAULT_BROKER_START_GRACE_MS,
    leadershipBalanceDelayMs: DEFAULT_LEADERSHIP_BALANCE_DELAY_MS,
    defaultRetentionMs: DEFAULT_RETENTION_MS,
    defaultRetentionBytes: DEFAULT_RETENTION_BYTES,
    storageReserveBytes: DEFAULT_STORAGE_RESERVE_BYTES,
    storageMinFreeBytes: DEFAULT_STORAGE_MIN_FREE_BYTES,
    logLevel: 'info',
    logPretty: false,
    auth: true,
    tokenTtlMs: DEFAULT_TOKEN_TTL_MS,
    subscriptionAllowedTargets: DEFAULT_ALLOWED_TARGETS,
    ...overrides,
  };
}
