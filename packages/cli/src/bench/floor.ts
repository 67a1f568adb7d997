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
 * one commit is the least its acknowledgement can take here. That sum leaves out what the
 * hops cost each other on a machine with few cores, so the same path is also run for real:
 * a bare replicated write, this process sending 100-byte records one at a time to a child
 * "primary" that forwards each to a child "secondary", both committing it in SQLite in DIR,
 * with the CPU each process spends per record. Nothing runs but the measurement: no cluster
 * is needed, and what it creates in DIR is removed at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
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
  /** Round trips, commits of each kind, and replicated writes. */
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
  /** The bare replicated write: client → primary → secondary, a SQLite commit on each, one record at a time. */
  replicatedWriteMs: LatencySummary;
  /** CPU per replicated record, in µs, of each of its three processes. */
  replicatedWriteCpuMicros: { client: number; primary: number; secondary: number };
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

/**
 * A replica of the bare replicated write. Arguments: better-sqlite3's path, its database file,
 * and for the primary the secondary's port. It listens on an ephemeral loopback port, sends it
 * over IPC, and commits every record it reads (ROW_BYTES each) as one row (WAL,
 * synchronous=FULL). The primary first sends the record on to the secondary, then commits it
 * (the two commits overlap), and answers one byte when the secondary has answered; the
 * secondary answers after its commit. It answers `cpu` over IPC, and closes its database and
 * exits when its parent disconnects.
 */
const REPLICA_SCRIPT = `
const net = require('node:net');
const Database = require(process.argv[1]);
const db = new Database(process.argv[2]);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
db.exec('CREATE TABLE IF NOT EXISTS records (id INTEGER PRIMARY KEY, data BLOB NOT NULL)');
const insert = db.prepare('INSERT INTO records (data) VALUES (?)');
const RECORD = ${ROW_BYTES};
function onRecords(socket, onRecord) {
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= RECORD) {
      onRecord(pending.subarray(0, RECORD));
      pending = pending.subarray(RECORD);
    }
  });
}
const secondaryPort = process.argv[3] === undefined ? undefined : Number(process.argv[3]);
let secondary;
const answers = [];
if (secondaryPort !== undefined) {
  secondary = net.connect({ host: '127.0.0.1', port: secondaryPort, noDelay: true });
  secondary.on('data', (chunk) => { for (let i = 0; i < chunk.length; i++) answers.shift()(); });
  secondary.on('error', () => process.exit(1));
}
const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('error', () => {});
  onRecords(socket, (record) => {
    if (secondary !== undefined) {
      secondary.write(record);
      insert.run(record);
      answers.push(() => socket.write('k'));
    } else {
      insert.run(record);
      socket.write('k');
    }
  });
});
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
process.on('message', () => process.send({ cpu: process.cpuUsage() }));
process.on('disconnect', () => { db.close(); process.exit(0); });
`;

/** Measures the floor and prints its report with `out` (stdout unless given). */
export async function runFloor(runtime: Runtime, options: FloorOptions, out: (text: string) => void = (text) => runtime.out(text)): Promise<FloorResult> {
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
    step = 'replicated writes';
    done = 0;
    const replicated = await measureReplicatedWrites(dir, options.rounds, (n) => (done = n));
    result = {
      mode: 'floor',
      dir,
      rounds: options.rounds,
      roundTripMs: echo.latency.summary(),
      roundTripCpuMicros: echo.cpuMicros,
      fdatasyncMs: fdatasync.summary(),
      sqliteCommitMs: sqlite.summary(),
      oneAtATimeFloorMs: 2 * echo.latency.percentileMs(0.5) + sqlite.percentileMs(0.5),
      replicatedWriteMs: replicated.latency.summary(),
      replicatedWriteCpuMicros: replicated.cpuMicros,
      loadAverage: { before: loadBefore, after: os.loadavg()[0]!, cpus: os.cpus().length },
    };
  } finally {
    progress.stop();
  }
  out(options.json ? jsonLine(result) : renderFloor(result));
  return result;
}

async function measureRoundTrips(rounds: number, onProgress: (done: number) => void): Promise<{ latency: LatencyHistogram; cpuMicros: { client: number; server: number } }> {
  const { child, port } = await startChild(ECHO_SCRIPT, []);
  try {
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
      const { latency, clientMicros, childMicros } = await timeRounds(rounds, roundTrip, [child], onProgress);
      return { latency, cpuMicros: { client: clientMicros, server: childMicros[0]! } };
    } finally {
      socket.destroy();
    }
  } finally {
    await stopChild(child);
  }
}

/**
 * The bare replicated write, `rounds` records one at a time after a warm-up: this process →
 * a primary child → a secondary child, a SQLite commit in DIR on each (see REPLICA_SCRIPT).
 */
