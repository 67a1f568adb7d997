/**
 * One real service process (coordinator or broker) started from the built packages,
 * with its output kept in a log file, so a failing scenario can be read afterwards.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JsonHttpClient, STOP_ON_STDIN_END_ENV, type TlsClientOptions, sleep } from '@tessera/protocol';

const packagesDir = fileURLToPath(new URL('../../../packages/', import.meta.url));

/** The built entry points (`pnpm build` makes them). */
export const ENTRY_POINTS = {
  coordinator: path.join(packagesDir, 'coordinator/dist/main.js'),
  broker: path.join(packagesDir, 'broker/dist/main.js'),
  cli: path.join(packagesDir, 'cli/dist/bin.js'),
} as const;

export interface ServiceSpec {
  name: string;
  role: 'coordinator' | 'broker';
  args: string[];
  url: string;
  logDir: string;
  /** Extra environment (the cluster secret). */
  env?: Record<string, string>;
  /** What the service's certificate chains to, when it serves HTTPS. */
  tls?: TlsClientOptions;
}

/**
 * What a scenario can do to one service, whichever launcher started it: processes on loopback
 * here, containers under testcontainers in the GitLab pipeline.
 */
export interface ServiceHandle {
  readonly name: string;
  readonly url: string;
  readonly running: boolean;
  start(): Promise<void>;
  /** A clean stop (SIGTERM), waiting for the exit. */
  stop(): Promise<unknown>;
  /** A crash (SIGKILL). */
  kill(): Promise<void>;
  /** Freezes the service (SIGSTOP) without closing its sockets, and thaws it (SIGCONT). */
  pause(): Promise<void>;
  resume(): Promise<void>;
  restart(): Promise<void>;
}

export class ServiceProcess implements ServiceHandle {
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

  async start({ waitReady = true }: { waitReady?: boolean } = {}): Promise<void> {
    if (this.running) throw new Error(`${this.spec.name} is already running`);
    mkdirSync(this.spec.logDir, { recursive: true });
    this.log = createWriteStream(path.join(this.spec.logDir, `${this.spec.name}.log`), { flags: 'a' });
    const child = spawn(process.execPath, [ENTRY_POINTS[this.spec.role], ...this.spec.args], {
      // The service stops when its standard input ends, so a test runner that dies (even by
      // SIGKILL) leaves no service behind.
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, TESSERA_LOG_LEVEL: process.env.TESSERA_LOG_LEVEL ?? 'info', ...this.spec.env, [STOP_ON_STDIN_END_ENV]: '1' },
    });
    this.child = child;
    child.stdout?.pipe(this.log, { end: false });
    child.stderr?.pipe(this.log, { end: false });
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    if (waitReady) await this.waitReady();
  }

  /** Polls /ready until the service serves, failing early if the process exits. */
  async waitReady(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const http = new JsonHttpClient({ timeoutMs: 1_000, maxSockets: 1, tls: this.spec.tls });
    try {
      while (Date.now() < deadline) {
        if (!this.running) throw new Error(`${this.spec.name} exited before it was ready (see ${this.logFile})`);
        try {
          await http.get(`${this.spec.url}/ready`);
          return;
        } catch {
          // not listening yet
        }
        await sleep(50);
      }
    } finally {
      http.close();
    }
    throw new Error(`${this.spec.name} was not ready within ${timeoutMs} ms (see ${this.logFile})`);
  }

  get logFile(): string {
    return path.join(this.spec.logDir, `${this.spec.name}.log`);
  }

  /** Sends a signal: SIGKILL to crash it, SIGSTOP/SIGCONT to pause and resume it. */
  signal(signal: NodeJS.Signals): void {
    if (!this.child?.pid) throw new Error(`${this.spec.name} was never started`);
    process.kill(this.child.pid, signal);
  }

  async kill(): Promise<void> {
    if (!this.running) return;
    this.signal('SIGKILL');
    await this.exited;
  }

  /** Stops the process with SIGTERM, and SIGKILL if it has not exited after `graceMs`. */
  async stop(graceMs = 10_000): Promise<number | null> {
    if (!this.running) return this.exited;
    // A paused process cannot handle SIGTERM until it is resumed.
    this.signal('SIGCONT');
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.running && this.signal('SIGKILL'), graceMs);
    const code = await this.exited;
    clearTimeout(timer);
    this.log?.end();
    return code;
  }

  async pause(): Promise<void> {
    this.signal('SIGSTOP');
  }

  async resume(): Promise<void> {
    this.signal('SIGCONT');
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }
}
