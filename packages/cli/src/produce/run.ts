/**
 * `tessera produce`: stdin lines → records through the client's batching Producer.
 * Reading is paced by acknowledgements (at most `maxInFlight` records sent but not
 * yet acknowledged), so a large input streams through in bounded memory. The run
 * succeeds only when every line read was acknowledged.
 */
import type { Producer } from '@tessera/client';
import { CliError, describeError } from '../errors.js';
import { formatCount, formatRate, formatSeconds, plural } from '../output/format.js';
import { Progress } from '../output/progress.js';
import { requireTopic } from '../preflight.js';
import type { Runtime } from '../runtime.js';
import { type LineOptions, lineToRecord, readLines } from './lines.js';

export interface ProduceOptions extends LineOptions {
  lingerMs?: number;
  batchSize?: number;
  /** Records sent and not yet acknowledged, at most. */
  maxInFlight?: number;
}

export interface ProduceSummary {
  read: number;
  acknowledged: number;
  failed: number;
  elapsedMs: number;
}

export async function runProduce(runtime: Runtime, topic: string, options: ProduceOptions): Promise<ProduceSummary> {
  runtime.errorContext.topic = topic;
  await requireTopic(runtime, topic);
  const maxInFlight = options.maxInFlight ?? 10_000;
  const producer: Producer = runtime.client().producer({
    lingerMs: options.lingerMs,
    maxBatchRecords: options.batchSize,
    maxBufferedRecords: maxInFlight,
  });
  const stdin = runtime.io.stdin;
  if (stdin.isTTY) runtime.err('reading records from stdin, one per line (Ctrl-D ends the input)');

  const startedMs = performance.now();
  let read = 0;
  let acknowledged = 0;
  let failed = 0;
  let firstError: unknown;
  let inFlight = 0;
  let slotFreed: (() => void) | undefined;
  let interrupted = false;

  const progress = new Progress({
    stream: runtime.io.stderr,
    render: () => {
      const seconds = (performance.now() - startedMs) / 1000;
      return `produced ${formatCount(acknowledged)} of ${formatCount(read)} records (${formatRate(acknowledged / seconds)} records/s)`;
    },
  });
  // Ctrl-C: stop reading, wait for what was sent, report; the exit code says it was cut short.
  const onInterrupt = () => {
    interrupted = true;
    stdin.destroy();
    slotFreed?.();
  };
  process.once('SIGINT', onInterrupt);
  process.once('SIGTERM', onInterrupt);

  try {
    try {
      for await (const line of readLines(stdin)) {
        if (firstError !== undefined || interrupted) break;
        while (inFlight >= maxInFlight && firstError === undefined && !interrupted) {
          await new Promise<void>((resolve) => (slotFreed = resolve));
        }
        if (firstError !== undefined || interrupted) break;
        read++;
        inFlight++;
        const settle = () => {
          inFlight--;
          const wake = slotFreed;
          slotFreed = undefined;
          wake?.();
        };
        let sent: Promise<unknown>;
        try {
          let record;
          try {
            record = lineToRecord(line, options);
          } catch (error) {
            throw new CliError(`line ${read}: ${(error as Error).message}`, { cause: error });
          }
          sent = producer.send({ topic, ...record });
        } catch (error) {
          sent = Promise.reject(error);
        }
        sent.then(
          () => {
            acknowledged++;
            settle();
          },
          (error: unknown) => {
            failed++;
            firstError ??= error;
            settle();
          },
        );
      }
    } catch (error) {
      // A destroyed stdin after Ctrl-C ends the loop with an error; anything else is real.
      if (!interrupted) throw error;
    }
    try {
      await producer.flush();
    } catch (error) {
      firstError ??= error;
    }
    while (inFlight > 0) await new Promise<void>((resolve) => (slotFreed = resolve));
  } finally {
    progress.stop();
    process.off('SIGINT', onInterrupt);
    process.off('SIGTERM', onInterrupt);
    await producer.close().catch(() => undefined);
  }

  const elapsedMs = performance.now() - startedMs;
  const summary = { read, acknowledged, failed, elapsedMs };
  if (firstError !== undefined || failed > 0) {
    const reason = describeError(firstError, runtime.errorContext);
    throw new CliError(`${reason} (${plural(acknowledged, 'record')} acknowledged, ${formatCount(failed)} failed; stopped reading input)`, {
      cause: firstError,
    });
  }
  runtime.err(
    `produced ${plural(acknowledged, 'record')} to "${topic}" in ${formatSeconds(elapsedMs)} (${formatRate(acknowledged / (elapsedMs / 1000))} records/s)`,
  );
  if (interrupted) throw new CliError('interrupted: stopped reading input (every record read was acknowledged)', { exitCode: 130 });
  return summary;
}
