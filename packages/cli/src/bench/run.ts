/**
 * `tessera bench produce|e2e`: measurements, not tests.
 *  - produce: N records of SIZE bytes through the batching Producer with at most C
 *    records in flight (as C concurrent senders each awaiting its acknowledgement would);
 *    reports records/s, MB/s and ack latency percentiles.
 *  - e2e: the same sending (optionally paced with --rate) while a consumer group member
 *    of this process reads the topic from its end; each record carries its send time in a
 *    header, so produce→delivery latency is measured on one clock.
 */
import { randomUUID } from 'node:crypto';
import { isTesseraError } from '@tessera/protocol';
import type { Producer } from '@tessera/client';
import { CliError } from '../errors.js';
import { formatCount, formatLatencyMs, formatMegabytesPerSecond, formatRate, formatSeconds } from '../output/format.js';
import { Progress } from '../output/progress.js';
import { renderFields } from '../output/table.js';
import { jsonLine } from '../output/write.js';
import type { Runtime } from '../runtime.js';
import { LatencyHistogram } from './histogram.js';

export interface BenchOptions {
  topic: string;
  messages: number;
  size: number;
  concurrency: number;
  batchSize?: number;
  lingerMs?: number;
  /** Records per second in total; unpaced when absent. */
  rate?: number;
  partitions: number;
  replicationFactor: number;
  json?: boolean;
}

export interface BenchResult {
  mode: 'produce' | 'e2e';
  topic: string;
  messages: number;
  sizeBytes: number;
  concurrency: number;
  seconds: number;
  messagesPerSecond: number;
  megabytesPerSecond: number;
  ackLatencyMs: { p50: number; p99: number; max: number };
  e2eLatencyMs?: { p50: number; p99: number; max: number };
  failed: number;
  delivered?: number;
}

const RUN_HEADER = 'bench-run';
const SENT_HEADER = 'bench-sent-ms';
/** e2e: how long to wait for the last records after the last acknowledgement. */
const E2E_DRAIN_MS = 10_000;
/** e2e: how long the consumer may take to join and hold every partition. */
const E2E_ASSIGN_TIMEOUT_MS = 30_000;

