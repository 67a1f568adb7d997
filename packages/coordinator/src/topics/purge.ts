/**
 * Purging a topic: every partition's primary moves its log start to its HW
 * (`POST /internal/purge`), the topic, its offset numbering and its groups stay. The coordinator
 * asks the primaries in parallel and retries each partition (through the protocol's retry
 * helper) while its primary is changing; the answer names where each partition starts now.
 */
import {
  BROKER_ROUTES,
  TesseraError,
  isTesseraError,
  retry,
  type JsonHttpClient,
  type PurgeTopicResponse,
  type PurgedPartition,
} from '@tessera/protocol';
import type { Cluster } from '../cluster/cluster.js';

/** Answers that mean "ask again, maybe elsewhere": the primary moved or is not ready yet. */
const TRANSIENT = new Set(['NOT_PRIMARY', 'PARTITION_NOT_FOUND', 'UNAVAILABLE', 'TIMEOUT', 'PARTITION_OFFLINE', 'INTERNAL']);

export class TopicPurger {
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
        const answer = await this.client.post<{ logStartOffset: number; highWatermark: number }>(
          `${primary.internalUrl}${BROKER_ROUTES.purge}`,
          { topic, partition },
          { timeoutMs: this.timeoutMs },
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
