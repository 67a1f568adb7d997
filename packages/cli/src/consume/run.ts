/**
 * `tessera consume`: prints every record as a JSON line. Two ways to read:
 * - as a member of a consumer group (`--group`), committing what it printed: a batch is
 *   committed only after stdout took it, so a reader that goes away (`| head`) loses nothing it
 *   did not see, the group gets those records again next time (at-least-once);
 * - without a group (`--partition`, `--offset`): from a position, committing nothing, following
 *   or stopping at the end (`--exit-at-end`: the high watermark as it was when reading started,
 *   so a topic that keeps growing still ends the run).
 */
import type { ConsumedRecord, Consumer, Reader } from '@tessera/client';
import { CliError } from '../errors.js';
import { plural } from '../output/format.js';
import { OutputClosedError, writeOut } from '../output/write.js';
import { requireTopic } from '../preflight.js';
import type { Runtime } from '../runtime.js';
import { recordLine } from './format.js';
import { startOffset, type OffsetSpec } from './position.js';

export interface ConsumeOptions {
  group: string;
  fromBeginning?: boolean;
  maxMessages?: number;
  idleTimeoutMs?: number;
  /** Longest single long-poll, so Ctrl-C and the idle timeout are noticed quickly. */
  pollWaitMs?: number;
  /** Records per poll, at most. */
  pollMaxRecords?: number;
}

export interface ReadOptions {
  /** One partition; every partition of the topic when absent. */
  partition?: number;
  offset: OffsetSpec;
  exitAtEnd?: boolean;
  maxMessages?: number;
  idleTimeoutMs?: number;
  pollWaitMs?: number;
  pollMaxRecords?: number;
}

/** How much one poll asks for: the `poll*` options, or 5000 records and 1 s. */
function pollBounds(options: { pollWaitMs?: number; pollMaxRecords?: number }): { maxRecords: number; waitMs: number } {
  return { maxRecords: options.pollMaxRecords ?? 5_000, waitMs: options.pollWaitMs ?? 1_000 };
}

/** What the print loop reads from: a group member or a reader. */
interface RecordSource {
  poll(options: { maxRecords: number; waitMs: number }): Promise<ConsumedRecord[]>;
  /** Reading has started (a group member holds partitions): the idle clock runs from then on. */
  started(): boolean;
  /** The records of a poll to print (a reader at its end drops what came after). */
  keep(records: ConsumedRecord[]): ConsumedRecord[];
  /** Every partition reached its end (`--exit-at-end`). */
  atEnd(): boolean;
  /** After the records were printed (a group member commits them). */
  printed(records: ConsumedRecord[]): Promise<void>;
  /** Before closing: a group member's last commit. */
  settle(): Promise<void>;
  close(): Promise<void>;
}

export async function runConsume(runtime: Runtime, topic: string, options: ConsumeOptions): Promise<number> {
  runtime.errorContext.topic = topic;
  runtime.errorContext.group = options.group;
  await requireTopic(runtime, topic);
  const poll = pollBounds(options);
  const consumer: Consumer = runtime.client().consumer({
    group: options.group,
    topic,
    fromBeginning: options.fromBeginning ?? false,
    ...poll,
    clientId: `tessera-cli-${process.pid}`,
  });
  // One commit in flight at a time, overlapping the next poll: commits stay in order and a
  // failed one still ends the run (at the next batch or at the end).
  let pendingCommit: Promise<void> = Promise.resolve();
  const source: RecordSource = {
    poll: (o) => consumer.poll(o),
    started: () => consumer.assignment().length > 0,
    keep: (records) => records,
    atEnd: () => false,
    printed: async (records) => {
      await pendingCommit;
      pendingCommit = consumer.commit(records);
      pendingCommit.catch(() => undefined);
    },
    settle: () => pendingCommit,
    close: () =>
      consumer.close().catch((error: unknown) => {
        runtime.err(`tessera: could not leave group "${options.group}" cleanly: ${(error as Error).message}`);
      }),
  };
  const { printed, closed, interruptedBy } = await printRecords(runtime, source, options, poll);
  if (!closed) runtime.err(`consumed ${plural(printed, 'record')} from "${topic}" as group "${options.group}"`);
  // Like every long-running command stopped by Ctrl-C: exit 130, after a clean stop.
  if (interruptedBy !== undefined) {
    throw new CliError(`interrupted (${interruptedBy}): left group "${options.group}" after committing every printed record`, { exitCode: 130 });
  }
  return printed;
}

