/**
 * Applies the cluster map to this broker's replicas: opens the ones it now holds, drops the
 * ones it no longer holds (and deleted topics, also those deleted and made again while this
 * broker did not hear of it), and hands each its role, epoch and ISR.
 */
import type { MetadataResponse, PartitionAssignment, TopicMetadata } from '@tessera/protocol';
import type { Logger } from '@tessera/service';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { replicaKey, type PartitionSet } from '../partition/index.js';

export interface ReconcileOptions {
  brokerId: number;
  replicas: PartitionSet;
  logger: Logger;
  /** The ISR seq when the metadata fetch started: replicas that took an ISR later keep theirs. */
  fetchSeq: number;
  /** First map since start: also delete databases on disk that no assignment mentions. */
  deleteOrphans: boolean;
}

/** Replicas opened and assigned per turn of the event loop. */
const APPLY_CHUNK = 50;

export async function reconcile(metadata: MetadataResponse, options: ReconcileOptions): Promise<void> {
  const { brokerId, replicas } = options;
  const held = new Map<string, { topic: TopicMetadata; assignment: PartitionAssignment }>();
  /** Partitions this broker must not delete even though it is not assigned: offline ones keep every copy. */
  const keep = new Set<string>();
  for (const topic of metadata.topics) {
    for (const assignment of topic.partitions) {
      const key = replicaKey(topic.name, assignment.partition);
      // A replica being added here by a move is held like a secondary: the primary catches it up.
      if (assignment.primary === brokerId || assignment.secondary === brokerId || assignment.adding === brokerId) {
        held.set(key, { topic, assignment });
      } else if (assignment.primary === null) {
        // An offline partition waits for an ISR member to come back; this copy may be the one it needs.
        keep.add(key);
      }
    }
  }

  for (const replica of replicas.all()) {
    const key = replicaKey(replica.topic, replica.partition);
    if (!held.has(key) && !keep.has(key)) await replicas.drop(replica.topic, replica.partition);
  }
  if (options.deleteOrphans) await replicas.deleteOrphans(new Set([...held.keys(), ...keep]));

  let sinceYield = 0;
  for (const { topic, assignment } of held.values()) {
    // A map with many new partitions (a 1,000-partition topic) is applied in chunks, giving the
    // event loop back in between so heartbeats and other partitions' requests keep flowing.
    if (++sinceYield >= APPLY_CHUNK) {
      sinceYield = 0;
      await nextTurn();
    }
    let replica = replicas.open(topic.name, assignment.partition);
    if (replica.heldBefore(topic.firstEpoch ?? 0)) {
      // This broker missed the deletion of a topic of the same name (it was down or cut off):
      // its copy of that topic's partition goes, and the new one starts empty.
      options.logger.warn(
        { topic: topic.name, partition: assignment.partition, firstEpoch: topic.firstEpoch, leo: replica.store.leo },
        'replica of a deleted topic of the same name dropped',
      );
      await replicas.drop(topic.name, assignment.partition);
      replica = replicas.open(topic.name, assignment.partition);
    }
    const minInsyncReplicas = topic.config.minInsyncReplicas ?? 1;
    replica.retentionMs = topic.config.retentionMs ?? -1;
    replica.retentionBytes = topic.config.retentionBytes ?? -1;
    // The map may have moved on while we yielded: an older epoch is ignored by applyAssignment.
    replica.applyAssignment(assignment, minInsyncReplicas, replica.isrSeq <= options.fetchSeq);
  }
}
