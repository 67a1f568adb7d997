/**
 * The coordinator's state as it lives in memory and in SQLite. Every domain module
 * works on these shapes; the store turns them into rows and back.
 */
import type { PartitionAssignment, TopicConfig } from '@tessera/protocol';

export interface BrokerState {
  id: number;
  /** Where clients reach the broker. */
  url: string;
  /** Where the coordinator and the other brokers reach it. */
  internalUrl: string;
  alive: boolean;
  /** Monotonic clock (ms) of the last heartbeat, or of the coordinator start (grace). Not persisted. */
  lastHeartbeatMs: number;
  /** True once the broker heartbeated since this coordinator process started. */
  heardSinceStart: boolean;
  /** Marked for drain (persisted): moves take every replica off it and nothing new is placed on it. */
  draining: boolean;
  /**
   * Monotonic clock (ms) since which the broker is dead (or the coordinator start, for a broker
   * already dead then). Not persisted. Undefined while alive.
   */
  deadSinceMs?: number;
}

export interface PartitionState extends PartitionAssignment {
  /** Counts every stored change of the assignment (persisted); see `PartitionAssignment.version`. */
  version: number;
  /**
   * The ISR the partition had when it went offline: only these brokers hold every
   * acknowledged record, so only one of them may become primary again. Empty while online.
   */
  lastIsr: number[];
}

/** Why a partition is being moved. */
/** `leadership`: a leadership transfer of the automatic leadership balance. */
export type MoveReason = 'rebalance' | 'replace' | 'leadership';

/**
 * A partition move in progress (persisted, so it survives a coordinator restart): the
 * partition goes, one step at a time, from where it is to `targetPrimary`/`targetSecondary`.
 * Steps: add a replica and swap it in for the secondary once caught up, or transfer
 * leadership to the in-sync secondary (see `rebalance/steps.ts`).
 */
export interface MoveState {
  topic: string;
  partition: number;
  targetPrimary: number;
  targetSecondary: number | null;
  reason: MoveReason;
  /** Wall clock (ms since the Unix epoch) when the move started. */
  startedMs: number;
}

export interface TopicState {
  name: string;
  replicationFactor: number;
  /** The topic's own settings; those it does not set take the cluster defaults (see Cluster.topicConfig). */
  config: TopicConfig & Required<Pick<TopicConfig, 'minInsyncReplicas'>>;
  partitions: PartitionState[];
  createdMs: number;
  /** The epoch its partitions started at: above every epoch a deleted topic of this name had. */
  firstEpoch: number;
}

export interface MemberState {
  memberId: string;
  clientId: string | null;
  sessionTimeoutMs: number;
  /** Monotonic clock (ms) of the last join or heartbeat. Not persisted: a restart gives a full session of grace. */
  lastHeartbeatMs: number;
  /** The last generation whose assignment the member acknowledged. */
  ackedGeneration: number;
}

export interface GroupState {
  group: string;
  topic: string;
  generation: number;
  members: Map<string, MemberState>;
  /** owner[p]: the member holding partition p now (told it owns p and not yet acknowledged losing it). */
  owner: Array<string | null>;
  /** target[p]: where the sticky balance wants partition p. */
  target: Array<string | null>;
  /**
   * Wall clock (ms since the Unix epoch) since which the group has had no member (persisted):
   * a group empty for the coordinator's group retention is deleted with its offsets. Null while
   * it has members.
   */
  emptySinceMs: number | null;
}

export type { ClusterEvent } from '@tessera/protocol';
