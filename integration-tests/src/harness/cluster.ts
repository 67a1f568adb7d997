/**
 * The cluster launcher every scenario is written against: a real coordinator and real
 * brokers as processes on loopback, each with its own port and data directory.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TesseraClient, type ClientOptions } from '@tessera/client';
import { sleep } from '@tessera/protocol';
import { freePort } from './ports.js';
import { ServiceProcess } from './process.js';

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
}

export interface Cluster {
  readonly coordinatorUrl: string;
  readonly coordinator: ServiceProcess;
  readonly brokers: ReadonlyMap<number, ServiceProcess>;
  readonly dataDir: string;
  broker(id: number): ServiceProcess;
  /** A client of this cluster, closed by `stop()`. */
  client(options?: Omit<ClientOptions, 'coordinator'>): TesseraClient;
  /** Starts a broker that was not part of the cluster yet (it registers itself). */
  addBroker(id: number): Promise<ServiceProcess>;
  /** Stops every process (SIGTERM), keeping the data directory. */
  stopProcesses(): Promise<void>;
  /** Starts every process again on the same ports and data. */
  startProcesses(): Promise<void>;
  /** Stops everything and removes the data directory (kept when TESSERA_KEEP_DATA=1). */
  stop(): Promise<void>;
}

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `tessera-${options.name}-`));
  const logDir = path.join(dataDir, 'logs');
  const timing = [
    '--heartbeat-ms',
    String(options.heartbeatMs ?? 200),
  ];
  const coordinatorPort = await freePort();
  const coordinatorUrl = `http://127.0.0.1:${coordinatorPort}`;
  const coordinator = new ServiceProcess({
    name: 'coordinator',
    role: 'coordinator',
    url: coordinatorUrl,
    logDir,
    args: [
      '--port', String(coordinatorPort),
      '--host', '127.0.0.1',
      '--data-dir', path.join(dataDir, 'coordinator'),
      ...timing,
      '--broker-timeout-ms', String(options.brokerTimeoutMs ?? 3_000),
      '--group-session-timeout-ms', String(options.groupSessionTimeoutMs ?? 5_000),
    ],
  });
  const brokers = new Map<number, ServiceProcess>();
  const makeBroker = async (id: number) => {
    const port = await freePort();
    const broker = new ServiceProcess({
      name: `broker-${id}`,
      role: 'broker',
      url: `http://127.0.0.1:${port}`,
      logDir,
      args: [
        '--id', String(id),
        '--port', String(port),
        '--host', '127.0.0.1',
        '--data-dir', path.join(dataDir, `broker-${id}`),
        '--coordinator', coordinatorUrl,
        ...timing,
        '--replica-timeout-ms', String(options.replicaTimeoutMs ?? 1_000),
        '--durability', options.durability ?? 'normal',
        ...(options.maxValueBytes ? ['--max-value-bytes', String(options.maxValueBytes)] : []),
      ],
    });
    brokers.set(id, broker);
    return broker;
  };
  for (let id = 1; id <= (options.brokers ?? 3); id++) await makeBroker(id);

  const clients: TesseraClient[] = [];
  const startProcesses = async () => {
    await coordinator.start();
    await Promise.all([...brokers.values()].map((broker) => broker.start()));
    await waitForLiveBrokers(coordinatorUrl, brokers.size);
  };
  const stopProcesses = async () => {
    await Promise.all([...brokers.values()].map((broker) => broker.stop()));
    await coordinator.stop();
  };

  const cluster: Cluster = {
    coordinatorUrl,
    coordinator,
    brokers,
    dataDir,
    broker(id) {
      const broker = brokers.get(id);
      if (!broker) throw new Error(`no broker ${id}`);
      return broker;
    },
    client(clientOptions = {}) {
      const client = new TesseraClient({ ...clientOptions, coordinator: coordinatorUrl });
      clients.push(client);
      return client;
    },
    async addBroker(id) {
      const broker = await makeBroker(id);
      await broker.start();
      return broker;
    },
    stopProcesses,
    startProcesses,
    async stop() {
      await Promise.allSettled(clients.map((client) => client.close()));
      await stopProcesses();
      if (process.env.TESSERA_KEEP_DATA !== '1') rmSync(dataDir, { recursive: true, force: true });
    },
  };
  try {
    await startProcesses();
  } catch (error) {
    await stopProcesses();
    throw new Error(`cluster ${options.name} did not start; logs in ${logDir}`, { cause: error });
  }
  return cluster;
}

/** Waits until the coordinator counts `count` live brokers. */
async function waitForLiveBrokers(coordinatorUrl: string, count: number): Promise<void> {
  await waitFor(
    async () => {
      const response = await fetch(`${coordinatorUrl}/cluster/status`);
      const status = (await response.json()) as { brokers: Array<{ alive: boolean }> };
      return status.brokers.filter((broker) => broker.alive).length >= count;
    },
    { timeoutMs: 20_000, what: `${count} live brokers` },
  );
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
