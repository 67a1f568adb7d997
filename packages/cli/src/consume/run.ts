/**
 * `tessera consume`: a group member that prints every record as a JSON line and
 * commits what it printed. A batch is committed only after stdout took it, so a
 * reader that goes away (`| head`) loses nothing it did not see: the group gets those
 * records again next time (at-least-once).
 */
import type { ConsumedRecord, Consumer } from '@tessera/client';
import { CliError } from '../errors.js';
import { plural } from '../output/format.js';
import { OutputClosedError, writeOut } from '../output/write.js';
import { requireTopic } from '../preflight.js';
import type { Runtime } from '../runtime.js';
import { recordLine } from './format.js';

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

export async function runConsume(runtime: Runtime, topic: string, options: ConsumeOptions): Promise<number> {
  runtime.errorContext.topic = topic;
  runtime.errorContext.group = options.group;
  await requireTopic(runtime, topic);
  const pollWaitMs = options.pollWaitMs ?? 1_000;
  const pollMaxRecords = options.pollMaxRecords ?? 5_000;
  const consumer: Consumer = runtime.client().consumer({
    group: options.group,
    topic,
    fromBeginning: options.fromBeginning ?? false,
    maxRecords: pollMaxRecords,
    waitMs: pollWaitMs,
    clientId: `tessera-cli-${process.pid}`,
  });

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

  let pendingCommit: Promise<void> = Promise.resolve();
  let lastNewRecordMs = Date.now();
  let assigned = false;
  let closed = false;
  try {
    while (!stopping) {
      const remaining = options.maxMessages === undefined ? Infinity : options.maxMessages - printed;
      if (remaining <= 0) break;
      let waitMs = pollWaitMs;
      if (options.idleTimeoutMs !== undefined) {
        const idleLeftMs = lastNewRecordMs + options.idleTimeoutMs - Date.now();
        if (idleLeftMs <= 0) break;
        waitMs = Math.min(waitMs, idleLeftMs);
      }
      const records = await consumer.poll({ maxRecords: Math.min(pollMaxRecords, remaining), waitMs });
      // The idle clock starts when this member first holds partitions: joining the group
      // (waiting for a previous owner to let go) is not "nothing new to read".
      if (!assigned && consumer.assignment().length > 0) {
        assigned = true;
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
      // One commit in flight at a time, overlapping the next poll: commits stay in order
      // and a failed one still ends the run (at the next batch or below).
      await pendingCommit;
      pendingCommit = consumer.commit(batch);
      pendingCommit.catch(() => undefined);
    }
    await pendingCommit;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    // On an error path the last commit may still be running: let it finish before leaving.
    await pendingCommit.catch(() => undefined);
    await consumer.close().catch((error: unknown) => {
      runtime.err(`tessera: could not leave group "${options.group}" cleanly: ${(error as Error).message}`);
    });
  }
  if (!closed) runtime.err(`consumed ${plural(printed, 'record')} from "${topic}" as group "${options.group}"`);
  // Like every long-running command stopped by Ctrl-C: exit 130, after a clean stop.
  if (interruptedBy !== undefined) {
    throw new CliError(`interrupted (${interruptedBy}): left group "${options.group}" after committing every printed record`, { exitCode: 130 });
  }
  return printed;
}
