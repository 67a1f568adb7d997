/**
 * `tessera bench produce|latency|e2e|consume`: measurements, not tests.
 *  - produce: N records of SIZE bytes through the batching Producer with at most
 *    `--max-in-flight` records sent and not yet acknowledged (as that many concurrent
 *    senders awaiting their acknowledgements would); records/s, MB/s, ack latency.
 *  - latency: one record at a time (`--max-in-flight 1`): ack latency p50/p99.
 *  - e2e: sending at `--rate` records/s while a consumer group member of this process reads
 *    the topic from its end and commits in the background, at most every
 *    `--commit-interval-ms` (by default as often as `subscribe()` does); each record carries
 *    its send time in a header, so produce→delivery latency is measured on one clock.
 *  - consume: stores N records first (not timed), then a new group reads them from the
 *    beginning, committing after every poll; records/s from the first batch.
 * With `--warmup N`, the mode first runs over N records and is not measured (produce and
 * latency send them; e2e sends them with its consumer reading; consume stores them and reads
 * them with a group of its own): the brokers and this process run compiled code, not code
 * still being compiled, when the measured part starts.
 * Every mode also reports the load average before and after, and the CPU time per record
 * of every process (each service's `process_cpu_seconds_total`, and this process).
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { isTesseraError, partitionForKey } from '@tessera/protocol';
import { DEFAULT_COMMIT_INTERVAL_MS, type Producer, type RecordMetadata, type TesseraClient } from '@tessera/client';
import { CliError } from '../errors.js';
import { formatCount, formatLatencyMs, formatMegabytesPerSecond, formatRate, formatSeconds } from '../output/format.js';
import { Progress } from '../output/progress.js';
import { renderFields } from '../output/table.js';
import { jsonLine } from '../output/write.js';
import type { Runtime } from '../runtime.js';
import { LatencyHistogram, formatLatencySummary, type LatencySummary } from './histogram.js';
import { cpuPerRecord, sampleCpu, type CpuUse } from './service-cpu.js';

export type BenchMode = 'produce' | 'latency' | 'e2e' | 'consume';

export interface BenchOptions {
  topic: string;
  messages: number;
  size: number;
  /** Records sent and not yet acknowledged, at most. */
  maxInFlight: number;
  batchSize?: number;
  lingerMs?: number;
  /** The producer's maxInFlightRequests. */
  maxRequestsPerBroker?: number;
  /** Records per second in total; unpaced when absent. */
  rate?: number;
  /** e2e: the least time between two of the consumer's commits (default DEFAULT_COMMIT_INTERVAL_MS). */
  commitIntervalMs?: number;
  partitions: number;
  replicationFactor: number;
  /** Records the mode first runs over without measuring them (default 0; see the module comment). */
  warmup?: number;
  json?: boolean;
}

export interface BenchResult {
  mode: BenchMode;
  topic: string;
  partitions: number;
  messages: number;
  sizeBytes: number;
  maxInFlight: number;
  /** Records the mode ran over before the measured part, not counted in it. */
  warmup: number;
  seconds: number;
  recordsPerSecond: number;
  megabytesPerSecond: number;
  ackLatencyMs?: LatencySummary;
  e2eLatencyMs?: LatencySummary;
  /** e2e: the least time between two of the consumer's commits. */
  commitIntervalMs?: number;
  failed: number;
  delivered?: number;
  /** 1-minute load average when the measured part started (after any warm-up) and when it ended. */
  loadAverage: { before: number; after: number; cpus: number };
  cpu: CpuUse[];
}

const RUN_HEADER = 'bench-run';
const SENT_HEADER = 'bench-sent-ms';
/** e2e: how long to wait for the last records after the last acknowledgement. */
const E2E_DRAIN_MS = 10_000;
/** e2e: how long the consumer may take to join and hold every partition. */
const E2E_ASSIGN_TIMEOUT_MS = 30_000;
/** consume: how long a poll may come back empty before the run gives up. */
const CONSUME_STALL_MS = 10_000;