async function measureReplicatedWrites(
  dir: string,
  rounds: number,
  onProgress: (done: number) => void,
): Promise<{ latency: LatencyHistogram; cpuMicros: { client: number; primary: number; secondary: number } }> {
  const sqlitePath = createRequire(import.meta.url).resolve('better-sqlite3');
  const files = ['primary', 'secondary'].map((role) => path.join(dir, `.tessera-floor-${process.pid}-${role}.db`));
  const started: ChildProcess[] = [];
  try {
    const secondary = await startChild(REPLICA_SCRIPT, [sqlitePath, files[1]!]);
    started.push(secondary.child);
    const primary = await startChild(REPLICA_SCRIPT, [sqlitePath, files[0]!, String(secondary.port)]);
    started.push(primary.child);
    const socket = net.connect({ host: '127.0.0.1', port: primary.port, noDelay: true });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    try {
      const record = Buffer.alloc(ROW_BYTES, 'x');
      let pending: { resolve: () => void; reject: (error: Error) => void } | undefined;
      socket.on('data', () => pending?.resolve());
      // A replica that fails (its disk full, say) closes the chain: the write fails instead of waiting.
      const broken = new CliError('the replicated write stopped: a measuring process closed its connection');
      socket.on('error', () => pending?.reject(broken));
      socket.on('close', () => pending?.reject(broken));
      const write = () =>
        new Promise<void>((resolve, reject) => {
          pending = { resolve, reject };
          socket.write(record);
        });
      const { latency, clientMicros, childMicros } = await timeRounds(rounds, write, [primary.child, secondary.child], onProgress);
      return { latency, cpuMicros: { client: clientMicros, primary: childMicros[0]!, secondary: childMicros[1]! } };
    } finally {
      socket.destroy();
    }
  } finally {
    await Promise.all(started.map(stopChild));
    for (const file of files) {
      for (const suffix of ['', '-wal', '-shm']) fs.rmSync(file + suffix, { force: true });
    }
  }
}

/**
 * Runs `once` WARMUP_ROUNDS times (connections set up, code warm), then `rounds` times timed,
 * one after the other. Also gives the CPU per timed round, in µs, of this process and of each
 * of `children` (read over IPC before and after: two questions, negligible against the rounds).
 */
async function timeRounds(
  rounds: number,
  once: () => Promise<void>,
  children: ChildProcess[],
  onProgress: (done: number) => void,
): Promise<{ latency: LatencyHistogram; clientMicros: number; childMicros: number[] }> {
  for (let i = 0; i < WARMUP_ROUNDS; i++) await once();
  const latency = new LatencyHistogram();
  const childrenBefore = await Promise.all(children.map(childCpu));
  const clientBefore = process.cpuUsage();
  for (let i = 0; i < rounds; i++) {
    const startedAt = process.hrtime.bigint();
    await once();
    latency.recordMicros(Number(process.hrtime.bigint() - startedAt) / 1000);
    onProgress(i + 1);
  }
  const client = process.cpuUsage(clientBefore);
  const childrenAfter = await Promise.all(children.map(childCpu));
  const micros = (cpu: NodeJS.CpuUsage) => cpu.user + cpu.system;
  return {
    latency,
    clientMicros: micros(client) / rounds,
    childMicros: childrenAfter.map((after, i) => (micros(after) - micros(childrenBefore[i]!)) / rounds),
  };
}

/** A child Node process running `script` with `args`, once it has told its loopback port. */
async function startChild(script: string, args: string[]): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['-e', script, ...args], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  try {
    const { port } = await nextMessage<{ port: number }>(child);
    return { child, port };
  } catch (error) {
    child.kill();
    throw error;
  }
}

/** Disconnects a child (it closes what it opened and exits) and waits until it has exited. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (child.connected) child.disconnect();
  else child.kill();
  await exited;
}

function nextMessage<T>(child: ChildProcess): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onExit = (code: number | null) => reject(new CliError(`a measuring process exited (code ${code}) before it answered`));
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
  const replicated = result.replicatedWriteCpuMicros;
  return renderFields([
    ['mode', 'floor'],
    ['dir', result.dir],
    ['rounds', formatCount(result.rounds)],
    ['round trip', `${formatLatencySummary(result.roundTripMs)} (loopback TCP between two processes, ${MESSAGE_BYTES} B)`],
    ['round trip cpu', `client ${cpu.client.toFixed(1)} µs, server ${cpu.server.toFixed(1)} µs`],
    ['fdatasync', `${formatLatencySummary(result.fdatasyncMs)} (${WRITE_BYTES} B appended)`],
    ['sqlite commit', `${formatLatencySummary(result.sqliteCommitMs)} (one ${ROW_BYTES} B row, WAL, synchronous=FULL)`],
    ['one at a time', `at least ${formatLatencyMs(result.oneAtATimeFloorMs)} p50 with replication factor 2 and durability full (2 round trips + 1 commit)`],
    ['replicated write', `${formatLatencySummary(result.replicatedWriteMs)} (measured: ${ROW_BYTES} B records one at a time, client → primary → secondary, a SQLite commit on each)`],
    ['replicated cpu', `client ${replicated.client.toFixed(1)} µs, primary ${replicated.primary.toFixed(1)} µs, secondary ${replicated.secondary.toFixed(1)} µs per record`],
    ['load average', `${result.loadAverage.before.toFixed(2)} → ${result.loadAverage.after.toFixed(2)} (${result.loadAverage.cpus} CPUs)`],
  ]);
}
