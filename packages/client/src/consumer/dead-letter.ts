/**
 * Dead letters for pull consumers: `subscribe(handler, { maxAttempts, deadLetterTopic })`
 * runs the handler up to `maxAttempts` times per record (backing off between attempts with the
 * client's retry policy); a record that still fails is produced to `deadLetterTopic` with the
 * same headers a push subscription's dead letters carry (source topic/partition/offset,
 * attempts, error, group), and the consumer moves on. Without a dead-letter topic the last
 * error ends the subscription as before (the record is delivered again).
 */
import { TesseraError, deadLetterHeaders, retry, type RetryOptions } from '@tessera/protocol';
import type { Producer } from '../producer/producer.js';
import type { ConsumedRecord } from '../records.js';
import { checkedInteger } from './positions.js';
import type { RecordHandler } from './runner.js';

export interface SubscribeOptions {
  /** Handler attempts per record (default 1). */
  maxAttempts?: number;
  /** Where a record goes once its attempts are used up; the consumer then moves on. */
  deadLetterTopic?: string;
}

export interface DeadLetterContext {
  group: string;
  retry: RetryOptions;
  signal: AbortSignal;
  /** The producer for dead letters, made on first use. */
  producer: () => Producer;
}

/** The handler with retries and dead letters, or `handler` itself when no option asks for them. */
export function withDeadLetters(handler: RecordHandler, options: SubscribeOptions, context: DeadLetterContext): RecordHandler {
  const maxAttempts = checkedInteger('maxAttempts', options.maxAttempts ?? 1, 1, 1_000);
  const target = options.deadLetterTopic;
  if (target !== undefined && (typeof target !== 'string' || target.length === 0)) {
    throw new TesseraError('INVALID_REQUEST', 'deadLetterTopic must be a topic name');
  }
  if (maxAttempts === 1 && target === undefined) return handler;
  return async (record: ConsumedRecord) => {
    let attempts = 0;
    try {
      await retry(
        async () => {
          attempts++;
          await handler(record);
        },
        { ...context.retry, retries: maxAttempts - 1, shouldRetry: () => !context.signal.aborted, signal: context.signal },
      );
    } catch (error) {
      if (target === undefined || context.signal.aborted) throw error;
      await context.producer().send({
        topic: target,
        key: record.key,
        value: record.value ?? Buffer.alloc(0),
        timestamp: record.timestamp,
        headers: {
          ...record.headers,
          ...deadLetterHeaders({
            topic: record.topic,
            partition: record.partition,
            offset: record.offset,
            attempts,
            error: String((error as Error)?.message ?? error),
            group: context.group,
          }),
        },
      });
    }
  };
}
