/** The default launcher: the coordinator and brokers as real processes on loopback, each with its own port and data directory. */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type BrokerLinks, type Cluster, type ClusterOptions, assembleCluster, coordinatorMoveFlags } from './cluster.js';
import { freePort } from './ports.js';
import { ServiceProcess } from './process.js';
import { TcpProxy } from './proxy.js';

export async function startProcessCluster(options: ClusterOptions): Promise<Cluster> {
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
      ...coordinatorMoveFlags(options),
    ],
  });
  const brokers = new Map<number, ServiceProcess>();
  const links = new Map<number, BrokerLinks>();
  const proxies: TcpProxy[] = [];
  const makeBroker = async (id: number) => {
    const port = await freePort();
    // With proxies, peers and the coordinator reach the broker through one proxy, and the broker
    // reaches the coordinator through another, so each link can fail on its own.
    let internal: string[] = [];
    let brokerCoordinatorUrl = coordinatorUrl;
    if (options.proxies) {
      const inbound = new TcpProxy(port);
      const toCoordinator = new TcpProxy(coordinatorPort);
      await inbound.start();
      await toCoordinator.start();
      proxies.push(inbound, toCoordinator);
      links.set(id, { inbound, toCoordinator });
      internal = ['--internal-url', inbound.url];
      brokerCoordinatorUrl = toCoordinator.url;
    }
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
        '--coordinator', brokerCoordinatorUrl,
        ...internal,
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

  const cluster = assembleCluster({
    coordinatorUrl,
    coordinator,
    brokers,
    dataDir,
    links: options.proxies ? links : undefined,
    makeBroker,
    async teardown() {
      await Promise.all(proxies.map((proxy) => proxy.stop()));
      if (process.env.TESSERA_KEEP_DATA !== '1') rmSync(dataDir, { recursive: true, force: true });
    },
  });
  try {
    await cluster.startProcesses();
  } catch (error) {
    await cluster.stopProcesses();
    throw new Error(`cluster ${options.name} did not start; logs in ${logDir}`, { cause: error });
  }
  return cluster;
}

