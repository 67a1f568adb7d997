/**
 * `tessera bench floor`: what this machine allows before any Tessera code runs. It measures
 * the two costs every acknowledged record pays and nothing else:
 *  - a round trip between two processes over loopback TCP (this process and a child Node
 *    process that echoes), with the CPU each side spends on it;
 *  - a durable commit in DIR: a bare write + fdatasync, and a one-row SQLite transaction in
 *    WAL mode with synchronous=FULL (what a broker with durability full does per group commit).
 * A record produced one at a time with replication factor 2 and durability full crosses two
 * such hops (client → primary → secondary, and the answers back) and waits for the
 * secondary's commit (the primary's own commit overlaps the push), so two round trips plus
 * one commit is the least its acknowledgement can take here. Nothing runs but the
 * measurement: no cluster is needed, and what it creates in DIR is removed at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { CliError } from '../errors.js';
import { formatCount, formatLatencyMs } from '../output/format.js';
import { Progress } from '../output/progress.js';
import { renderFields } from '../output/table.js';
import { jsonLine } from '../output/write.js';
import type { Runtime } from '../runtime.js';
import { LatencyHistogram, formatLatencySummary, type LatencySummary } from './histogram.js';

export interface FloorOptions {
  /** Where the commits are measured: the disk the brokers' data dirs are on. */
  dir: string;
  /** Round trips, and commits of each kind. */
  rounds: number;
  json?: boolean;
}

export interface FloorResult {
  mode: 'floor';
  dir: string;
  rounds: number;
  roundTripMs: LatencySummary;
  /** CPU per round trip, in µs: this process (the client) and the echoing child. */
  roundTripCpuMicros: { client: number; server: number };
  fdatasyncMs: LatencySummary;
  sqliteCommitMs: LatencySummary;
  /** 2 × round trip p50 + SQLite commit p50: the least a one-at-a-time acknowledgement takes here. */
  oneAtATimeFloorMs: number;
  loadAverage: { before: number; after: number; cpus: number };
}

/** Bytes per echo: about a small produce request's head. */
const MESSAGE_BYTES = 200;
/** Bytes per bare write: one page. */
const WRITE_BYTES = 4096;
/** Bytes per SQLite row: a 100-byte record. */
const ROW_BYTES = 100;
/** Round trips before the timed ones (connection set up, code warm). */
const WARMUP_ROUNDS = 200;

/**
 * The echo process: listens on an ephemeral loopback port, sends it over IPC, echoes every
 * byte it reads, and answers `cpu` with its CPU time so far. It exits when its parent does.
 */
const ECHO_SCRIPT = `
const net = require('node:net');
const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('data', (chunk) => socket.write(chunk));
  socket.on('error', () => {});
});
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
process.on('message', () => process.send({ cpu: process.cpuUsage() }));
process.on('disconnect', () => process.exit(0));
`;

export async function runFloor(runtime: Runtime, options: FloorOptions): Promise<FloorResult> {
  const dir = path.resolve(options.dir);
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new CliError(`--dir ${options.dir}: no such directory`, { exitCode: 2 });
  }
  const loadBefore = os.loadavg()[0]!;
  let step = 'round trips';
  let done = 0;
  const progress = new Progress({
    stream: runtime.io.stderr,
    render: () => `floor: ${step} ${formatCount(done)}/${formatCount(options.rounds)}`,
  });
  let result: FloorResult;
  try {
    const echo = await measureRoundTrips(options.rounds, (n) => (done = n));
    step = 'fdatasync';
    done = 0;
    const fdatasync = measureFdatasync(dir, options.rounds, (n) => (done = n));
    step = 'SQLite commits';
    done = 0;
    const sqlite = measureSqliteCommits(dir, options.rounds, (n) => (done = n));
    result = {
      mode: 'floor',
      dir,
      rounds: options.rounds,
      roundTripMs: echo.latency.summary(),
      roundTripCpuMicros: echo.cpuMicros,
      fdatasyncMs: fdatasync.summary(),
      sqliteCommitMs: sqlite.summary(),
      oneAtATimeFloorMs: 2 * echo.latency.percentileMs(0.5) + sqlite.percentileMs(0.5),
      loadAverage: { before: loadBefore, after: os.loadavg()[0]!, cpus: os.cpus().length },
    };
  } finally {
    progress.stop();
  }
  runtime.out(options.json ? jsonLine(result) : renderFloor(result));
  return result;
}

