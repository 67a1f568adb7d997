/**
 * `tessera dev`: a local cluster of one coordinator and N brokers as child processes.
 * The supervisor starts them in order (coordinator first, then the brokers, each
 * waited for on /ready), forwards their logs, records their PIDs in DIR/dev.json,
 * reports (and optionally restarts) a process that dies, and stops them all on
 * SIGINT/SIGTERM. Everything lives under the data dir, so a second start on the same
 * dir finds every topic, record and committed offset again.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { JsonHttpClient } from '@tessera/protocol';
import { CliError } from '../errors.js';
import { type ChildExit, ManagedChild, describeExit } from './child.js';
import { ensureDevCredentials } from './credentials.js';
import { isPortFree } from './ports.js';
import { type DevSecurity, ensureDevSecurity } from './security.js';
import { type DevState, isAlive, isRecordedProcess, readDevState, removeDevState, writeDevState } from './state.js';

export interface DevOptions {
  brokers: number;
  dataDir: string;
  port: number;
  restartOnExit: boolean;
  /** Every process serves HTTPS with certificates of a local CA made with openssl. */
  tls?: boolean;
  logLevel?: string;
  /** Entry scripts; default: `@tessera/coordinator/main` and `@tessera/broker/main` (tests pass fakes). */
  coordinatorEntry?: string;
  brokerEntry?: string;
  /** How long a process may take to answer /ready. */
  readyTimeoutMs?: number;
  /** How long a process may take to stop after SIGTERM before it gets SIGKILL. */
  stopGraceMs?: number;
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
}

const HOST = '127.0.0.1';
const READY_POLL_MS = 100;
const RESTART_BACKOFF_INITIAL_MS = 500;
const RESTART_BACKOFF_MAX_MS = 10_000;
/** A process that ran this long before dying starts its restart backoff from the beginning again. */
const RESTART_BACKOFF_RESET_AFTER_MS = 30_000;
/** A second identical signal this soon after the first is the same Ctrl-C delivered twice. */
const REPEATED_SIGNAL_WINDOW_MS = 1_000;

export function resolveEntry(specifier: string): string {
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve(specifier);
  } catch (error) {
    throw new CliError(`cannot find ${specifier}; build the workspace first (pnpm build)`, { cause: error });
  }
  if (!fs.existsSync(entry)) throw new CliError(`${entry} does not exist; build the workspace first (pnpm build)`);
  return entry;
}

export class DevCluster {
  private readonly options: Required<Omit<DevOptions, 'logLevel' | 'coordinatorEntry' | 'brokerEntry' | 'tls'>> &
    Pick<DevOptions, 'logLevel' | 'coordinatorEntry' | 'brokerEntry' | 'tls'>;
  /** Asks the processes whether they are ready (trusting the dev CA with TLS). */
  private probe = new JsonHttpClient({ timeoutMs: 1_000, maxSockets: 4 });
  private readonly children: ManagedChild[] = [];
  private readonly startedAt = new Date().toISOString();
  private stopping = false;
  private started = false;
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  private readonly lastStartMs = new Map<ManagedChild, number>();
  private readonly failuresInARow = new Map<ManagedChild, number>();
  private finish!: (exitCode: number) => void;
  /** The signal that started the shutdown, and when (wall clock ms). */
  private stopSignal: NodeJS.Signals | undefined;
  private stopSignalMs = 0;
  private readonly finished = new Promise<number>((resolve) => (this.finish = resolve));

  constructor(options: DevOptions) {
    this.options = {
      readyTimeoutMs: 60_000,
      stopGraceMs: 10_000,
      stdout: process.stdout,
      stderr: process.stderr,
      ...options,
      dataDir: path.resolve(options.dataDir),
    };
  }

  get coordinatorUrl(): string {
    return `${this.scheme}://${HOST}:${this.options.port}`;
  }

  private get scheme(): 'http' | 'https' {
    return this.options.tls ? 'https' : 'http';
  }

