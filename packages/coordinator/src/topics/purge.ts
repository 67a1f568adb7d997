/**
 * Purging a topic: every partition's primary moves its log start to its HW
 * (`POST /internal/purge`), the topic, its offset numbering and its groups stay. The coordinator
 * asks the primaries in parallel and retries each partition (through the protocol's retry
 * helper) while its primary is changing; the answer names where each partition starts now.
 * Each call names the partition's epoch in the coordinator's map, so a broker that has not
 * applied it yet (a topic deleted and made again) refuses it (UNKNOWN_EPOCH, asked again)
 * instead of purging a replica it is about to drop; a broker of an earlier release, which
 * refuses the field, gets the call without it.
 */
import {
  BROKER_ROUTES,
  EpochRefusals,
  TesseraError,
  isTesseraError,
  retry,
  type JsonHttpClient,
  type PurgePartitionRequest,
  type PurgeTopicResponse,
  type PurgedPartition,
} from '@tessera/protocol';
import type { Cluster } from '../cluster/cluster.js';

/** Answers that mean "ask again, maybe elsewhere": the primary moved or is not ready yet. */
const TRANSIENT = new Set(['NOT_PRIMARY', 'UNKNOWN_EPOCH', 'PARTITION_NOT_FOUND', 'UNAVAILABLE', 'TIMEOUT', 'PARTITION_OFFLINE', 'INTERNAL']);

export class TopicPurger {
  /** Brokers of an earlier release, which refuse partition epochs. */
  private readonly epochs = new EpochRefusals();

  constructor(
    private readonly cluster: Cluster,
    private readonly client: JsonHttpClient,
    private readonly timeoutMs: number,
  ) {}

  async purge(topicName: string): Promise<PurgeTopicResponse> {
    const topic = this.cluster.topic(topicName);
    const partitions = await Promise.all(topic.partitions.map((p) => this.purgePartition(topicName, p.partition)));
    return { topic: topicName, partitions };
  }

  private purgePartition(topic: string, partition: number): Promise<PurgedPartition> {
    return retry(
      async () => {
        // Read the map on every attempt: a failover meanwhile names another primary.
        const state = this.cluster.topic(topic).partitions[partition];
        const primary = this.cluster.brokerRef(state.primary);
        if (primary === null) {
          throw new TesseraError('PARTITION_OFFLINE', `${topic}/${partition} has no live primary; nothing was purged there`);
        }
        const url = `${primary.internalUrl}${BROKER_ROUTES.purge}`;
        const body: PurgePartitionRequest = { topic, partition, epoch: state.epoch };
        const answer = await this.epochs.send(
          primary.internalUrl,
          body,
          ({ epoch: _epoch, ...rest }: PurgePartitionRequest): PurgePartitionRequest => rest,
          (sent) => this.client.post<{ logStartOffset: number; highWatermark: number }>(url, sent, { timeoutMs: this.timeoutMs }),
        );
        return { partition, ...answer };
      },
      {
        retries: 10,
        initialMs: 50,
        multiplier: 2,
        maxMs: 1_000,
        jitter: 0.2,
        shouldRetry: (error) => !isTesseraError(error) || TRANSIENT.has(error.code),
      },
    );
  }
}
