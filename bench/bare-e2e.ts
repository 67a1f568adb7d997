/**
 * `pnpm bench:bare-e2e`: the least end-to-end latency this machine allows at a given rate, with
 * no Tessera code running. Three "brokers" (child processes) form a ring: each is the primary
 * of one chain and the secondary of the previous broker's. Every broker keeps one SQLite
 * database (WAL, synchronous=FULL) in --dir, as a Tessera broker does. This process produces
 * 100-byte records at --rate, spread over the brokers, one batch in flight per broker (records
 * that arrive meanwhile wait and leave together, as the producer's batches do); a primary sends
 * each batch on to its secondary, commits it as one row while the secondary commits its copy,
 * and once the secondary has answered it acknowledges the batch and delivers it to this
 * process's consumer connection. Each record carries its send time; the report gives the
 * latency from send to delivery and the CPU each process spends per record.
 *
 * What it leaves out on purpose: TLS, HTTP, authentication, validation, a commit thread, the
 * fetch request of a consumer (the primary pushes), the consumer's commits, the coordinator.
 * So `tessera bench e2e` at the same rate can only be slower; the difference is Tessera's own
 * cost. Plain TCP on loopback. A measurement, not a test: run it on a quiet machine.
 */
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { lengthPrefixed, readMessages } from './framed-tcp.js';

const RECORD_BYTES = 100;
const BROKERS = 3;
/** What a connection says first: which kind it is. */
const PRODUCER = 0x50;
const CONSUMER = 0x43;
const REPLICA = 0x52;

const { values } = parseArgs({
  options: {
    serve: { type: 'string' },
    rate: { type: 'string', default: '5000' },
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    runs: { type: 'string', default: '3' },
    dir: { type: 'string', default: '.' },
  },
});

if (values.serve !== undefined) await serve(values.serve);
else await measure();

/**
 * A broker of the ring: commits into `file`, listens on an ephemeral loopback port (sent over
 * IPC), then waits for `{ next }`, the port of the broker it replicates its chain to.
 */
async function serve(file: string): Promise<void> {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE IF NOT EXISTS batches (id INTEGER PRIMARY KEY, data BLOB NOT NULL)');
  const insert = db.prepare('INSERT INTO batches (data) VALUES (?)');
  let secondary: net.Socket | undefined;
  const awaitingSecondary: Array<() => void> = [];
  let consumer: net.Socket | undefined;
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    socket.once('data', (first: Buffer) => {
      const kind = first[0];
      if (kind === CONSUMER) {
        consumer = socket;
        return;
      }
      readMessages(socket, (batch) => {
        if (kind === REPLICA) {
          insert.run(batch);
          socket.write(lengthPrefixed(Buffer.alloc(0)));
          return;
        }
        // The primary: send on first, so the secondary commits while this one does.
        secondary!.write(lengthPrefixed(batch));
        insert.run(batch);
        awaitingSecondary.push(() => {
          socket.write(lengthPrefixed(Buffer.alloc(0)));
          consumer?.write(lengthPrefixed(batch));
        });
      });
      if (first.length > 1) socket.emit('data', first.subarray(1));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.on('message', (message: { next?: number }) => {
    if (message.next === undefined) {
      process.send!({ cpu: process.cpuUsage() });
      return;
    }
    secondary = net.connect({ host: '127.0.0.1', port: message.next, noDelay: true });
    secondary.write(Buffer.from([REPLICA]));
    readMessages(secondary, () => awaitingSecondary.shift()!());
    secondary.once('connect', () => process.send!({ connected: true }));
  });
  process.on('disconnect', () => {
    db.close();
    process.exit(0);
  });
  process.send!({ port: (server.address() as AddressInfo).port });
}

function nextMessage<T>(child: ChildProcess): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`a broker of the ring exited (code ${code})`));
    child.once('exit', onExit);
    child.once('message', (message) => {
      child.off('exit', onExit);
      resolve(message as T);
    });
  });
}

async function childCpuMicros(child: ChildProcess): Promise<number> {
  const answer = nextMessage<{ cpu: NodeJS.CpuUsage }>(child);
  child.send({});
  const { cpu } = await answer;
  return cpu.user + cpu.system;
}

function positiveNumber(name: string, text: string, integer = true): number {
  const value = Number(text);
  if (!(value > 0) || (integer && !Number.isInteger(value))) throw new Error(`--${name} must be a positive ${integer ? 'integer' : 'number'}`);
  return value;
}