async function measureRoundTrips(rounds: number, onProgress: (done: number) => void): Promise<{ latency: LatencyHistogram; cpuMicros: { client: number; server: number } }> {
  const child = spawn(process.execPath, ['-e', ECHO_SCRIPT], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  try {
    const { port } = await nextMessage<{ port: number }>(child);
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    try {
      const message = Buffer.alloc(MESSAGE_BYTES, 'x');
      let received = 0;
      let answered: (() => void) | undefined;
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received >= MESSAGE_BYTES) {
          received -= MESSAGE_BYTES;
          answered?.();
        }
      });
      const roundTrip = () =>
        new Promise<void>((resolve) => {
          answered = resolve;
          socket.write(message);
        });
      for (let i = 0; i < WARMUP_ROUNDS; i++) await roundTrip();
      const latency = new LatencyHistogram();
      const serverBefore = await childCpu(child);
      const clientBefore = process.cpuUsage();
      for (let i = 0; i < rounds; i++) {
        const startedAt = process.hrtime.bigint();
        await roundTrip();
        latency.recordMicros(Number(process.hrtime.bigint() - startedAt) / 1000);
        onProgress(i + 1);
      }
      const client = process.cpuUsage(clientBefore);
      const serverAfter = await childCpu(child);
      // The two IPC questions cost the child a little CPU too: negligible against `rounds` echoes.
      const server = serverAfter.user + serverAfter.system - serverBefore.user - serverBefore.system;
      return { latency, cpuMicros: { client: (client.user + client.system) / rounds, server: server / rounds } };
    } finally {
      socket.destroy();
    }
  } finally {
    child.disconnect();
    child.kill();
  }
}

function nextMessage<T>(child: ChildProcess): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onExit = (code: number | null) => reject(new CliError(`the echo process exited (code ${code}) before it answered`));
    child.once('exit', onExit);
    child.once('message', (message) => {
      child.off('exit', onExit);
      resolve(message as T);
    });
  });
}

async function childCpu(child: ChildProcess): Promise<NodeJS.CpuUsage> {
  const answer = nextMessage<{ cpu: NodeJS.CpuUsage }>(child);
  child.send('cpu');
  return (await answer).cpu;
}

/** A page appended and made durable with fdatasync, `rounds` times, in a file of its own. */
function measureFdatasync(dir: string, rounds: number, onProgress: (done: number) => void): LatencyHistogram {
  const file = path.join(dir, `.tessera-floor-${process.pid}.dat`);
  const page = Buffer.alloc(WRITE_BYTES, 'x');
  const latency = new LatencyHistogram();
  const fd = fs.openSync(file, 'w');
  try {
    for (let i = 0; i < rounds; i++) {
      const startedAt = process.hrtime.bigint();
      fs.writeSync(fd, page, 0, WRITE_BYTES, i * WRITE_BYTES);
      fs.fdatasyncSync(fd);
      latency.recordMicros(Number(process.hrtime.bigint() - startedAt) / 1000);
      onProgress(i + 1);
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
  return latency;
}

/** One-row transactions in a WAL database with synchronous=FULL, as a broker's durability full commits. */
function measureSqliteCommits(dir: string, rounds: number, onProgress: (done: number) => void): LatencyHistogram {
  const file = path.join(dir, `.tessera-floor-${process.pid}.db`);
  const db = new Database(file);
  const latency = new LatencyHistogram();
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE records (id INTEGER PRIMARY KEY, data BLOB NOT NULL)');
    const insert = db.prepare('INSERT INTO records (data) VALUES (?)');
    const row = Buffer.alloc(ROW_BYTES, 'x');
    for (let i = 0; i < rounds; i++) {
      const startedAt = process.hrtime.bigint();
      insert.run(row);
      latency.recordMicros(Number(process.hrtime.bigint() - startedAt) / 1000);
      onProgress(i + 1);
    }
  } finally {
    db.close();
    for (const suffix of ['', '-wal', '-shm']) fs.rmSync(file + suffix, { force: true });
  }
  return latency;
}

export function renderFloor(result: FloorResult): string {
  const cpu = result.roundTripCpuMicros;
  return renderFields([
    ['mode', 'floor'],
    ['dir', result.dir],
    ['rounds', formatCount(result.rounds)],
    ['round trip', `${formatLatencySummary(result.roundTripMs)} (loopback TCP between two processes, ${MESSAGE_BYTES} B)`],
    ['round trip cpu', `client ${cpu.client.toFixed(1)} µs, server ${cpu.server.toFixed(1)} µs`],
    ['fdatasync', `${formatLatencySummary(result.fdatasyncMs)} (${WRITE_BYTES} B appended)`],
    ['sqlite commit', `${formatLatencySummary(result.sqliteCommitMs)} (one ${ROW_BYTES} B row, WAL, synchronous=FULL)`],
    ['one at a time', `at least ${formatLatencyMs(result.oneAtATimeFloorMs)} p50 with replication factor 2 and durability full (2 round trips + 1 commit)`],
    ['load average', `${result.loadAverage.before.toFixed(2)} → ${result.loadAverage.after.toFixed(2)} (${result.loadAverage.cpus} CPUs)`],
  ]);
}
