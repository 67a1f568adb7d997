/** The default launcher: the coordinator and brokers as real processes on loopback, each with its own port and data directory. */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeCertificates } from '@tessera/protocol';
import { type BrokerLinks, type Cluster, type ClusterOptions, assembleCluster, bootstrapAdmin, coordinatorMoveFlags } from './cluster.js';
import { freePort } from '@tessera/protocol/test-support/ports';
import { ServiceProcess } from './process.js';
import { TcpProxy } from './proxy.js';

export async function startProcessCluster(options: ClusterOptions): Promise<Cluster> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `tessera-${options.name}-`));
  const logDir = path.join(dataDir, 'logs');
  const timing = [
    '--heartbeat-ms',
    String(options.heartbeatMs ?? 200),
  ];
  // Every cluster signs its internal calls; with `tls`, every service also serves HTTPS with a
  // certificate of a CA made for this cluster, and the other services trust that CA.
  const clusterSecret = randomBytes(24).toString('hex');
  const tlsDir = path.join(dataDir, 'tls');
  const tlsFlags = (name: string): string[] => {
    if (!options.tls) return [];
    const made = makeCertificates(tlsDir, [{ name, hosts: ['127.0.0.1', 'localhost'] }]);
    return ['--tls-cert', made.services[name]!.certFile, '--tls-key', made.services[name]!.keyFile, '--tls-ca', made.caFile];
  };
  const coordinatorTls = tlsFlags('coordinator');
  const tls = options.tls ? { ca: readFileSync(path.join(tlsDir, 'ca.crt')), rejectUnauthorized: true } : undefined;
  const scheme = options.tls ? 'https' : 'http';
  // A small storage reserve per service (the default is 32 MiB), so scenarios start fast; a
  // scenario about a full disk sets its own.
  const env = {
    TESSERA_STORAGE_RESERVE_BYTES: String(1024 * 1024),
    TESSERA_STORAGE_MIN_FREE_BYTES: String(4 * 1024 * 1024),
    ...options.serviceEnv,
    TESSERA_CLUSTER_SECRET: clusterSecret,
  };
  const coordinatorPort = await freePort();
  const coordinatorUrl = `${scheme}://127.0.0.1:${coordinatorPort}`;
  const auth = bootstrapAdmin(options);
  const coordinator = new ServiceProcess({
    name: 'coordinator',
    role: 'coordinator',
    url: coordinatorUrl,
    logDir,
    env: { ...env, ...auth.env },
    tls,
    args: [
      ...coordinatorTls,
      '--port', String(coordinatorPort),
      '--host', '127.0.0.1',
      '--data-dir', path.join(options.serviceDataRoot ?? dataDir, 'coordinator'),
      ...timing,
      '--broker-timeout-ms', String(options.brokerTimeoutMs ?? 3_000),
      '--group-session-timeout-ms', String(options.groupSessionTimeoutMs ?? 5_000),
      ...coordinatorMoveFlags(options),
      ...auth.flags,
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
      internal = ['--internal-url', inbound.url.replace('http:', `${scheme}:`)];
      brokerCoordinatorUrl = toCoordinator.url.replace('http:', `${scheme}:`);
    }
    const broker = new ServiceProcess({
      name: `broker-${id}`,
      role: 'broker',
      url: `${scheme}://127.0.0.1:${port}`,
      logDir,
      env: { ...env, ...options.brokerEnv?.[id] },
      tls,
      args: [
        ...tlsFlags(`broker-${id}`),
        '--id', String(id),
        '--port', String(port),
        '--host', '127.0.0.1',
        '--data-dir', path.join(options.serviceDataRoot ?? dataDir, `broker-${id}`),
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
    clusterSecret,
    ...(tls ? { tls, caFile: path.join(tlsDir, 'ca.crt') } : {}),
    ...(auth.admin ? { admin: auth.admin } : {}),
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

