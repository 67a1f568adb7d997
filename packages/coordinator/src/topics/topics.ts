/**
 * Creating and deleting topics. Placement is the pure `assignPartitions`; this module
 * checks the request against the cluster and records the result.
 */
import { TesseraError, parseOrThrow, type createTopicRequest, type TopicDescription } from '@tessera/protocol';
import type { Cluster } from '../cluster/cluster.js';
import type { TopicState } from '../model.js';
import { assignPartitions, brokerLoad } from './assignment.js';

/** The parsed request, defaults applied. */
export type CreateTopic = ReturnType<typeof parseOrThrow<typeof createTopicRequest>>;

export function createTopic(cluster: Cluster, request: CreateTopic): TopicDescription {
  if (cluster.topics.has(request.name)) throw new TesseraError('TOPIC_EXISTS', `topic ${request.name} already exists`);
  const replicationFactor = request.replicationFactor as 1 | 2;
  const minInsyncReplicas = request.config.minInsyncReplicas ?? 1;
  if (minInsyncReplicas > replicationFactor) {
    throw new TesseraError(
      'INVALID_REQUEST',
      `minInsyncReplicas ${minInsyncReplicas} can never be met with replicationFactor ${replicationFactor}`,
    );
  }
  // Draining brokers take no new replicas.
  const live = cluster.placementBrokerIds();
  if (live.length < replicationFactor) {
    throw new TesseraError(
      'NOT_ENOUGH_BROKERS',
      `replicationFactor ${replicationFactor} needs ${replicationFactor} live brokers (not draining), ${live.length} available`,
    );
  }
  const placed = assignPartitions(request.partitions, replicationFactor, live, brokerLoad(cluster.topics.values(), live));
  const { retentionMs, retentionBytes } = request.config;
  // Settings the request leaves out follow the cluster defaults (also when those change later).
  const config: TopicState['config'] = {
    minInsyncReplicas,
    ...(retentionMs === undefined ? {} : { retentionMs }),
    ...(retentionBytes === undefined ? {} : { retentionBytes }),
  };
  // Above every epoch of a deleted topic of this name: a broker that missed that deletion
  // drops what it kept of it instead of serving its records as this topic's.
  const firstEpoch = cluster.topicEpochFloor();
  cluster.addTopic({
    name: request.name,
    replicationFactor,
    config,
    createdMs: Date.now(),
    firstEpoch,
    // A new empty partition is in sync on both replicas.
    partitions: placed.map((p, partition) => ({
      partition,
      primary: p.primary,
      secondary: p.secondary,
      epoch: firstEpoch,
      version: 0,
      isr: p.secondary === null ? [p.primary] : [p.primary, p.secondary],
      lastIsr: [],
    })),
  });
  return cluster.describeTopic(request.name);
}
