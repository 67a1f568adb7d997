/**
 * Sends a record that used up its delivery attempts to its subscription's dead-letter topic:
 * the record's own key, value and headers plus headers saying why (`DEAD_LETTER_HEADERS`),
 * produced as a RecordBatch to the dead-letter partition's primary (the key's partition, like
 * every producer) with `POST /produce`, signed as this broker. It is retried until the primary
 * acknowledges it: delivery moves on only once the record is safely in the dead-letter topic.
 * The produce names the partition's epoch in this broker's map, which it was routed by, so a
 * primary that has not applied that map yet (the dead-letter topic deleted and made again, a
 * failover it missed) refuses it (UNKNOWN_EPOCH, tried again) instead of storing the record in a
 * replica it is about to drop.
 */
import {
  BROKER_ROUTES,
  EpochRefusals,
  TesseraError,
  deadLetterHeaders,
  encodeFrame,
  encodeRecordBatch,
  frameWithoutEpochs,
  partitionForKey,
  retry,
  type DataHttpClient,
  type DecodedRecord,
  type ErrorBody,
} from '@tessera/protocol';
import type { CoordinatorLink } from '../cluster/index.js';
import type { HeldSubscription } from './runtime.js';

export interface DeadLetterReason {
  attempts: number;
  lastStatus: number | null;
  error: string;
}

const RETRY = { initialMs: 200, maxMs: 10_000, multiplier: 2, jitter: 0.5 };

/** What the writer needs of the coordinator link: the map it routes by, and a refresh of it. */
export type DeadLetterLink = Pick<CoordinatorLink, 'metadata' | 'brokerUrl' | 'requestMetadataRefresh'>;

export class DeadLetterWriter {
  /** Brokers of an earlier release, which refuse partition epochs. */
  private readonly epochs = new EpochRefusals();

  constructor(
    private readonly link: DeadLetterLink,
    private readonly client: DataHttpClient,
  ) {}

  /**
   * Resolves once the dead-letter partition's primary acknowledged the record; `onError` sees each
   * failed try. `signals.wait` ends the retrying (between tries); `signals.request` also cuts short
   * a produce in flight, which may then be stored or not.
   */
  async write(
    subscription: HeldSubscription,
    topic: string,
    partition: number,
    record: DecodedRecord,
    reason: DeadLetterReason,
    signals: { request: AbortSignal; wait: AbortSignal },
    onError: (error: unknown) => void,
  ): Promise<void> {
    const target = subscription.deadLetterTopic;
    if (target === null) throw new Error(`subscription ${subscription.name} has no dead-letter topic`);
    const why = deadLetterHeaders({
      topic,
      partition,
      offset: record.offset,
      attempts: reason.attempts,
      lastStatus: reason.lastStatus,
      error: reason.error,
      subscription: subscription.name,
    });
    const batch = encodeRecordBatch([
      {
        key: record.key,
        value: record.value,
        timestamp: record.timestamp,
        headers: [...record.headers, ...Object.entries(why).map(([key, value]) => ({ key, value: Buffer.from(value, 'utf8') }))],
      },
    ]);
    await retry(
      async () => {
        // Looked up on every attempt: the dead-letter partition may have moved meanwhile.
        const partitions = this.link.metadata?.topics.find((t) => t.name === target)?.partitions;
        if (!partitions || partitions.length === 0) throw new TesseraError('TOPIC_NOT_FOUND', `dead-letter topic ${target} does not exist`);
        const to = record.key === null ? partition % partitions.length : partitionForKey(record.key, partitions.length);
        const assignment = partitions[to];
        const primary = assignment?.primary ?? null;
        const url = primary === null ? undefined : this.link.brokerUrl(primary);
        if (assignment === undefined || url === undefined) throw new TesseraError('PARTITION_OFFLINE', `dead-letter partition ${target}/${to} has no primary`);
        const frame = encodeFrame({ partitions: [{ topic: target, partition: to, epoch: assignment.epoch, bytes: batch.length }] }, [batch]);
        const answer = await this.epochs.send(url, frame, frameWithoutEpochs, (sent) =>
          this.client.postFrame(url + BROKER_ROUTES.produceBatches, sent, { signal: signals.request }),
        );
        const [result] = (JSON.parse(answer.body.toString('utf8')) as { partitions: Array<{ error?: ErrorBody['error'] }> }).partitions;
        if (result?.error) {
          if (result.error.code === 'NOT_PRIMARY') this.link.requestMetadataRefresh('dead letter: not primary');
          throw TesseraError.fromBody({ error: result.error }) ?? new TesseraError('INTERNAL', 'unreadable partition error');
        }
      },
      // Retried until stored (or the delivery stops): moving on without it would lose the record.
      { ...RETRY, retries: Number.POSITIVE_INFINITY, shouldRetry: () => !signals.wait.aborted, signal: signals.wait, onRetry: onError },
    );
  }
}