  /** Runs the cluster until a signal stops it; resolves with the exit code. */
  async run(): Promise<number> {
    const { brokers, dataDir, port } = this.options;
    if (port + brokers > 65_535) throw new CliError(`ports ${port}..${port + brokers} do not all fit below 65536`);
    fs.mkdirSync(dataDir, { recursive: true });
    await this.takeOverDataDir();
    for (let p = port; p <= port + brokers; p++) {
      if (!(await isPortFree(p, HOST))) {
        throw new CliError(`port ${p} on ${HOST} is already in use (another tessera dev? choose another with --port)`);
      }
    }
    const coordinatorEntry = this.options.coordinatorEntry ?? resolveEntry('@tessera/coordinator/main');
    const brokerEntry = this.options.brokerEntry ?? resolveEntry('@tessera/broker/main');
    const credentials = ensureDevCredentials(dataDir, this.coordinatorUrl);
    const names = ['coordinator', ...Array.from({ length: brokers }, (_, i) => `broker-${i + 1}`)];
    const security = ensureDevSecurity(dataDir, names, this.options.tls === true, [HOST, 'localhost']);
    if (security.clientTls) {
      this.probe.close();
      this.probe = new JsonHttpClient({ timeoutMs: 1_000, maxSockets: 4, tls: security.clientTls });
    }
    this.buildChildren(coordinatorEntry, brokerEntry, credentials.secret, security);
    for (const child of this.children) fs.mkdirSync(child.spec.dataDir, { recursive: true });

    const onSignal = (signal: NodeJS.Signals) => void this.shutdown(signal);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // Last line of defence: whatever ends this process must not leave its children running.
    const onExit = () => this.children.forEach((child) => child.signal('SIGKILL'));
    process.on('exit', onExit);
    try {
      try {
        await this.startAll();
      } catch (error) {
        await this.abort();
        throw error;
      }
      if (!this.stopping) this.announce();
      return await this.finished;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('exit', onExit);
      this.probe.close();
    }
  }

  private buildChildren(coordinatorEntry: string, brokerEntry: string, adminSecret: string, security: DevSecurity): void {
    const { brokers, dataDir, port, logLevel } = this.options;
    const levelArgs = logLevel ? ['--log-level', logLevel] : [];
    // Every process signs its calls to the others with the cluster secret and, with TLS, serves
    // its own certificate and trusts the dev CA.
    const securityArgs = (name: string): string[] => {
      const files = security.certificates;
      const tls = files ? ['--tls-cert', files.services[name]!.certFile, '--tls-key', files.services[name]!.keyFile, '--tls-ca', files.caFile] : [];
      return ['--cluster-secret-file', security.secretFile, ...tls];
    };
    const coordinatorDir = path.join(dataDir, 'coordinator');
    this.children.push(
      new ManagedChild({
        name: 'coordinator',
        role: 'coordinator',
        id: 'coordinator',
        entry: coordinatorEntry,
        args: ['--host', HOST, '--port', String(port), '--data-dir', coordinatorDir, '--log-pretty', ...levelArgs, ...securityArgs('coordinator')],
        port,
        url: this.coordinatorUrl,
        dataDir: coordinatorDir,
        // Authentication is on, as in production; the admin is the one of DIR/credentials.json.
        // Push subscriptions may target this machine too (a local receiver), unless the environment says otherwise.
        env: {
          TESSERA_BOOTSTRAP_ADMIN_SECRET: adminSecret,
          TESSERA_SUBSCRIPTION_ALLOWED_TARGETS: process.env.TESSERA_SUBSCRIPTION_ALLOWED_TARGETS ?? 'public,loopback',
        },
      }),
    );
    for (let id = 1; id <= brokers; id++) {
      const brokerPort = port + id;
      const brokerDir = path.join(dataDir, `broker-${id}`);
      this.children.push(
        new ManagedChild({
          name: `broker-${id}`,
          role: 'broker',
          id,
          entry: brokerEntry,
          args: [
            '--id', String(id),
            '--host', HOST,
            '--port', String(brokerPort),
            '--data-dir', brokerDir,
            '--coordinator', this.coordinatorUrl,
            '--log-pretty',
            ...levelArgs,
            ...securityArgs(`broker-${id}`),
          ],
          port: brokerPort,
          url: `${this.scheme}://${HOST}:${brokerPort}`,
          dataDir: brokerDir,
        }),
      );
    }
  }