/** `tessera consume --partition/--offset`: reads without a group from a position; commits nothing. */
export async function runRead(runtime: Runtime, topic: string, options: ReadOptions): Promise<number> {
  runtime.errorContext.topic = topic;
  await requireTopic(runtime, topic);
  const { admin } = runtime.client();
  const only = options.partition === undefined ? undefined : [options.partition];
  const ends = await admin.listOffsets(topic, 'latest', only);
  const atTime = new Map<number, number>();
  if (options.offset.kind === 'time') {
    for (const found of await admin.listOffsets(topic, { timestamp: options.offset.timestampMs }, only)) atTime.set(found.partition, found.offset);
  }
  const positions = ends.map((p) => ({
    partition: p.partition,
    offset: startOffset(options.offset, { logStartOffset: p.logStartOffset, highWatermark: p.highWatermark, atTime: atTime.get(p.partition) }),
  }));
  /** The HW when reading started, per partition: where `--exit-at-end` stops. */
  const endOf = new Map(ends.map((p) => [p.partition, p.highWatermark]));
  const poll = pollBounds(options);
  const reader: Reader = runtime.client().reader({ topic, positions, ...poll });
  const exitAtEnd = options.exitAtEnd === true;
  const source: RecordSource = {
    poll: (o) => reader.poll(o),
    started: () => true,
    keep: (records) => (exitAtEnd ? records.filter((r) => r.offset < endOf.get(r.partition)!) : records),
    atEnd: () => exitAtEnd && positions.every(({ partition }) => reader.position(partition) >= endOf.get(partition)!),
    printed: async () => undefined,
    settle: async () => undefined,
    close: () => reader.close(),
  };
  const { printed, closed, interruptedBy } = await printRecords(runtime, source, options, poll);
  const from = options.partition === undefined ? `"${topic}"` : `"${topic}" partition ${options.partition}`;
  if (!closed) runtime.err(`read ${plural(printed, 'record')} from ${from}${exitAtEnd ? ' up to the end' : ''}`);
  if (interruptedBy !== undefined) throw new CliError(`interrupted (${interruptedBy})`, { exitCode: 130 });
  return printed;
}

/**
 * The print loop: polls, prints JSON lines, until `--max-messages`, the idle timeout, the
 * source's end, a closed stdout or Ctrl-C (a second Ctrl-C exits at once).
 */
async function printRecords(
  runtime: Runtime,
  source: RecordSource,
  options: { maxMessages?: number; idleTimeoutMs?: number },
  poll: { maxRecords: number; waitMs: number },
): Promise<{ printed: number; closed: boolean; interruptedBy: NodeJS.Signals | undefined }> {
  let printed = 0;
  let stopping = false;
  let interruptedBy: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping && interruptedBy !== undefined) process.exit(130); // a second Ctrl-C: give up at once
    interruptedBy = signal;
    stopping = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let lastNewRecordMs = Date.now();
  let started = false;
  let closed = false;
  try {
    while (!stopping && !source.atEnd()) {
      const remaining = options.maxMessages === undefined ? Infinity : options.maxMessages - printed;
      if (remaining <= 0) break;
      let waitMs = poll.waitMs;
      if (options.idleTimeoutMs !== undefined) {
        const idleLeftMs = lastNewRecordMs + options.idleTimeoutMs - Date.now();
        if (idleLeftMs <= 0) break;
        waitMs = Math.min(waitMs, idleLeftMs);
      }
      const records = source.keep(await source.poll({ maxRecords: Math.min(poll.maxRecords, remaining), waitMs }));
      // The idle clock starts when this member first holds partitions: joining the group
      // (waiting for a previous owner to let go) is not "nothing new to read".
      if (!started && source.started()) {
        started = true;
        if (records.length === 0) lastNewRecordMs = Date.now();
      }
      if (records.length === 0) continue;
      const batch: ConsumedRecord[] = records.length > remaining ? records.slice(0, remaining) : records;
      try {
        await writeOut(runtime.io.stdout, batch.map(recordLine).join(''));
      } catch (error) {
        if (error instanceof OutputClosedError) {
          closed = true;
          break;
        }
        throw error;
      }
      printed += batch.length;
      lastNewRecordMs = Date.now();
      await source.printed(batch);
    }
    await source.settle();
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    // On an error path the last commit may still be running: let it finish before leaving.
    await source.settle().catch(() => undefined);
    await source.close();
  }
  return { printed, closed, interruptedBy };
}
