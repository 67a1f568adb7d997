/**
 * The cluster launcher every scenario is written against. By default it starts a real
 * coordinator and real brokers as processes on loopback (`process-cluster.ts`); with
 * TESSERA_LAUNCHER=containers it starts the same services as containers of the repository's
 * image through testcontainers (`container-cluster.ts`), as the GitLab pipeline does.
 */
import { randomBytes } from 'node:crypto';
import { type ClientOptions, TesseraClient } from '@tessera/client';
import { JsonHttpClient, type TlsClientOptions, type TokenResponse, sleep } from '@tessera/protocol';
import type { ServiceHandle } from './process.js';

export interface ClusterOptions {
  /** Used in the data directory name, to find a scenario's logs. */
  name: string;
  brokers?: number;
  heartbeatMs?: number;
  brokerTimeoutMs?: number;
  groupSessionTimeoutMs?: number;
  replicaTimeoutMs?: number;
  durability?: 'full' | 'normal';
  maxValueBytes?: number;
  /** Coordinator `--max-concurrent-moves` (default: the coordinator's, 2). */
  maxConcurrentMoves?: number;
  /** Coordinator `--replace-dead-after-ms` (default: the coordinator's, 30 s). */
  replaceDeadAfterMs?: number;
  /** Coordinator `--leadership-balance-delay-ms` (default: the coordinator's, 5 s). */
  leadershipBalanceDelayMs?: number;
  /**
   * Route every broker's peer traffic and coordinator traffic through fault proxies, so a
   * scenario can cut single network links (`Cluster.links`). Processes launcher only.
   */
  proxies?: boolean;
  /**
   * Client authentication and ACLs (default on, as the services run by default): the cluster
   * starts with a bootstrap admin (`Cluster.admin`) whose credentials `client()` uses unless
   * told otherwise. `false` starts the coordinator with `--auth off`.
   */
  auth?: boolean;
  /** Coordinator `--token-ttl-ms` (default: the coordinator's, 15 min). */
  tokenTtlMs?: number;
  /** Every service serves HTTPS with certificates of a CA made for the cluster. Processes launcher only. */
  tls?: boolean;
  /** Extra environment of every service (e.g. TESSERA_HEADERS_TIMEOUT_MS). Processes launcher only. */
  serviceEnv?: Record<string, string>;
  /** Extra environment of one broker, by id (e.g. TESSERA_FAILPOINTS for that broker alone). */
  brokerEnv?: Record<number, Record<string, string>>;
  /**
   * Where the services' data directories go (default: inside the cluster's data directory), e.g.
   * a small filesystem of the scenario's own; the logs stay in the cluster's directory. Processes launcher only.
   */
  serviceDataRoot?: string;
}

/** The network links of one broker that a scenario can cut, blackhole or delay. */
export interface BrokerLinks {
  /** Everything other brokers and the coordinator send to this broker (replication, notifications). */
  inbound: LinkControl;
  /** This broker's calls to the coordinator (register, heartbeat, metadata, ISR changes). */
  toCoordinator: LinkControl;
}

export interface LinkControl {
  set(mode: 'pass' | 'cut' | 'blackhole' | 'delay', delayMs?: number): void;
}

export interface Cluster {
  readonly coordinatorUrl: string;
  /** The secret the services sign their calls to each other with. */
  readonly clusterSecret: string;
  /** What the services' certificates chain to, when the cluster runs with TLS. */
  readonly tls?: TlsClientOptions;
  /** The same CA as a file (for child processes: TESSERA_CA_FILE). */
  readonly caFile?: string;
  /** The bootstrap admin's credentials; undefined when the cluster runs without authentication. */
  readonly admin?: { principal: string; secret: string };
  readonly coordinator: ServiceHandle;
  readonly brokers: ReadonlyMap<number, ServiceHandle>;
  /** Where the scenario may keep files of its own (and, for processes, where the logs are). */
  readonly dataDir: string;
  /** Present when the cluster was started with `proxies: true`. */
  readonly links?: ReadonlyMap<number, BrokerLinks>;
  broker(id: number): ServiceHandle;
  /** A client of this cluster (as the bootstrap admin unless `credentials` says otherwise), closed by `stop()`. */
  client(options?: Omit<ClientOptions, 'coordinator'>): TesseraClient;
  /** `Authorization` for a raw HTTP call as the bootstrap admin (empty without authentication). */
  adminHeaders(): Promise<Record<string, string>>;
  /** Starts a broker that was not part of the cluster yet (it registers itself). */
  addBroker(id: number): Promise<ServiceHandle>;
  /** Stops every process (SIGTERM), keeping the data directory. */
  stopProcesses(): Promise<void>;
  /** Starts every process again on the same ports and data. */
  startProcesses(): Promise<void>;
  /** Stops everything and removes the data directory (kept when TESSERA_KEEP_DATA=1). */
  stop(): Promise<void>;
}

/** What a launcher makes; `assembleCluster` turns it into the Cluster every scenario uses. */
export interface ClusterParts {
  coordinatorUrl: string;
  clusterSecret: string;
  tls?: TlsClientOptions;
  caFile?: string;
  admin?: { principal: string; secret: string };
  coordinator: ServiceHandle;
  brokers: Map<number, ServiceHandle>;
  dataDir: string;
  links?: ReadonlyMap<number, BrokerLinks>;
  /** Defines broker `id` (and adds it to `brokers`) without starting it. */
  makeBroker(id: number): Promise<ServiceHandle> | ServiceHandle;
  /** Removes what the launcher made (containers, proxies, data) once every service stopped. */
  teardown(): Promise<void>;
}