export async function ensureTopic(runtime: Runtime, options: BenchOptions): Promise<number> {
  runtime.errorContext.topic = options.topic;
  const admin = runtime.client().admin;
  try {
    return (await admin.describeTopic(options.topic)).partitions.length;
  } catch (error) {
    if (!isTesseraError(error, 'TOPIC_NOT_FOUND')) throw error;
  }
  try {
    await admin.createTopic({ name: options.topic, partitions: options.partitions, replicationFactor: options.replicationFactor });
    runtime.err(`created topic "${options.topic}" (${options.partitions} partitions, replication factor ${options.replicationFactor})`);
  } catch (error) {
    // Another bench created it in between: fine.
    if (!isTesseraError(error, 'TOPIC_EXISTS')) throw error;
  }
  return (await admin.describeTopic(options.topic)).partitions.length;
}

/** Runs one mode and prints its report with `out` (stdout unless given). */
export async function runBench(runtime: Runtime, mode: BenchMode, options: BenchOptions, out: (text: string) => void = (text) => runtime.out(text)): Promise<BenchResult> {
  const partitions = await ensureTopic(runtime, options);
  // From here on, the partition count is the topic's (an existing topic keeps its own).
  options = { ...options, partitions };
  const client = runtime.client();
  const maxInFlight = mode === 'latency' ? 1 : options.maxInFlight;
  const warmup = options.warmup ?? 0;
  if (warmup > 0) await warmUp(runtime, client, mode, { ...options, maxInFlight, messages: warmup });
  const loadBefore = os.loadavg()[0]!;
  let measured: Measured;
  let cpuBefore;
  if (mode === 'consume') {
    await sendRecords(runtime, client, mode, { ...options, maxInFlight }, undefined, 'storing');
    cpuBefore = await sampleCpu(client, runtime.tls);
    measured = await consumeAll(runtime, client, options);
  } else {
    cpuBefore = await sampleCpu(client, runtime.tls);
    measured = await sendRecords(runtime, client, mode, { ...options, maxInFlight }, mode === 'e2e' ? randomUUID() : undefined, 'sent');
  }
  const cpuAfter = await sampleCpu(client, runtime.tls);
  const result: BenchResult = {
    mode,
    topic: options.topic,
    partitions,
    messages: measured.records,
    sizeBytes: options.size,
    maxInFlight,
    warmup,
    seconds: measured.seconds,
    recordsPerSecond: measured.records / measured.seconds,
    megabytesPerSecond: (measured.records * options.size) / measured.seconds / (1024 * 1024),
    failed: measured.failed,
    loadAverage: { before: loadBefore, after: os.loadavg()[0]!, cpus: os.cpus().length },
    cpu: cpuPerRecord(cpuBefore, cpuAfter, measured.records),
  };
  if (measured.ack !== undefined) result.ackLatencyMs = measured.ack.summary();
  if (measured.e2e !== undefined) {
    result.e2eLatencyMs = measured.e2e.summary();
    result.delivered = measured.delivered;
    result.commitIntervalMs = options.commitIntervalMs ?? DEFAULT_COMMIT_INTERVAL_MS;
  }
  out(options.json ? jsonLine(result) : renderBenchResult(result));
  if (measured.failed > 0) throw new CliError(`${formatCount(measured.failed)} records failed`, { cause: measured.firstError });
  if (mode === 'e2e' && (measured.delivered ?? 0) < measured.records) {
    throw new CliError(`${formatCount(measured.records - (measured.delivered ?? 0))} acknowledged records were not delivered within ${E2E_DRAIN_MS} ms`);
  }
  if (mode === 'consume' && measured.records < options.messages) {
    throw new CliError(`read ${formatCount(measured.records)} of ${formatCount(options.messages)} records: no new record for ${CONSUME_STALL_MS} ms`);
  }
  return result;
}