  /**
   * Refuses a data dir another live `tessera dev` is using, and stops processes a
   * previous supervisor left behind when it was killed without cleaning up.
   */
  private async takeOverDataDir(): Promise<void> {
    const previous = readDevState(this.options.dataDir);
    if (previous === undefined) return;
    if (previous.pid !== process.pid && isAlive(previous.pid)) {
      throw new CliError(`tessera dev (pid ${previous.pid}) is already running on ${this.options.dataDir}`);
    }
    const leftovers = previous.processes.filter((p) => p.pid !== null && isRecordedProcess(p.pid, p.dataDir));
    for (const leftover of leftovers) {
      this.note(`stopping ${leftover.role} ${leftover.id} (pid ${leftover.pid}) left running by a previous tessera dev`);
      try {
        process.kill(leftover.pid!, 'SIGTERM');
      } catch {
        // Gone already.
      }
    }
    const deadline = Date.now() + (this.options.stopGraceMs ?? 10_000);
    while (leftovers.some((p) => isAlive(p.pid!)) && Date.now() < deadline) await delay(100);
    for (const leftover of leftovers) {
      if (isAlive(leftover.pid!)) process.kill(leftover.pid!, 'SIGKILL');
    }
    removeDevState(this.options.dataDir);
  }

  private async startAll(): Promise<void> {
    const [coordinator, ...brokers] = this.children;
    this.spawn(coordinator!);
    await this.waitReady(coordinator!);
    if (this.stopping) return;
    for (const broker of brokers) this.spawn(broker);
    await Promise.all(brokers.map((broker) => this.waitReady(broker)));
    this.started = true;
  }

  private spawn(child: ManagedChild): void {
    if (this.stopping) return;
    this.lastStartMs.set(child, Date.now());
    child.start(
      (line) => this.options.stderr.write(line + '\n'),
      (exit) => this.onChildExit(child, exit),
    );
    this.saveState();
  }

  /** Polls the child's /ready until it answers 200; fails if it exits first or takes too long. */
  private async waitReady(child: ManagedChild): Promise<void> {
    const deadline = Date.now() + this.options.readyTimeoutMs;
    while (!this.stopping) {
      if (!child.running) {
        throw new CliError(`${child.spec.name} ${describeExit(await child.waitForExit())} while starting (see its log above)`);
      }
      if (await this.answersReady(child.spec.url)) {
        child.ready = true;
        this.saveState();
        return;
      }
      if (Date.now() > deadline) {
        throw new CliError(`${child.spec.name} did not become ready at ${child.spec.url} within ${this.options.readyTimeoutMs} ms`);
      }
      await delay(READY_POLL_MS);
    }
  }

  private async answersReady(url: string): Promise<boolean> {
    try {
      await this.probe.get(`${url}/ready`);
      return true;
    } catch {
      return false;
    }
  }

  private announce(): void {
    const width = Math.max(...this.children.map((child) => child.spec.name.length));
    const lines = this.children.map((child) => `${child.spec.name.padEnd(width)}  ${child.spec.url}`);
    this.options.stdout.write(lines.join('\n') + '\n');
    const coordinatorFlag = this.options.port === 7070 ? '' : ` --coordinator ${this.coordinatorUrl}`;
    this.note(
      [
        `cluster ready; PIDs in ${path.join(this.options.dataDir, 'dev.json')}; Ctrl-C stops it.`,
        `authentication is on: the admin credentials are in ${path.join(this.options.dataDir, 'credentials.json')} (mode 0600),`,
        this.options.dataDir.endsWith(path.join('.tessera', 'dev'))
          ? `which the CLI and the client library find when run from ${path.dirname(path.dirname(this.options.dataDir))}. Try:`
          : `which the CLI and the client library find with TESSERA_DEV_DIR=${this.options.dataDir}. Try:`,
        `  tessera${coordinatorFlag} topics create demo --partitions 6${this.options.brokers < 2 ? ' --replication-factor 1' : ''}`,
        `  printf 'k1:hello\\nk2:world\\n' | tessera${coordinatorFlag} produce demo --key-separator :`,
        `  tessera${coordinatorFlag} consume demo --group g1 --from-beginning --idle-timeout-ms 2000`,
      ].join('\n'),
    );
  }

