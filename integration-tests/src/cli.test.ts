// Proves the `tessera` CLI end to end as a user runs it: `tessera dev` starts a real
// three-broker cluster as processes, the CLI creates a topic, produces keyed stdin lines,
// consumes them in a group (every line, per-key order), describes and reports status,
// fails with one clear line, stops every child on SIGTERM, and a restart on the same
// data dir keeps records and committed offsets.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './harness/cli.js';
import { freePort, freePortRange } from '@tessera/protocol/test-support/ports';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(REPO, 'packages/cli/dist/bin.js');
const BROKERS = 3;

interface DevProcessInfo {
  id: 'coordinator' | number;
  role: 'coordinator' | 'broker';
  pid: number | null;
  port: number;
  url: string;
  restarts: number;
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A running `tessera dev`, with its output collected (it must be drained: stderr is a pipe). */
interface Dev {
  process: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

let dataDir: string;
let port: number;
let coordinatorUrl: string;
let dev: Dev | undefined;
/** Every PID any dev run recorded, so afterAll can make sure none survives a failed test. */
const seenPids = new Set<number>();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function readDevJson(dir = dataDir): { pid: number; processes: DevProcessInfo[] } | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'dev.json'), 'utf8'));
  } catch {
    return undefined;
  }
}

function startDev(extraArgs: string[] = [], where: { dir: string; port: number; brokers: number } = { dir: dataDir, port, brokers: BROKERS }): Dev {
  const args = [BIN, 'dev', '--data-dir', where.dir, '--port', String(where.port), '--brokers', String(where.brokers), ...extraArgs];
  const child = spawn(process.execPath, args, {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TESSERA_LOG_LEVEL: 'warn' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  // Keep only the tail of the (chatty) logs, for failure messages.
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-20_000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { process: child, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Waits until dev printed every address (it does so after each process answered /ready). */
async function waitDevReady(running: Dev, brokers = BROKERS, dir = dataDir): Promise<void> {
  let exitCode: number | null | undefined;
  void running.exited.then((code) => (exitCode = code));
  await waitFor(
    () => {
      if (exitCode !== undefined) throw new Error(`tessera dev exited with ${exitCode}:\n${running.stderr()}`);
      return running.stdout().includes(`broker-${brokers}`) || undefined;
    },
    'tessera dev to print its addresses',
  );
  for (const info of readDevJson(dir)!.processes) if (info.pid !== null) seenPids.add(info.pid);
}

/**
 * Runs `tessera --coordinator <dev> ...args` as a child process, with `input` on stdin. It finds
 * the dev cluster's admin credentials through TESSERA_DEV_DIR (the data dir is not ./.tessera/dev).
 */
function tessera(
  args: string[],
  options: { input?: string; coordinator?: string | null; env?: Record<string, string> } = {},
): Promise<RunResult> {
  const coordinator = options.coordinator === undefined ? coordinatorUrl : options.coordinator;
  const fullArgs = coordinator === null ? args : ['--coordinator', coordinator, ...args];
  return runCli(fullArgs, { input: options.input ?? '', env: { TESSERA_DEV_DIR: dataDir, ...options.env } });
}

function jsonLines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((line) => line.trim().length > 0)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** The stderr of a failed command: exactly one line, starting with `tessera: `, no stack. */
function expectOneErrorLine(result: RunResult): string {
  expect(result.code, result.stderr).not.toBe(0);
  const lines = result.stderr.split('\n').filter((line) => line.length > 0);
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^tessera: /);
  expect(result.stderr).not.toMatch(/\n\s+at /);
  return lines[0]!;
}

const TOPIC = 'cli-orders';
const KEYS = 7;
const RECORDS = 300;
/** `key-<k>:<k>-<seq>` lines: the sequence per key lets the test check per-key order. */
const LINES = Array.from({ length: RECORDS }, (_, i) => `key-${i % KEYS}:${i % KEYS}-${Math.floor(i / KEYS)}`);

function expectEveryLineInKeyOrder(records: Array<Record<string, unknown>>): void {
  expect(records).toHaveLength(RECORDS);
  const lastSeq = new Map<string, number>();
  for (const record of records) {
    expect(Object.keys(record).slice(0, 6)).toEqual(['topic', 'partition', 'offset', 'key', 'value', 'timestamp']);
    expect(record.topic).toBe(TOPIC);
    const [k, seq] = String(record.value).split('-');
    expect(record.key).toBe(`key-${k}`);
    const previous = lastSeq.get(String(record.key)) ?? -1;
    expect(Number(seq), `order of ${String(record.key)}`).toBe(previous + 1);
    lastSeq.set(String(record.key), Number(seq));
  }
  expect(new Set(records.map((r) => r.value)).size).toBe(RECORDS);
}

beforeAll(async () => {
  if (!fs.existsSync(BIN)) throw new Error(`${BIN} is missing: build first (pnpm build)`);
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-cli-test-'));
  port = await freePortRange(BROKERS + 1);
  coordinatorUrl = `https://127.0.0.1:${port}`;
  dev = startDev();
  await waitDevReady(dev);
});

afterAll(async () => {
  if (dev && dev.process.exitCode === null && dev.process.signalCode === null) {
    dev.process.kill('SIGTERM');
    await Promise.race([dev.exited, new Promise((resolve) => setTimeout(resolve, 15_000))]);
  }
  // Whatever a failed test left behind: every process any dev run started.
  for (const pid of seenPids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  if (dev && dev.process.exitCode === null) dev.process.kill('SIGKILL');
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('tessera CLI against a tessera dev cluster', () => {
  it('dev prints every address and records every PID in dev.json', () => {
    // Its output goes to pipes: plain text, no colour or cursor codes.
    expect(dev!.stdout() + dev!.stderr()).not.toContain('\x1b');
    expect(dev!.stdout()).toContain(`coordinator  ${coordinatorUrl}`);
    for (let id = 1; id <= BROKERS; id++) expect(dev!.stdout()).toContain(`broker-${id}`);
    const state = readDevJson()!;
    expect(state.pid).toBe(dev!.process.pid);
    expect(state.processes.map((p) => [p.id, p.role, p.port])).toEqual([
      ['coordinator', 'coordinator', port],
      ...Array.from({ length: BROKERS }, (_, i) => [i + 1, 'broker', port + i + 1]),
    ]);
    for (const p of state.processes) expect(isAlive(p.pid!)).toBe(true);
  });

  it('creates a topic and lists it', async () => {
    const created = await tessera(['topics', 'create', TOPIC, '--partitions', '4', '--replication-factor', '2']);
    expect(created.code, created.stderr).toBe(0);
    const list = await tessera(['topics', 'list', '--json']);
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout).topics).toContainEqual({ name: TOPIC, partitions: 4, replicationFactor: 2 });
    const again = await tessera(['topics', 'create', TOPIC, '--partitions', '4']);
    expect(expectOneErrorLine(again)).toBe(`tessera: topic "${TOPIC}" already exists`);
  });

  it('finds the dev cluster, its CA and its credentials without flags; plaintext and a wrong CA are refused in one line', async () => {
    // dev serves HTTPS with a local CA and key files of mode 0600 in its data dir.
    expect(fs.statSync(path.join(dataDir, 'tls', 'coordinator.key')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(dataDir, 'cluster-secret')).mode & 0o777).toBe(0o600);
    const found = await tessera(['topics', 'list', '--json'], { coordinator: null });
    expect(found.code, found.stderr).toBe(0);
    expect(JSON.parse(found.stdout).topics).toContainEqual({ name: TOPIC, partitions: 4, replicationFactor: 2 });
    const plain = await tessera(['topics', 'list'], { coordinator: coordinatorUrl.replace('https:', 'http:') });
    expect(expectOneErrorLine(plain)).toMatch(/^tessera: cannot reach the coordinator at http:/);
    const otherCa = path.join(dataDir, 'other-ca.crt');
    fs.writeFileSync(otherCa, fs.readFileSync(path.join(dataDir, 'tls', 'coordinator.crt')));
    const wrongCa = await tessera(['topics', 'list', '--ca-file', otherCa]);
    expect(expectOneErrorLine(wrongCa)).toMatch(/^tessera: cannot reach the coordinator at https:.*: its certificate is not trusted \(\w+\)/);
  });

  it('produces keyed stdin lines and reports the count on stderr', async () => {
    const result = await tessera(['produce', TOPIC, '--key-separator', ':'], { input: LINES.join('\n') + '\n' });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(new RegExp(`produced ${RECORDS} records`));
  });

  it('consumes every line in a group, each key in order', async () => {
    const result = await tessera(['consume', TOPIC, '--group', 'g1', '--from-beginning', '--idle-timeout-ms', '6000']);
    expect(result.code, result.stderr).toBe(0);
    expectEveryLineInKeyOrder(jsonLines(result.stdout));
  });

  it('stops after --max-messages', async () => {
    const result = await tessera(['consume', TOPIC, '--group', 'g-max', '--from-beginning', '--max-messages', '5', '--idle-timeout-ms', '10000']);
    expect(result.code, result.stderr).toBe(0);
    expect(jsonLines(result.stdout)).toHaveLength(5);
  });

  it('describes the topic as JSON with the documented shape', async () => {
    // The high watermark comes from the primaries' heartbeats, so wait until it is reported.
    const topic = await waitFor(async () => {
      const result = await tessera(['topics', 'describe', TOPIC, '--json']);
      expect(result.code, result.stderr).toBe(0);
      const body = JSON.parse(result.stdout);
      const sum = body.partitions.reduce((total: number, p: { highWatermark: number | null }) => total + (p.highWatermark ?? 0), 0);
      return sum === RECORDS ? body : undefined;
    }, 'high watermarks to add up to every record', 20_000);
    expect(topic.name).toBe(TOPIC);
    expect(topic.partitions).toHaveLength(4);
    for (const p of topic.partitions) {
      for (const field of ['partition', 'primary', 'secondary', 'epoch', 'isr', 'highWatermark']) expect(p).toHaveProperty(field);
      expect(p.primary).not.toBe(p.secondary);
      expect(p.isr).toContain(p.primary);
    }
    const table = await tessera(['topics', 'describe', TOPIC]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/PARTITION\s+PRIMARY\s+SECONDARY\s+EPOCH\s+ISR\s+START\s+HW\s+LEO\s+STATUS/);
    for (const p of topic.partitions) expect(p.logStartOffset).toBe(0); // nothing deleted yet
  });

  it('reports cluster status and brokers', async () => {
    const result = await tessera(['cluster', 'status', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const status = JSON.parse(result.stdout);
    expect(status.brokers).toHaveLength(BROKERS);
    for (const broker of status.brokers) {
      expect(broker).toMatchObject({ url: `https://127.0.0.1:${port + broker.id}`, alive: true });
    }
    expect(status.offline).toBe(0);
    const brokers = await tessera(['brokers', 'list']);
    expect(brokers.code, brokers.stderr).toBe(0);
    expect(brokers.stdout.split('\n').filter((l) => l.includes('https://'))).toHaveLength(BROKERS);
  });

  it('shows the group with its committed offsets and no lag', async () => {
    const result = await tessera(['groups', 'describe', 'g1', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const group = JSON.parse(result.stdout);
    expect(group.topic).toBe(TOPIC);
    expect(group.partitions).toHaveLength(4);
    expect(group.totalLag).toBe(0);
    const list = await tessera(['groups', 'list', '--json']);
    expect(JSON.parse(list.stdout).groups.map((g: { group: string }) => g.group)).toContain('g1');
  });

  it('fails with one clear line: unknown topic, unreachable coordinator, bad flags', async () => {
    expect(expectOneErrorLine(await tessera(['topics', 'describe', 'no-such-topic']))).toBe('tessera: topic "no-such-topic" not found');
    const produce = await tessera(['produce', 'no-such-topic'], { input: 'a\nb\n' });
    expect(expectOneErrorLine(produce)).toContain('topic "no-such-topic" not found');

    const closedPort = await freePort();
    const unreachable = await tessera(['topics', 'list'], { coordinator: `http://127.0.0.1:${closedPort}` });
    expect(expectOneErrorLine(unreachable)).toBe(`tessera: cannot reach the coordinator at http://127.0.0.1:${closedPort} (connection refused)`);

    expect(expectOneErrorLine(await tessera(['topics', 'create', 'x', '--partitions', 'many']))).toContain("--partitions <n>' argument 'many' is invalid");
    expect(expectOneErrorLine(await tessera(['topics', 'list', '--no-such-flag']))).toContain("unknown option '--no-such-flag'");
    expect(expectOneErrorLine(await tessera(['consume', TOPIC]))).toContain('give --group GROUP (read as a group member, committing) or --partition/--offset');

    // Pointed at a broker instead of the coordinator, it says so.
    const brokerUrl = `https://127.0.0.1:${port + 1}`;
    for (const args of [['topics', 'list'], ['cluster', 'status']]) {
      expect(expectOneErrorLine(await tessera(args, { coordinator: brokerUrl }))).toBe(
        `tessera: ${brokerUrl} is broker 1, not the coordinator: give --coordinator (or TESSERA_COORDINATOR) the coordinator's URL`,
      );
    }
  });

  it('manages principals and ACLs: a principal works where its ACLs allow and is refused elsewhere in one line', async () => {
    const created = await tessera(['users', 'create', 'team-a']);
    expect(created.code, created.stderr).toBe(0);
    const secret = created.stdout.trim();
    expect(secret.length).toBeGreaterThanOrEqual(32);
    const granted = await tessera(['acl', 'add', '--allow-principal', 'team-a', '--topic-prefix', 'team-a.', '--operation', 'admin']);
    expect(granted.code, granted.stderr).toBe(0);
    const acls = JSON.parse((await tessera(['acl', 'list', '--allow-principal', 'team-a', '--json'])).stdout).acls;
    expect(acls).toEqual([{ principal: 'team-a', resource: 'topic', name: 'team-a.', prefix: true, operation: 'admin' }]);

    const asTeam = (args: string[], input?: string, teamSecret = secret) =>
      tessera(['--principal', 'team-a', ...args], { input, env: { TESSERA_SECRET: teamSecret } });
    expect((await asTeam(['topics', 'create', 'team-a.orders', '--partitions', '2'])).code).toBe(0);
    const produced = await asTeam(['produce', 'team-a.orders', '--key-separator', ':'], 'k:one\nk:two\n');
    expect(produced.code, produced.stderr).toBe(0);
    const consumedOwn = await tessera(['consume', 'team-a.orders', '--group', 'admin-check', '--from-beginning', '--max-messages', '2']);
    expect(jsonLines(consumedOwn.stdout).map((r) => r.value)).toEqual(['one', 'two']);

    // Outside its prefix: refused with one line naming the principal, the operation and the topic; the topic is untouched.
    const before = JSON.parse((await tessera(['topics', 'describe', TOPIC, '--json'])).stdout);
    expect(expectOneErrorLine(await asTeam(['produce', TOPIC], 'x\n'))).toContain(`principal team-a is not allowed to produce to topic ${TOPIC}`);
    expect(expectOneErrorLine(await asTeam(['topics', 'delete', TOPIC]))).toBe(`tessera: principal team-a is not allowed to administer topic ${TOPIC}`);
    expect(expectOneErrorLine(await asTeam(['users', 'list']))).toBe('tessera: principal team-a is not allowed to administer the cluster');
    expect(JSON.parse((await tessera(['topics', 'describe', TOPIC, '--json'])).stdout)).toEqual(before);

    // No credentials, a wrong secret, a deleted principal: each one line.
    const anonymous = await tessera(['topics', 'list'], {
      env: { TESSERA_DEV_DIR: path.join(dataDir, 'nowhere'), TESSERA_CA_FILE: path.join(dataDir, 'tls', 'ca.crt') },
    });
    expect(expectOneErrorLine(anonymous)).toMatch(/^tessera: authentication required at .*--principal and --secret/);
    expect(expectOneErrorLine(await asTeam(['topics', 'list'], undefined, 'x'.repeat(32)))).toBe('tessera: authentication failed for principal team-a');
    expect((await tessera(['users', 'delete', 'team-a'])).code).toBe(0);
    expect(expectOneErrorLine(await asTeam(['topics', 'list']))).toBe('tessera: authentication failed for principal team-a');
  });

  it('consume | head ends quietly (EPIPE) with exit 0', async () => {
    const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} --coordinator ${coordinatorUrl} consume ${TOPIC} --group g-head --from-beginning --idle-timeout-ms 5000 | head -n 2; echo "consume exit $\{PIPESTATUS[0]}" >&2`;
    const result = await new Promise<RunResult>((resolve) => {
      const child = spawn('bash', ['-c', command], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TESSERA_DEV_DIR: dataDir } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
    expect(jsonLines(result.stdout)).toHaveLength(2);
    expect(result.stderr).toContain('consume exit 0');
    expect(result.stderr).not.toMatch(/EPIPE|\n\s+at /);
  });

  it('bench produce reports throughput and latency as JSON', async () => {
    const result = await tessera(['bench', 'produce', '--topic', 'cli-bench', '--messages', '200', '--size', '64', '--max-in-flight', '50', '--warmup', '30', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({ mode: 'produce', messages: 200, sizeBytes: 64, maxInFlight: 50, warmup: 30, failed: 0 });
    // The warm-up records (a new topic's first) are stored too, but not counted in the measured part.
    const stored = await tessera(['consume', 'cli-bench', '--group', 'cli-bench-count', '--from-beginning', '--idle-timeout-ms', '3000']);
    expect(stored.code, stored.stderr).toBe(0);
    expect(jsonLines(stored.stdout)).toHaveLength(230);
    expect(report.recordsPerSecond).toBeGreaterThan(0);
    expect(report.ackLatencyMs.p99).toBeGreaterThanOrEqual(report.ackLatencyMs.p50);
    // Every process's CPU per record, read from each service's /metrics (and this process's own).
    expect(report.cpu.map((c: { process: string }) => c.process)).toEqual(['coordinator', 'broker-1', 'broker-2', 'broker-3', 'bench']);
    for (const use of report.cpu) expect(use.microsPerRecord).toBeGreaterThan(0);
    expect(report.loadAverage.cpus).toBeGreaterThan(0);
  });

  it('bench consume warms up by storing and reading its own records first', async () => {
    const result = await tessera(['bench', 'consume', '--topic', 'cli-bench-consume', '--messages', '200', '--size', '32', '--warmup', '50', '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ mode: 'consume', messages: 200, warmup: 50, failed: 0 });
    // Two groups read the topic: the warm-up's and the measured one.
    const groups = JSON.parse((await tessera(['groups', 'list', '--json'])).stdout).groups as Array<{ group: string; topic: string }>;
    expect(groups.filter((g) => g.topic === 'cli-bench-consume' && g.group.startsWith('bench-consume-'))).toHaveLength(2);
    const stored = await tessera(['consume', 'cli-bench-consume', '--group', 'cli-bench-consume-count', '--from-beginning', '--idle-timeout-ms', '3000']);
    expect(jsonLines(stored.stdout)).toHaveLength(250);
  });

  it('bench targets runs the whole set at a small scale, judges it in one report and removes its topics and groups', async () => {
    const floorDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-targets-floor-'));
    const result = await tessera(['bench', 'targets', '--scale', '0.01', '--topic-prefix', 'cli-targets', '--floor-dir', floorDir, '--json']);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({ mode: 'targets', scale: 0.01 });
    // The machine's floor was measured first, in the directory given, and left nothing there.
    expect(report.floor).toMatchObject({ mode: 'floor', dir: floorDir, rounds: 2_000 });
    expect(report.floor.replicatedWriteMs.p50).toBeGreaterThan(0);
    expect(fs.readdirSync(floorDir)).toEqual([]);
    fs.rmSync(floorDir, { recursive: true });
    // Every judged run ran on its own topic with the documented count × 0.01, and lost nothing.
    expect(report.runs.map((r: { result: { mode: string; topic: string; messages: number; failed: number } }) => [r.result.mode, r.result.topic, r.result.messages, r.result.failed])).toEqual([
      ['produce', 'cli-targets-p100', 3_000, 0],
      ['produce', 'cli-targets-p1k', 1_500, 0],
      ['produce', 'cli-targets-pu100', 6_000, 0],
      ['produce', 'cli-targets-p192', 2_000, 0],
      ['latency', 'cli-targets-l100', 50, 0],
      ['e2e', 'cli-targets-e100', 300, 0],
      ['consume', 'cli-targets-c100', 3_000, 0],
    ]);
    expect(report.runs[3].result.partitions).toBe(192);
    // The e2e run says how often its consumer committed: as subscribe() does by default.
    expect(report.runs[5].result.commitIntervalMs).toBe(100);
    for (const run of report.runs) expect(typeof run.met, run.name).toBe('boolean');
    // Open files were read from every broker before and after the 192-partition run.
    expect(report.openFiles.brokers).toHaveLength(BROKERS);
    for (const broker of report.openFiles.brokers) {
      expect(broker.before).toBeGreaterThan(0);
      expect(broker.after).toBeGreaterThan(0);
    }
    // Each run's own report went to stderr with the command it stands for.
    expect(result.stderr).toContain('targets: produce 100 B, 192 partitions: tessera bench produce -t cli-targets-p192 -n 2000 -s 100 -c 1000 --partitions 192');
    const topics = JSON.parse((await tessera(['topics', 'list', '--json'])).stdout).topics as Array<{ name: string }>;
    expect(topics.filter((t) => t.name.startsWith('cli-targets-'))).toEqual([]);
    const groups = JSON.parse((await tessera(['groups', 'list', '--json'])).stdout).groups as Array<{ topic: string }>;
    expect(groups.filter((g) => g.topic.startsWith('cli-targets-'))).toEqual([]);
    // It deletes its topics at the end, so it never runs on a topic that was there before.
    expect((await tessera(['topics', 'create', 'cli-targets-c100', '--partitions', '1'])).code).toBe(0);
    expect(expectOneErrorLine(await tessera(['bench', 'targets', '--scale', '0.01', '--topic-prefix', 'cli-targets']))).toBe(
      'tessera: topic cli-targets-c100 exists already: give another --topic-prefix',
    );
    const kept = JSON.parse((await tessera(['topics', 'list', '--json'])).stdout).topics as Array<{ name: string }>;
    expect(kept.filter((t) => t.name.startsWith('cli-targets-')).map((t) => t.name)).toEqual(['cli-targets-c100']);
  });

  it('a broker killed with SIGKILL is reported by dev and shown dead; the cluster keeps serving', async () => {
    const victim = readDevJson()!.processes.find((p) => p.id === BROKERS)!;
    process.kill(victim.pid!, 'SIGKILL');
    await waitFor(() => dev!.stderr().includes(`broker-${BROKERS} (pid ${victim.pid}) was killed by SIGKILL`) || undefined, 'dev to report the death');
    expect(readDevJson()!.processes.find((p) => p.id === BROKERS)!.pid).toBeNull();
    await waitFor(async () => {
      const status = JSON.parse((await tessera(['cluster', 'status', '--json'])).stdout);
      return status.brokers.find((b: { id: number }) => b.id === BROKERS)?.alive === false || undefined;
    }, 'the coordinator to declare the broker dead', 30_000);
    // Failover moved its partitions to the survivors: produce is acknowledged again.
    const more = await tessera(['produce', 'cli-bench'], { input: 'a\nb\nc\n' });
    expect(more.code, more.stderr).toBe(0);
  });

  it('SIGTERM stops every child; a restart on the same data dir keeps records and committed offsets', async () => {
    const pids = readDevJson()!.processes.map((p) => p.pid!);
    dev!.process.kill('SIGTERM');
    expect(await dev!.exited).toBe(0);
    await waitFor(() => pids.every((pid) => !isAlive(pid)) || undefined, 'every child to exit', 15_000);
    expect(readDevJson()).toBeUndefined();

    dev = startDev();
    await waitDevReady(dev);

    // g1 committed everything before the restart: nothing new for it.
    const again = await tessera(['consume', TOPIC, '--group', 'g1', '--idle-timeout-ms', '3000']);
    expect(again.code, again.stderr).toBe(0);
    expect(jsonLines(again.stdout)).toEqual([]);

    // A new group reads every record the first run stored.
    const fresh = await tessera(['consume', TOPIC, '--group', 'g2', '--from-beginning', '--idle-timeout-ms', '8000']);
    expect(fresh.code, fresh.stderr).toBe(0);
    expectEveryLineInKeyOrder(jsonLines(fresh.stdout));
  });
});

describe('tessera dev --restart-on-exit', () => {
  it('restarts a broker killed with SIGKILL, records its new PID, and the coordinator sees it alive again', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-cli-restart-'));
    const restartPort = await freePortRange(3);
    const running = startDev(['--restart-on-exit'], { dir, port: restartPort, brokers: 2 });
    try {
      await waitDevReady(running, 2, dir);
      const victim = readDevJson(dir)!.processes.find((p) => p.id === 1)!;
      process.kill(victim.pid!, 'SIGKILL');
      await waitFor(() => running.stderr().includes('broker-1 is back') || undefined, 'broker-1 to be restarted', 60_000);
      const restarted = readDevJson(dir)!.processes.find((p) => p.id === 1)!;
      expect(restarted.pid).not.toBe(victim.pid);
      expect(restarted.restarts).toBe(1);
      seenPids.add(restarted.pid!);
      expect(isAlive(restarted.pid!)).toBe(true);
      await waitFor(async () => {
        const result = await tessera(['cluster', 'status', '--json'], {
          coordinator: `https://127.0.0.1:${restartPort}`,
          env: { TESSERA_DEV_DIR: dir },
        });
        const status = JSON.parse(result.stdout);
        return status.brokers.find((b: { id: number }) => b.id === 1)?.alive === true || undefined;
      }, 'broker 1 alive again');
      running.process.kill('SIGTERM');
      expect(await running.exited).toBe(0);
      for (const p of [restarted, ...readDevJson(dir)?.processes ?? []]) if (p.pid !== null) expect(isAlive(p.pid)).toBe(false);
    } finally {
      if (running.process.exitCode === null) running.process.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('tessera dev killed with SIGKILL', () => {
  it('takes its services with it, and a new one starts on the same data dir without leftovers to stop', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-cli-killed-'));
    const killedPort = await freePortRange(2);
    const first = startDev([], { dir, port: killedPort, brokers: 1 });
    let second: Dev | undefined;
    try {
      await waitDevReady(first, 1, dir);
      const pids = readDevJson(dir)!.processes.map((p) => p.pid!);
      first.process.kill('SIGKILL');
      await first.exited;
      // Nothing signals the services: each sees its standard input end and stops.
      await waitFor(() => pids.every((pid) => !isAlive(pid)) || undefined, 'every service to stop by itself', 15_000);

      second = startDev([], { dir, port: killedPort, brokers: 1 });
      await waitDevReady(second, 1, dir);
      expect(second.stderr()).not.toContain('left running by a previous tessera dev');
      second.process.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    } finally {
      for (const running of [first, second]) if (running !== undefined && running.process.exitCode === null) running.process.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
