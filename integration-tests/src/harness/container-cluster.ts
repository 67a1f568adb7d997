/**
 * The container launcher (TESSERA_LAUNCHER=containers): the same services as the process
 * launcher, run from the repository's image through testcontainers on one Docker network.
 * The GitLab `integration` stage runs every scenario this way against the image it built.
 *
 * Brokers and the coordinator reach each other by network alias (`--internal-url`), and the
 * test process reaches them through ports published at fixed host ports (`--advertised-url`),
 * so the URLs in the cluster map work from both sides and survive a container restart.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  GenericContainer,
  Network,
  type StartedNetwork,
  type StartedTestContainer,
  Wait,
  getContainerRuntimeClient,
} from 'testcontainers';
import { type Cluster, type ClusterOptions, assembleCluster, bootstrapAdmin, coordinatorMoveFlags, waitFor } from './cluster.js';
import type { ServiceHandle } from './process.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const COORDINATOR_PORT = 7070;
const BROKER_PORT = 7071;

let imagePromise: Promise<GenericContainer> | undefined;

/** TESSERA_IMAGE names a built image (the pipeline's); without it the Dockerfile is built once. */
function image(): Promise<GenericContainer> {
  const name = process.env.TESSERA_IMAGE;
  imagePromise ??= name
    ? Promise.resolve(new GenericContainer(name))
    : GenericContainer.fromDockerfile(repoRoot).build('tessera:integration-tests', { deleteOnExit: false });
  return imagePromise;
}

/** Host ports are fixed per container so that advertised URLs stay valid across restarts. */
function hostPort(): number {
  return 20_000 + Math.floor(Math.random() * 25_000);
}

class ServiceContainer implements ServiceHandle {
  private started: StartedTestContainer | undefined;
  private up = false;

  constructor(
    readonly name: string,
    private readonly definition: () => Promise<GenericContainer>,
    readonly url: string,
  ) {}

  get running(): boolean {
    return this.up;
  }

  private async docker() {
    const client = await getContainerRuntimeClient();
    if (!this.started) throw new Error(`${this.name} was never started`);
    return client.container.getById(this.started.getId());
  }

  async start(): Promise<void> {
    if (!this.started) {
      this.started = await (await this.definition()).start();
    } else {
      await (await this.docker()).start();
      await this.waitReady();
    }
    this.up = true;
  }

  async waitReady(): Promise<void> {
    await waitFor(
      async () => (await fetch(`${this.url}/ready`, { signal: AbortSignal.timeout(1_000) })).ok,
      { what: `${this.name} to be ready`, timeoutMs: 60_000, intervalMs: 200 },
    );
  }

  async stop(): Promise<void> {
    if (!this.up) return;
    await (await this.docker()).stop({ t: 10 });
    this.up = false;
  }

  async kill(): Promise<void> {
    if (!this.up) return;
    await (await this.docker()).kill({ signal: 'SIGKILL' });
    this.up = false;
  }

  async pause(): Promise<void> {
    await (await this.docker()).pause();
  }

  async resume(): Promise<void> {
    await (await this.docker()).unpause();
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async remove(): Promise<void> {
    await this.started?.stop({ remove: true, removeVolumes: true, timeout: 0 });
    this.up = false;
  }
}

export async function startContainerCluster(options: ClusterOptions): Promise<Cluster> {
  const runtime = await getContainerRuntimeClient();
  const host = runtime.info.containerRuntime.host;
  const network: StartedNetwork = await new Network().start();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `tessera-${options.name}-`));
  const heartbeat = ['--heartbeat-ms', String(options.heartbeatMs ?? 200)];
  // The services sign their calls to each other with a secret made for this cluster.
  const clusterSecret = randomBytes(24).toString('hex');
  const auth = bootstrapAdmin(options);

  const coordinatorHostPort = hostPort();
  const coordinatorUrl = `http://${host}:${coordinatorHostPort}`;
  const coordinator = new ServiceContainer(
    'coordinator',
    async () =>
      (await image())
        .withNetwork(network)
        .withNetworkAliases('coordinator')
        .withExposedPorts({ container: COORDINATOR_PORT, host: coordinatorHostPort })
        .withEnvironment({ TESSERA_PORT: String(COORDINATOR_PORT), TESSERA_CLUSTER_SECRET: clusterSecret, ...auth.env })
        .withCommand([
          'coordinator',
          ...heartbeat,
          '--broker-timeout-ms', String(options.brokerTimeoutMs ?? 3_000),
          '--group-session-timeout-ms', String(options.groupSessionTimeoutMs ?? 5_000),
          ...coordinatorMoveFlags(options),
          ...auth.flags,
        ])
        .withWaitStrategy(Wait.forHttp('/ready', COORDINATOR_PORT))
        .withStartupTimeout(60_000),
    coordinatorUrl,
  );

  const brokers = new Map<number, ServiceContainer>();
  const makeBroker = (id: number) => {
    const published = hostPort();
    const broker = new ServiceContainer(
      `broker-${id}`,
      async () =>
        (await image())
          .withNetwork(network)
          .withNetworkAliases(`broker-${id}`)
          .withExposedPorts({ container: BROKER_PORT, host: published })
          .withEnvironment({
            TESSERA_BROKER_ID: String(id),
            TESSERA_PORT: String(BROKER_PORT),
            TESSERA_ADVERTISED_URL: `http://${host}:${published}`,
            TESSERA_INTERNAL_URL: `http://broker-${id}:${BROKER_PORT}`,
            TESSERA_COORDINATOR: `http://coordinator:${COORDINATOR_PORT}`,
            TESSERA_CLUSTER_SECRET: clusterSecret,
            ...options.brokerEnv?.[id],
          })
          .withCommand([
            'broker',
            ...heartbeat,
            '--replica-timeout-ms', String(options.replicaTimeoutMs ?? 1_000),
            '--durability', options.durability ?? 'normal',
            ...(options.maxValueBytes ? ['--max-value-bytes', String(options.maxValueBytes)] : []),
          ])
          .withWaitStrategy(Wait.forHttp('/ready', BROKER_PORT))
          .withStartupTimeout(60_000),
      `http://${host}:${published}`,
    );
    brokers.set(id, broker);
    return broker;
  };
  for (let id = 1; id <= (options.brokers ?? 3); id++) makeBroker(id);

  const cluster = assembleCluster({
    coordinatorUrl,
    clusterSecret,
    ...(auth.admin ? { admin: auth.admin } : {}),
    coordinator,
    brokers,
    dataDir,
    makeBroker,
    async teardown() {
      await Promise.allSettled([...brokers.values(), coordinator].map((service) => service.remove()));
      await network.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  });
  await cluster.startProcesses();
  return cluster;
}

/** Whether a Docker engine answers; scenarios that need one skip with this reason otherwise. */
export async function dockerAvailable(): Promise<{ ok: boolean; reason?: string }> {
  try {
    await getContainerRuntimeClient();
    return { ok: true };
  } catch (error) {
    return { ok: false, reason: `no Docker engine reachable (${(error as Error).message.split('\n')[0]})` };
  }
}