  private onChildExit(child: ManagedChild, exit: ChildExit): void {
    this.saveState();
    if (this.stopping) return;
    if (!this.started) return; // startAll's waitReady reports it and the run fails.
    this.note(`${child.spec.name} (pid ${child.lastPid}) ${describeExit(exit)}`);
    if (this.options.restartOnExit) {
      const ranMs = Date.now() - (this.lastStartMs.get(child) ?? 0);
      const failures = ranMs > RESTART_BACKOFF_RESET_AFTER_MS ? 0 : (this.failuresInARow.get(child) ?? 0);
      this.failuresInARow.set(child, failures + 1);
      const backoffMs = Math.min(RESTART_BACKOFF_MAX_MS, RESTART_BACKOFF_INITIAL_MS * 2 ** failures);
      this.note(`restarting ${child.spec.name} in ${backoffMs} ms`);
      const timer = setTimeout(() => {
        this.restartTimers.delete(timer);
        void this.restart(child);
      }, backoffMs);
      this.restartTimers.add(timer);
      return;
    }
    if (this.children.every((c) => !c.running)) {
      this.note('every process has exited; stopping');
      void this.shutdown(undefined, 1);
      return;
    }
    this.note(`the other processes keep serving; run tessera dev with --restart-on-exit to restart processes that die`);
  }

  private async restart(child: ManagedChild): Promise<void> {
    if (this.stopping) return;
    child.restarts++;
    this.spawn(child);
    try {
      await this.waitReady(child);
      if (!this.stopping) this.note(`${child.spec.name} is back (pid ${child.pid})`);
    } catch (error) {
      // Its exit handler schedules the next attempt; just say why this one failed.
      if (!this.stopping) this.note(error instanceof Error ? error.message : String(error));
    }
  }

  /** Stops every child (SIGTERM, SIGKILL after the grace period) and ends the run. */
  async shutdown(signal?: NodeJS.Signals, exitCode = 0): Promise<void> {
    if (this.stopping) {
      // Under a package manager (`pnpm start`) one Ctrl-C arrives twice at once: from the terminal
      // and forwarded by pnpm. Only a signal a moment later is a second Ctrl-C.
      if (signal !== undefined && signal === this.stopSignal && Date.now() - this.stopSignalMs < REPEATED_SIGNAL_WINDOW_MS) return;
      if (signal !== undefined) {
        this.note(`${signal} again: killing every process`);
        this.children.forEach((child) => child.signal('SIGKILL'));
      }
      return;
    }
    this.stopping = true;
    this.stopSignal = signal;
    this.stopSignalMs = Date.now();
    for (const timer of this.restartTimers) clearTimeout(timer);
    this.restartTimers.clear();
    if (signal !== undefined) this.note(`${signal}: stopping the cluster`);
    // Brokers first, while the coordinator still answers their last calls; then the coordinator.
    // (Brokers stop well within the coordinator's broker timeout, so no failover starts.)
    const [coordinator, ...brokers] = this.children;
    const brokerExits = await Promise.all(brokers.map((child) => child.stop(this.options.stopGraceMs)));
    const coordinatorExit = coordinator ? await coordinator.stop(this.options.stopGraceMs) : { killed: false };
    [coordinatorExit, ...brokerExits].forEach((exit, i) => {
      if (exit.killed) this.note(`${this.children[i]!.spec.name} did not stop in time and was killed`);
    });
    removeDevState(this.options.dataDir);
    this.note('stopped');
    this.finish(exitCode);
  }

  /** Stops what was started after a failed start, then rethrows. */
  async abort(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.children.map((child) => child.stop(this.options.stopGraceMs)));
    removeDevState(this.options.dataDir);
  }

  private saveState(): void {
    const state: DevState = {
      pid: process.pid,
      coordinator: this.coordinatorUrl,
      dataDir: this.options.dataDir,
      startedAt: this.startedAt,
      processes: this.children.map((child) => ({
        id: child.spec.id,
        role: child.spec.role,
        pid: child.pid,
        port: child.spec.port,
        url: child.spec.url,
        dataDir: child.spec.dataDir,
        ready: child.ready,
        restarts: child.restarts,
      })),
    };
    try {
      if (!(this.stopping && this.children.every((c) => !c.running))) writeDevState(this.options.dataDir, state);
    } catch (error) {
      this.note(`cannot write dev.json: ${(error as Error).message}`);
    }
  }

  private note(text: string): void {
    this.options.stderr.write(text.split('\n').map((line) => `tessera dev: ${line}`).join('\n') + '\n');
  }
}


function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
