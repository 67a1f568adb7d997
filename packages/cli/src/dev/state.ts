/**
 * `DIR/dev.json`: the processes of a running `tessera dev`, so a user or a test can
 * find a broker's PID and `kill -9` it to watch failover. Rewritten atomically on
 * every change (spawn, exit, restart) and removed on a clean stop.
 */
import fs from 'node:fs';
import path from 'node:path';

export type Role = 'coordinator' | 'broker';

export interface DevProcess {
  /** `coordinator`, or the broker id. */
  id: 'coordinator' | number;
  role: Role;
  /** Null while the process is not running (it died and was not restarted yet). */
  pid: number | null;
  port: number;
  url: string;
  dataDir: string;
  ready: boolean;
  restarts: number;
}

export interface DevState {
  /** PID of the `tessera dev` supervisor itself. */
  pid: number;
  coordinator: string;
  dataDir: string;
  startedAt: string;
  processes: DevProcess[];
}

export function devStatePath(dataDir: string): string {
  return path.join(dataDir, 'dev.json');
}

export function writeDevState(dataDir: string, state: DevState): void {
  const file = devStatePath(dataDir);
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, JSON.stringify(state, null, 2) + '\n');
  fs.renameSync(temporary, file);
}

export function readDevState(dataDir: string): DevState | undefined {
  try {
    return JSON.parse(fs.readFileSync(devStatePath(dataDir), 'utf8')) as DevState;
  } catch {
    return undefined;
  }
}

export function removeDevState(dataDir: string): void {
  fs.rmSync(devStatePath(dataDir), { force: true });
}

/** True when a process with this PID exists (signal 0 checks without signalling). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * True when `pid` is still the process dev.json recorded: its command line names the
 * process's own data dir (a PID reused by an unrelated process does not). Without
 * /proc (not Linux) this cannot be told, so the answer is false and nothing is signalled.
 */
export function isRecordedProcess(pid: number, dataDir: string): boolean {
  if (!isAlive(pid)) return false;
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(dataDir);
  } catch {
    return false;
  }
}
