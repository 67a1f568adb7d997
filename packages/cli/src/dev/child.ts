/**
 * One supervised process of the dev cluster: spawned with this Node binary, its
 * stdout and stderr forwarded line by line to our stderr behind a `[broker-2]`
 * prefix, and stopped with SIGTERM, then SIGKILL after a grace period.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import readline from 'node:readline';
import { STOP_ON_STDIN_END_ENV } from '@tessera/protocol';
import type { Role } from './state.js';

export interface ChildSpec {
  name: string;
  role: Role;
  id: 'coordinator' | number;
  entry: string;
  args: string[];
  port: number;
  url: string;
  dataDir: string;
  /** Environment of this process only (the coordinator's bootstrap admin secret). */
  env?: Record<string, string>;
}

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class ManagedChild {
  readonly spec: ChildSpec;
  private process: ChildProcess | undefined;
  private exited: Promise<ChildExit> = Promise.resolve({ code: null, signal: null });
  restarts = 0;
  ready = false;
  /** PID of the most recent process, kept after it exits so its death can be reported. */
  lastPid: number | null = null;

  constructor(spec: ChildSpec) {
    this.spec = spec;
  }

  get pid(): number | null {
    return this.running ? (this.process?.pid ?? null) : null;
  }

  get running(): boolean {
    return this.process !== undefined && this.process.exitCode === null && this.process.signalCode === null;
  }

  /** Starts the process; `onExit` runs once when it ends, whatever the reason. */
  start(log: (line: string) => void, onExit: (exit: ChildExit) => void): void {
    if (this.running) throw new Error(`${this.spec.name} is already running`);
    this.ready = false;
    const child = spawn(process.execPath, [...devNodeArgs(), this.spec.entry, ...this.spec.args], {
      // The child stops when its standard input ends (STOP_ON_STDIN_END_ENV): if this process
      // dies, even by SIGKILL, the pipe closes and its services do not outlive it.
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group: a Ctrl-C in the terminal reaches only the supervisor,
      // which then stops every child with exactly one SIGTERM (a second signal would
      // make a service exit at once, uncleanly).
      detached: true,
      env: { ...childEnv(process.env), ...this.spec.env, [STOP_ON_STDIN_END_ENV]: '1' },
    });
    this.process = child;
    this.lastPid = child.pid ?? null;
    const prefix = `[${this.spec.name}] `;
    for (const stream of [child.stdout, child.stderr]) {
      readline.createInterface({ input: stream!, crlfDelay: Infinity }).on('line', (line) => log(prefix + line));
    }
    this.exited = new Promise((resolve) => {
      let settled = false;
      const finish = (exit: ChildExit) => {
        if (settled) return;
        settled = true;
        this.ready = false;
        resolve(exit);
        onExit(exit);
      };
      child.once('exit', (code, signal) => finish({ code, signal }));
      child.once('error', (error) => {
        log(`${prefix}cannot start: ${error.message}`);
        finish({ code: null, signal: null });
      });
    });
  }

  /** Resolves when the current process has ended. */
  waitForExit(): Promise<ChildExit> {
    return this.exited;
  }

  signal(signal: NodeJS.Signals): void {
    const pid = this.pid;
    if (pid === null) return;
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone between the check and the signal: nothing to stop.
    }
  }

  /**
   * SIGTERM, then SIGKILL when it has not exited after `graceMs`. Resolves whether it
   * had to be killed (false when it stopped by itself or was not running).
   */
  async stop(graceMs: number): Promise<{ killed: boolean }> {
    if (!this.running) return { killed: false };
    let killed = false;
    this.signal('SIGTERM');
    const timer = setTimeout(() => {
      killed = true;
      this.signal('SIGKILL');
    }, graceMs);
    try {
      await this.exited;
      return { killed };
    } finally {
      clearTimeout(timer);
    }
  }
}

export function describeExit(exit: ChildExit): string {
  if (exit.signal !== null) return `was killed by ${exit.signal}`;
  if (exit.code !== null) return `exited with code ${exit.code}`;
  return 'could not be started';
}

/**
 * Settings that name one process (its id, port, address, data dir) come from the flags
 * the supervisor passes; the same value inherited by every child from the user's shell
 * would make brokers collide (e.g. all advertising one TESSERA_ADVERTISED_URL). Cluster-
 * wide settings (log level, durability, timeouts) pass through.
 */
const PER_PROCESS_ENV = [
  'TESSERA_BROKER_ID',
  'TESSERA_PORT',
  'TESSERA_HOST',
  'TESSERA_ADVERTISED_URL',
  'TESSERA_INTERNAL_URL',
  'TESSERA_DATA_DIR',
  'TESSERA_COORDINATOR',
];

export function childEnv(parent: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...parent, TESSERA_LOG_PRETTY: '1' };
  for (const name of PER_PROCESS_ENV) delete env[name];
  return env;
}

/**
 * Extra Node options for every service of the dev cluster, from `TESSERA_DEV_NODE_ARGS`
 * (space-separated), for profiling: `--cpu-prof` cannot be given through `NODE_OPTIONS`.
 */
function devNodeArgs(): string[] {
  return (process.env.TESSERA_DEV_NODE_ARGS ?? '').split(' ').filter((arg) => arg !== '');
}