/** Runs the mode over `options.messages` records, unmeasured; throws when any of them failed. */
async function warmUp(runtime: Runtime, client: TesseraClient, mode: BenchMode, options: BenchOptions): Promise<void> {
  const sent = await sendRecords(runtime, client, mode, options, mode === 'e2e' ? randomUUID() : undefined, mode === 'consume' ? 'warm-up, storing' : 'warm-up, sent');
  if (sent.failed > 0) throw new CliError(`${formatCount(sent.failed)} warm-up records failed`, { cause: sent.firstError });
  if (mode === 'consume') {
    const read = await consumeAll(runtime, client, options, 'warm-up, read and committed');
    if (read.records < options.messages) throw new CliError(`the warm-up read ${formatCount(read.records)} of ${formatCount(options.messages)} records: no new record for ${CONSUME_STALL_MS} ms`);
  }
}

interface Measured {
  records: number;
  seconds: number;
  failed: number;
  firstError?: unknown;
  ack?: LatencyHistogram;
  e2e?: LatencyHistogram;
  delivered?: number;
}

/**
 * Sends `messages` records with at most `maxInFlight` unacknowledged; with a rate, record i
 * leaves at start + i/rate (open loop: a slow acknowledgement does not delay the next send,
 * only a full window does). With `runId` (e2e), a consumer in this process times deliveries.
 */
