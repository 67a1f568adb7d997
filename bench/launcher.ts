/**
 * A small launcher for benchmarks: the coordinator and brokers as real processes on
 * loopback, started from the built packages, each with its own port, data directory and
 * log file. It is the benchmark's copy of `integration-tests/src/harness/process.ts`
 * (which is compiled only for the tests), cut down to what a measurement needs:
 * start, wait for /ready, SIGKILL, SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** bench/dist/launcher.js → the repository root. */
const repoDir = fileURLToPath(new URL('../../', import.meta.url));

export const ENTRY_POINTS = {
  coordinator: path.join(repoDir, 'packages/coordinator/dist/main.js'),
  broker: path.join(repoDir, 'packages/broker/dist/main.js'),
} as const;

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface ServiceSpec {
  name: string;
  role: 'coordinator' | 'broker';
  args: string[];
  url: string;
  logDir: string;
  /** Extra arguments for node itself, such as `--cpu-prof`. */
  nodeArgs?: string[];
}

export class ServiceProcess {
  private child: ChildProcess | undefined;
  private log: WriteStream | undefined;
  private exited: Promise<number | null> = Promise.resolve(null);

  constructor(readonly spec: ServiceSpec) {}

  get name(): string {
    return this.spec.name;
  }

  get url(): string {
    return this.spec.url;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get logFile(): string {
    return path.join(this.spec.logDir, `${this.spec.name}.log`);
  }

  async start(): Promise<void> {
    if (this.running) throw new Error(`${this.spec.name} is already running`);
    mkdirSync(this.spec.logDir, { recursive: true });
    this.log = createWriteStream(this.logFile, { flags: 'a' });
    const child = spawn(process.execPath, [...(this.spec.nodeArgs ?? []), ENTRY_POINTS[this.spec.role], ...this.spec.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TESSERA_LOG_LEVEL: process.env.TESSERA_LOG_LEVEL ?? 'info' },
    });
    this.child = child;
    child.stdout?.pipe(this.log, { end: false });
    child.stderr?.pipe(this.log, { end: false });
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    await this.waitReady();
  }

  /** Polls /ready until the service serves, failing early if the process exits. */
  async waitReady(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`${this.spec.name} exited before it was ready (see ${this.logFile})`);
      try {
        const response = await fetch(`${this.spec.url}/ready`, { signal: AbortSignal.timeout(1_000) });
        if (response.ok) return;
      } catch {
        // Not listening yet.
      }
      await sleep(50);
    }
    throw new Error(`${this.spec.name} was not ready within ${timeoutMs} ms (see ${this.logFile})`);
  }

  /** A crash: SIGKILL, resolving once the process is gone. */
  async kill(): Promise<void> {
    if (!this.running || !this.child?.pid) return;
    process.kill(this.child.pid, 'SIGKILL');
    await this.exited;
  }

  /** A clean stop (SIGTERM), SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running || !this.child?.pid) return;
    const pid = this.child.pid;
    process.kill(pid, 'SIGTERM');
    const timer = setTimeout(() => this.running && process.kill(pid, 'SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
    this.log?.end();
  }
}

export interface BenchClusterOptions {
  dataDir: string;
  brokers: number;
  heartbeatMs: number;
  brokerTimeoutMs: number;
  replicaTimeoutMs: number;
  durability: 'full' | 'normal';
}

export interface BenchCluster {
  coordinatorUrl: string;
  coordinator: ServiceProcess;
  brokers: Map<number, ServiceProcess>;
  logDir: string;
  stop(): Promise<void>;
}

/** Starts a coordinator and `brokers` brokers, waiting until each serves /ready. */
export async function startBenchCluster(options: BenchClusterOptions): Promise<BenchCluster> {
  const logDir = path.join(options.dataDir, 'logs');
  const timing = ['--heartbeat-ms', String(options.heartbeatMs)];
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
      '--data-dir', path.join(options.dataDir, 'coordinator'),
      ...timing,
      '--broker-timeout-ms', String(options.brokerTimeoutMs),
    ],
  });
  const brokers = new Map<number, ServiceProcess>();
  for (let id = 1; id <= options.brokers; id++) {
    const port = await freePort();
    brokers.set(
      id,
      new ServiceProcess({
        name: `broker-${id}`,
        role: 'broker',
        url: `http://127.0.0.1:${port}`,
        logDir,
        args: [
          '--id', String(id),
          '--port', String(port),
          '--host', '127.0.0.1',
          '--data-dir', path.join(options.dataDir, `broker-${id}`),
          '--coordinator', coordinatorUrl,
          ...timing,
          '--replica-timeout-ms', String(options.replicaTimeoutMs),
          '--durability', options.durability,
        ],
      }),
    );
  }
  const stop = async () => {
    await Promise.all([...brokers.values()].map((broker) => broker.stop()));
    await coordinator.stop();
  };
  try {
    await coordinator.start();
    await Promise.all([...brokers.values()].map((broker) => broker.start()));
  } catch (error) {
    await stop();
    throw error;
  }
  return { coordinatorUrl, coordinator, brokers, logDir, stop };
}