export async function ensureTopic(runtime: Runtime, options: BenchOptions): Promise<void> {
  runtime.errorContext.topic = options.topic;
  const admin = runtime.client().admin;
  try {
    await admin.describeTopic(options.topic);
    return;
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
}

export async function runBench(runtime: Runtime, mode: 'produce' | 'e2e', options: BenchOptions): Promise<BenchResult> {
  await ensureTopic(runtime, options);
  const client = runtime.client();
  const producer = client.producer({ lingerMs: options.lingerMs, maxBatchRecords: options.batchSize });
  const runId = randomUUID();
  const value = 'x'.repeat(options.size);
  const ack = new LatencyHistogram();
  const e2e = new LatencyHistogram();
  let acknowledged = 0;
  let failed = 0;
  let delivered = 0;
  let firstError: unknown;
  // Reset once the e2e consumer is ready, so joining the group is not part of the measurement.
  let startedMs = performance.now();

  const progress = new Progress({
    stream: runtime.io.stderr,
    render: () => {
      const seconds = (performance.now() - startedMs) / 1000;
      const e2eText = mode === 'e2e' ? `, delivered ${formatCount(delivered)}, e2e p99 ${formatLatencyMs(e2e.percentileMs(0.99))}` : '';
      return `sent ${formatCount(acknowledged)}/${formatCount(options.messages)} (${formatRate(acknowledged / seconds)} msgs/s, ack p99 ${formatLatencyMs(ack.percentileMs(0.99))}${e2eText})`;
    },
  });

  let consumerDone: Promise<void> = Promise.resolve();
  let stopConsumer = () => {};
  if (mode === 'e2e') {
    // A fresh group starting at the end of the log: it must hold every partition (and have
    // found its start offsets, which the poll that applies an assignment does) before the
    // first record is sent, or that record would be before its start and never delivered.
    const consumer = client.consumer({ group: `bench-${runId}`, topic: options.topic, fromBeginning: false, waitMs: 100 });
    const partitionCount = (await client.admin.describeTopic(options.topic)).partitions.length;
    const assignedBy = Date.now() + E2E_ASSIGN_TIMEOUT_MS;
    while (consumer.assignment().length < partitionCount) {
      if (Date.now() > assignedBy) {
        await consumer.close().catch(() => undefined);
        throw new CliError(`the bench consumer did not get all ${partitionCount} partitions within ${E2E_ASSIGN_TIMEOUT_MS} ms`);
      }
      await consumer.poll({ maxRecords: 1, waitMs: 100 });
    }
    let stop = false;
    stopConsumer = () => (stop = true);
    consumerDone = (async () => {
      try {
        while (!stop) {
          const records = await consumer.poll({ maxRecords: 10_000, waitMs: 500 });
          const now = performance.timeOrigin + performance.now();
          for (const record of records) {
            if (record.headers[RUN_HEADER]?.toString() !== runId) continue;
            delivered++;
            e2e.recordMs(now - Number(record.headers[SENT_HEADER]?.toString()));
          }
          if (records.length > 0) await consumer.commit(records);
        }
      } finally {
        await consumer.close().catch(() => undefined);
      }
    })();
  }

  startedMs = performance.now();

  /**
   * Keeps up to `concurrency` records in flight (sent, not yet acknowledged); with a rate,
   * record i leaves at start + i/rate (open loop: a slow acknowledgement does not delay
   * the next send, only a full window does).
   */
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
    for (let index = 0; index < options.messages && firstError === undefined; index++) {
      while (inFlight >= options.concurrency) await new Promise<void>((resolve) => (slotFreed = resolve));
      if (intervalMs > 0) {
        const waitMs = startedMs + index * intervalMs - performance.now();
        if (waitMs > 1) await new Promise((resolve) => setTimeout(resolve, waitMs));
      }
      const sentAtMs = performance.now();
      const headers = mode === 'e2e' ? { [RUN_HEADER]: runId, [SENT_HEADER]: String(performance.timeOrigin + sentAtMs) } : undefined;
      inFlight++;
      producerRef.send({ topic: options.topic, key: String(index), value, headers }).then(
        () => {
          ack.recordMs(performance.now() - sentAtMs);
          acknowledged++;
          release();
        },
        (error: unknown) => {
          failed++;
          firstError ??= error;
          release();
        },
      );
    }
    while (inFlight > 0) await new Promise<void>((resolve) => (slotFreed = resolve));
  };

  try {
    await sendAll(producer);
    await producer.flush().catch((error: unknown) => (firstError ??= error));
    const producedMs = performance.now();
    if (mode === 'e2e') {
      // Wait for the consumer to see every acknowledged record, or give up after a while.
      while (delivered < acknowledged && performance.now() - producedMs < E2E_DRAIN_MS) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      stopConsumer();
      await consumerDone;
    }
  } finally {
    progress.stop();
    stopConsumer();
    await producer.close().catch(() => undefined);
  }
  if (firstError !== undefined && acknowledged === 0) throw firstError;
  const seconds = (performance.now() - startedMs) / 1000;
  const summary = (h: LatencyHistogram) => ({ p50: h.percentileMs(0.5), p99: h.percentileMs(0.99), max: h.maxMs });
  const result: BenchResult = {
    mode,
    topic: options.topic,
    messages: acknowledged,
    sizeBytes: options.size,
    concurrency: options.concurrency,
    seconds,
    messagesPerSecond: acknowledged / seconds,
    megabytesPerSecond: (acknowledged * options.size) / seconds / (1024 * 1024),
    ackLatencyMs: summary(ack),
    failed,
  };
  if (mode === 'e2e') {
    result.e2eLatencyMs = summary(e2e);
    result.delivered = delivered;
  }
  if (options.json) runtime.out(jsonLine(result));
  else runtime.out(renderBenchResult(result));
  if (failed > 0) throw new CliError(`${formatCount(failed)} records failed`, { cause: firstError });
  if (mode === 'e2e' && delivered < acknowledged) {
    throw new CliError(`${formatCount(acknowledged - delivered)} acknowledged records were not delivered within ${E2E_DRAIN_MS} ms`);
  }
  return result;
}

export function renderBenchResult(result: BenchResult): string {
  const fields: Array<[string, unknown]> = [
    ['mode', result.mode],
    ['topic', result.topic],
    ['messages', `${formatCount(result.messages)} × ${formatCount(result.sizeBytes)} B, concurrency ${result.concurrency}`],
    ['time', formatSeconds(result.seconds * 1000)],
    ['throughput', `${formatRate(result.messagesPerSecond)} msgs/s, ${formatMegabytesPerSecond(result.megabytesPerSecond * 1024 * 1024)}`],
    [
      'ack latency',
      `p50 ${formatLatencyMs(result.ackLatencyMs.p50)}, p99 ${formatLatencyMs(result.ackLatencyMs.p99)}, max ${formatLatencyMs(result.ackLatencyMs.max)}`,
    ],
  ];
  if (result.e2eLatencyMs) {
    fields.push([
      'e2e latency',
      `p50 ${formatLatencyMs(result.e2eLatencyMs.p50)}, p99 ${formatLatencyMs(result.e2eLatencyMs.p99)}, max ${formatLatencyMs(result.e2eLatencyMs.max)}`,
    ]);
    fields.push(['delivered', formatCount(result.delivered ?? 0)]);
  }
  if (result.failed > 0) fields.push(['failed', formatCount(result.failed)]);
  return renderFields(fields);
}