async function sendRecords(
  runtime: Runtime,
  client: TesseraClient,
  mode: BenchMode,
  options: BenchOptions,
  runId: string | undefined,
  verb: string,
): Promise<Measured> {
  const producer = client.producer({ lingerMs: options.lingerMs, maxBatchRecords: options.batchSize, maxInFlightRequests: options.maxRequestsPerBroker });
  const value = Buffer.alloc(options.size, 'x');
  const ack = new LatencyHistogram();
  const e2e = new LatencyHistogram();
  let acknowledged = 0;
  let failed = 0;
  let delivered = 0;
  let firstError: unknown;
  const consumer = runId === undefined ? undefined : await startE2eConsumer(client, options.topic, runId, options.commitIntervalMs ?? DEFAULT_COMMIT_INTERVAL_MS, e2e, () => delivered++);
  const startedMs = performance.now();
  const progress = new Progress({
    stream: runtime.io.stderr,
    render: () => {
      const seconds = (performance.now() - startedMs) / 1000;
      const e2eText = runId === undefined ? '' : `, delivered ${formatCount(delivered)}, e2e p99 ${formatLatencyMs(e2e.percentileMs(0.99))}`;
      return `${mode}: ${verb} ${formatCount(acknowledged)}/${formatCount(options.messages)} (${formatRate(acknowledged / seconds)} records/s, ack p99 ${formatLatencyMs(ack.percentileMs(0.99))}${e2eText})`;
    },
  });

  const sendAll = async (producerRef: Producer) => {
    const intervalMs = options.rate === undefined ? 0 : 1000 / options.rate;
    let inFlight = 0;
    let slotFreed: (() => void) | undefined;
    const release = () => {
      inFlight--;
      const wake = slotFreed;
      slotFreed = undefined;
      wake?.();
    };
    // A partition's records are acknowledged in the order they were sent, so each partition's
    // send times wait in a queue of their own and two functions serve every record: the bench
    // keeps no closure per record in flight (with 100,000 in flight, the garbage collector's
    // copying of those was a visible share of this process's CPU).
    const sentAt = Array.from({ length: options.partitions }, () => new TimeQueue());
    const onAcknowledged = (metadata: RecordMetadata) => {
      ack.recordMs(performance.now() - sentAt[metadata.partition]!.shift());
      acknowledged++;
      release();
    };
    // After a failure the run stops sending and fails, so the queues need not stay in step.
    const onFailed = (error: unknown) => {
      failed++;
      firstError ??= error;
      release();
    };
    for (let index = 0; index < options.messages && firstError === undefined; index++) {
      while (inFlight >= options.maxInFlight) await new Promise<void>((resolve) => (slotFreed = resolve));
      if (intervalMs > 0) {
        const waitMs = startedMs + index * intervalMs - performance.now();
        if (waitMs > 1) await new Promise((resolve) => setTimeout(resolve, waitMs));
      }
      const sentAtMs = performance.now();
      const headers = runId === undefined ? undefined : { [RUN_HEADER]: runId, [SENT_HEADER]: String(performance.timeOrigin + sentAtMs) };
      // The partition the producer would choose for the key, chosen here to know its queue.
      const key = String(index);
      const partition = partitionForKey(key, options.partitions);
      sentAt[partition]!.push(sentAtMs);
      inFlight++;
      producerRef.send({ topic: options.topic, key, partition, value, headers }).then(onAcknowledged, onFailed);
    }
    while (inFlight > 0) await new Promise<void>((resolve) => (slotFreed = resolve));
  };

  let producedMs: number | undefined;
  try {
    await sendAll(producer);
    await producer.flush().catch((error: unknown) => (firstError ??= error));
    producedMs = performance.now();
    if (consumer !== undefined) {
      // Wait for the consumer to see every acknowledged record, or give up after a while.
      while (delivered < acknowledged && performance.now() - producedMs < E2E_DRAIN_MS) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  } finally {
    progress.stop();
    await consumer?.stop();
    await producer.close().catch(() => undefined);
  }
  if (firstError !== undefined && acknowledged === 0) throw firstError;
  // Up to the last acknowledgement: the e2e wait for the last deliveries is not sending time.
  const seconds = ((producedMs ?? performance.now()) - startedMs) / 1000;
  return { records: acknowledged, seconds, failed, firstError, ack, ...(runId === undefined ? {} : { e2e, delivered }) };
}

/**
 * A fresh group at the end of the log that must hold every partition (and have found its
 * start offsets, which the poll that applies an assignment does) before the first record is
 * sent, or that record would be before its start and never delivered. It commits in the
 * background, one commit at a time and at most one per `commitIntervalMs` (as `subscribe()`
 * does), so a commit never delays the next poll.
 */
async function startE2eConsumer(client: TesseraClient, topic: string, runId: string, commitIntervalMs: number, e2e: LatencyHistogram, onDelivered: () => void) {
  const consumer = client.consumer({ group: `bench-${runId}`, topic, fromBeginning: false, waitMs: 100 });
  const partitionCount = (await client.admin.describeTopic(topic)).partitions.length;
  const assignedBy = Date.now() + E2E_ASSIGN_TIMEOUT_MS;
  while (consumer.assignment().length < partitionCount) {
    if (Date.now() > assignedBy) {
      await consumer.close().catch(() => undefined);
      throw new CliError(`the bench consumer did not get all ${partitionCount} partitions within ${E2E_ASSIGN_TIMEOUT_MS} ms`);
    }
    await consumer.poll({ maxRecords: 1, waitMs: 100 });
  }
  let stop = false;
  let commit: Promise<void> | null = null;
  let lastCommitMs = Number.NEGATIVE_INFINITY;
  const done = (async () => {
    try {
      while (!stop) {
        const records = await consumer.poll({ maxRecords: 10_000, waitMs: 500 });
        const now = performance.timeOrigin + performance.now();
        for (const record of records) {
          if (record.headers[RUN_HEADER]?.toString() !== runId) continue;
          onDelivered();
          e2e.recordMs(now - Number(record.headers[SENT_HEADER]?.toString()));
        }
        // Commits what was read up to now; what is read meanwhile goes in the next one.
        if (records.length > 0 && commit === null && performance.now() - lastCommitMs >= commitIntervalMs) {
          lastCommitMs = performance.now();
          commit = consumer.commit().finally(() => (commit = null));
          commit.catch(() => undefined);
        }
      }
    } finally {
      await commit?.catch(() => undefined);
      await consumer.close().catch(() => undefined);
    }
  })();
  return {
    stop: async () => {
      stop = true;
      await done;
    },
  };
}

/** Reads `messages` records with a new group from the beginning, committing after every poll. */
async function consumeAll(runtime: Runtime, client: TesseraClient, options: BenchOptions, verb = 'read and committed'): Promise<Measured> {
  const consumer = client.consumer({ group: `bench-consume-${randomUUID()}`, topic: options.topic, fromBeginning: true, maxRecords: 10_000, waitMs: 500 });
  let read = 0;
  let startedMs: number | undefined;
  const progress = new Progress({
    stream: runtime.io.stderr,
    render: () => {
      const seconds = startedMs === undefined ? 0 : (performance.now() - startedMs) / 1000;
      return `consume: ${verb} ${formatCount(read)}/${formatCount(options.messages)} (${formatRate(read / seconds)} records/s)`;
    },
  });
  let lastRecordMs = performance.now();
  try {
    while (read < options.messages && performance.now() - lastRecordMs < CONSUME_STALL_MS) {
      const records = await consumer.poll({ maxRecords: 10_000, waitMs: 500 });
      if (records.length === 0) continue;
      startedMs ??= performance.now();
      lastRecordMs = performance.now();
      read += records.length;
      await consumer.commit(records);
    }
  } finally {
    progress.stop();
    await consumer.close().catch(() => undefined);
  }
  const seconds = startedMs === undefined ? 0 : (performance.now() - startedMs) / 1000;
  return { records: Math.min(read, options.messages), seconds, failed: 0 };
}

export function renderBenchResult(result: BenchResult): string {
  const fields: Array<[string, unknown]> = [
    ['mode', result.mode],
    ['topic', `${result.topic} (${result.partitions} partitions)`],
    ['records', `${formatCount(result.messages)} × ${formatCount(result.sizeBytes)} B, at most ${formatCount(result.maxInFlight)} in flight`],
    ['warm-up', result.warmup === 0 ? 'none' : `${formatCount(result.warmup)} records before, not measured`],
    ['time', formatSeconds(result.seconds * 1000)],
    ['throughput', `${formatRate(result.recordsPerSecond)} records/s, ${formatMegabytesPerSecond(result.megabytesPerSecond * 1024 * 1024)}`],
  ];
  if (result.ackLatencyMs) fields.push(['ack latency', formatLatencySummary(result.ackLatencyMs)]);
  if (result.e2eLatencyMs) {
    fields.push(['e2e latency', formatLatencySummary(result.e2eLatencyMs)]);
    const commits = result.commitIntervalMs === 0 ? 'after every poll' : `at most every ${formatCount(result.commitIntervalMs ?? DEFAULT_COMMIT_INTERVAL_MS)} ms`;
    fields.push(['delivered', `${formatCount(result.delivered ?? 0)} (the consumer commits ${commits})`]);
  }
  if (result.failed > 0) fields.push(['failed', formatCount(result.failed)]);
  fields.push(['load average', `${result.loadAverage.before.toFixed(2)} → ${result.loadAverage.after.toFixed(2)} (${result.loadAverage.cpus} CPUs)`]);
  for (const use of result.cpu) {
    fields.push([
      `cpu ${use.process}`,
      use.cpuSeconds === null ? 'not readable' : `${use.cpuSeconds.toFixed(2)} s, ${use.microsPerRecord === null ? '-' : use.microsPerRecord.toFixed(2)} µs/record`,
    ]);
  }
  return renderFields(fields);
}

/** A first-in, first-out queue of times (ms), kept in one array of numbers. */
class TimeQueue {
  private times: number[] = [];
  private head = 0;

  push(time: number): void {
    this.times.push(time);
  }

  /** The oldest time (NaN when empty), removed. */
  shift(): number {
    if (this.head >= this.times.length) return NaN;
    const time = this.times[this.head++]!;
    if (this.head > 1024 && this.head * 2 > this.times.length) {
      this.times = this.times.slice(this.head);
      this.head = 0;
    }
    return time;
  }
}