async function measure(): Promise<void> {
  const rate = positiveNumber('rate', values.rate!);
  const seconds = positiveNumber('seconds', values.seconds!, false);
  const warmupSeconds = Number(values.warmup);
  if (!(warmupSeconds >= 0)) throw new Error('--warmup must be a number of seconds, 0 or more');
  const runs = positiveNumber('runs', values.runs!);
  if (!fs.statSync(values.dir!, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`--dir ${values.dir}: no such directory`);
  const dir = fs.mkdtempSync(path.join(path.resolve(values.dir!), '.tessera-bare-e2e-'));
  console.error(`load average ${os.loadavg()[0]!.toFixed(2)} on ${os.cpus().length} CPUs; ${BROKERS} brokers in a ring, databases in ${dir}`);
  const brokers: ChildProcess[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < BROKERS; i++) {
      const child = fork(fileURLToPath(import.meta.url), ['--serve', path.join(dir, `broker-${i + 1}.db`)]);
      brokers.push(child);
      ports.push((await nextMessage<{ port: number }>(child)).port);
    }
    for (let i = 0; i < BROKERS; i++) {
      const connected = nextMessage<{ connected: true }>(brokers[i]!);
      brokers[i]!.send({ next: ports[(i + 1) % BROKERS] });
      await connected;
    }
    for (let run = 1; run <= runs; run++) {
      const result = await oneRun(ports, brokers, rate, seconds, warmupSeconds);
      const p = (q: number) => result.latencies[Math.min(result.latencies.length - 1, Math.floor(q * result.latencies.length))]!.toFixed(2);
      console.log(
        `run ${run}: ${result.latencies.length} records at ${rate}/s: e2e p50 ${p(0.5)} ms, p99 ${p(0.99)} ms, max ${p(1)} ms;` +
          ` CPU per record: client ${result.clientMicros.toFixed(1)} µs, brokers ${result.brokerMicros.map((m) => m.toFixed(1)).join(' / ')} µs`,
      );
    }
  } finally {
    for (const child of brokers) child.disconnect();
    await Promise.all(brokers.map((child) => (child.exitCode === null ? new Promise((resolve) => child.once('exit', resolve)) : undefined)));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

interface Chain {
  producer: net.Socket;
  consumer: net.Socket;
  waiting: Buffer[];
  inFlight: boolean;
}

/** Produces for `warmup + seconds` at `rate`; measures the records sent after the warm-up. */
async function oneRun(ports: number[], brokers: ChildProcess[], rate: number, seconds: number, warmupSeconds: number) {
  const total = Math.round(rate * (warmupSeconds + seconds));
  const measuredFrom = Math.round(rate * warmupSeconds);
  const latencies: number[] = [];
  let sent = 0;
  let delivered = 0;
  let finished: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finished = resolve));
  let brokersBefore: number[] = [];
  let clientBefore = process.cpuUsage();
  const send = (chain: Chain) => {
    if (chain.inFlight || chain.waiting.length === 0) return;
    chain.inFlight = true;
    chain.producer.write(lengthPrefixed(Buffer.concat(chain.waiting)));
    chain.waiting = [];
  };
  const chains: Chain[] = [];
  for (const port of ports) {
    const producer = net.connect({ host: '127.0.0.1', port, noDelay: true });
    const consumer = net.connect({ host: '127.0.0.1', port, noDelay: true });
    await Promise.all([producer, consumer].map((socket) => new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject))));
    producer.write(Buffer.from([PRODUCER]));
    consumer.write(Buffer.from([CONSUMER]));
    const chain: Chain = { producer, consumer, waiting: [], inFlight: false };
    readMessages(producer, () => {
      chain.inFlight = false;
      send(chain);
    });
    readMessages(consumer, (batch) => {
      const now = process.hrtime.bigint();
      for (let at = 0; at < batch.length; at += RECORD_BYTES) {
        // The record's sequence number and send time, as the producer wrote them.
        if (batch.readUInt32BE(at + 8) >= measuredFrom) latencies.push(Number(now - batch.readBigUInt64BE(at)) / 1e6);
        if (++delivered === total) finished();
      }
    });
    chains.push(chain);
  }
  const startedAt = process.hrtime.bigint();
  const tick = setInterval(() => {
    const due = Math.min(total, Math.floor((Number(process.hrtime.bigint() - startedAt) / 1e9) * rate));
    for (; sent < due; sent++) {
      if (sent === measuredFrom) {
        clientBefore = process.cpuUsage();
        void Promise.all(brokers.map(childCpuMicros)).then((cpu) => (brokersBefore = cpu));
      }
      const record = Buffer.alloc(RECORD_BYTES, 'x');
      record.writeBigUInt64BE(process.hrtime.bigint(), 0);
      record.writeUInt32BE(sent, 8);
      chains[sent % chains.length]!.waiting.push(record);
    }
    for (const chain of chains) send(chain);
    if (sent === total) clearInterval(tick);
  }, 1);
  await done;
  const client = process.cpuUsage(clientBefore);
  const brokersAfter = await Promise.all(brokers.map(childCpuMicros));
  for (const chain of chains) {
    chain.producer.destroy();
    chain.consumer.destroy();
  }
  const measured = total - measuredFrom;
  latencies.sort((a, b) => a - b);
  return {
    latencies,
    clientMicros: (client.user + client.system) / measured,
    brokerMicros: brokersAfter.map((after, i) => (after - (brokersBefore[i] ?? 0)) / measured),
  };
}