export function assembleCluster(parts: ClusterParts): Cluster {
  const { coordinatorUrl, coordinator, brokers } = parts;
  const clients: TesseraClient[] = [];
  const startProcesses = async () => {
    await coordinator.start();
    await Promise.all([...brokers.values()].map((broker) => broker.start()));
    await waitForLiveBrokers(coordinatorUrl, brokers.size, parts.tls, parts.admin);
  };
  const stopProcesses = async () => {
    await Promise.all([...brokers.values()].map((broker) => broker.stop()));
    await coordinator.stop();
  };
  return {
    coordinatorUrl,
    clusterSecret: parts.clusterSecret,
    ...(parts.tls ? { tls: parts.tls } : {}),
    ...(parts.caFile ? { caFile: parts.caFile } : {}),
    ...(parts.admin ? { admin: parts.admin } : {}),
    coordinator,
    brokers,
    dataDir: parts.dataDir,
    links: parts.links,
    broker(id) {
      const broker = brokers.get(id);
      if (!broker) throw new Error(`no broker ${id}`);
      return broker;
    },
    client(clientOptions = {}) {
      const client = new TesseraClient({
        ...(parts.tls ? { tls: parts.tls } : {}),
        credentials: parts.admin ?? null,
        ...clientOptions,
        coordinator: coordinatorUrl,
      });
      clients.push(client);
      return client;
    },
    async adminHeaders(): Promise<Record<string, string>> {
      if (parts.admin === undefined) return {};
      return { authorization: `Bearer ${await issueToken(coordinatorUrl, parts.admin, parts.tls)}` };
    },
    async addBroker(id) {
      const broker = await parts.makeBroker(id);
      await broker.start();
      return broker;
    },
    stopProcesses,
    startProcesses,
    async stop() {
      await Promise.allSettled(clients.map((client) => client.close()));
      await stopProcesses();
      await parts.teardown();
    },
  };
}

export type Launcher = 'processes' | 'containers';

export const launcher: Launcher = process.env.TESSERA_LAUNCHER === 'containers' ? 'containers' : 'processes';

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  if (launcher === 'containers') {
    const { startContainerCluster } = await import('./container-cluster.js');
    return startContainerCluster(options);
  }
  const { startProcessCluster } = await import('./process-cluster.js');
  return startProcessCluster(options);
}

/** The coordinator flags for `maxConcurrentMoves`, `replaceDeadAfterMs` and `leadershipBalanceDelayMs`, when set (both launchers pass them). */
export function coordinatorMoveFlags(options: ClusterOptions): string[] {
  return [
    ...(options.maxConcurrentMoves === undefined ? [] : ['--max-concurrent-moves', String(options.maxConcurrentMoves)]),
    ...(options.replaceDeadAfterMs === undefined ? [] : ['--replace-dead-after-ms', String(options.replaceDeadAfterMs)]),
    ...(options.leadershipBalanceDelayMs === undefined ? [] : ['--leadership-balance-delay-ms', String(options.leadershipBalanceDelayMs)]),
  ];
}

/** Waits until the coordinator counts `count` live brokers. */
export async function waitForLiveBrokers(
  coordinatorUrl: string,
  count: number,
  tls?: TlsClientOptions,
  admin?: { principal: string; secret: string },
): Promise<void> {
  const client = new TesseraClient({ coordinator: coordinatorUrl, requestTimeoutMs: 2_000, credentials: admin ?? null, ...(tls ? { tls } : {}) });
  try {
    await waitFor(
      async () => {
        const status = await client.admin.clusterStatus();
        return status.brokers.filter((broker) => broker.alive).length >= count;
      },
      { timeoutMs: 20_000, what: `${count} live brokers` },
    );
  } finally {
    await client.close();
  }
}

/** A token for `credentials` from the coordinator, as a client library would get one. */
export async function issueToken(
  coordinatorUrl: string,
  credentials: { principal: string; secret: string },
  tls?: TlsClientOptions,
): Promise<string> {
  const http = new JsonHttpClient({ timeoutMs: 5_000, maxSockets: 1, tls });
  try {
    const basic = Buffer.from(`${credentials.principal}:${credentials.secret}`).toString('base64');
    const answer = await http.post<TokenResponse>(`${coordinatorUrl}/auth/token`, undefined, { headers: { authorization: `Basic ${basic}` } });
    return answer.token;
  } finally {
    http.close();
  }
}

/** The bootstrap admin of a cluster started with authentication (both launchers make one per cluster). */
export function bootstrapAdmin(options: ClusterOptions): { admin?: { principal: string; secret: string }; env: Record<string, string>; flags: string[] } {
  if (options.auth === false) return { env: {}, flags: ['--auth', 'off'] };
  const secret = randomBytes(24).toString('hex');
  const flags = options.tokenTtlMs === undefined ? [] : ['--token-ttl-ms', String(options.tokenTtlMs)];
  return { admin: { principal: 'admin', secret }, env: { TESSERA_BOOTSTRAP_ADMIN_SECRET: secret }, flags };
}

/** Polls `condition` until it holds, failing with `what` after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  { timeoutMs = 20_000, intervalMs = 50, what = 'condition' }: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await condition()) return;
    } catch (error) {
      lastError = error;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError });
}
