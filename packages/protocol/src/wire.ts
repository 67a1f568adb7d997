/**
 * Response bodies of every service, as plain types. Request bodies are in `schemas.ts`.
 */
import type { ErrorBody } from './errors.js';
import type { PartitionRef, TopicConfig } from './schemas.js';

export type { PartitionRef };

/** A stored record, as fetch returns it. */
export interface WireRecord {
  offset: number;
  key: string | null;
  value: string | null;
  headers: Record<string, string | null> | null;
  /** Milliseconds since the Unix epoch. */
  timestamp: number;
  /** Present when the record's bytes are not UTF-8: key, value and header values are base64. */
  encoding?: 'base64';
}

export interface BrokerInfo {
  id: number;
  /** Where clients reach the broker. */
  url: string;
  /** Where the coordinator and other brokers reach it (the same as `url` unless it was set apart). */
  internalUrl: string;
  alive: boolean;
}

/** Where a partition lives. `primary` is null while the partition is offline. */
export interface PartitionAssignment {
  partition: number;
  primary: number | null;
  secondary: number | null;
  epoch: number;
  /** In-sync replicas: `[primary]` or `[primary, secondary]`. */
  isr: number[];
  /**
   * A replica being added by a move (rebalance, drain, replacement of a dead secondary): the
   * primary catches it up in the background; it never counts for the HW, and once caught up
   * it replaces the secondary (`POST /partitions/reassign-complete`). Absent or null: none.
   */
  adding?: number | null;
  /**
   * Counts every change of this assignment (role, epoch, ISR, secondary, replica being added).
   * A primary names the version it decided on when it asks for an ISR change or a move
   * completion, so a request delayed past a later change cannot undo it. Absent from a
   * coordinator of an earlier release.
   */
  version?: number;
}

export type PartitionStatus = 'online' | 'under-replicated' | 'offline';

export interface TopicMetadata {
  name: string;
  replicationFactor: number;
  /** The settings in force: the topic's own, or the cluster defaults for those it does not set. */
  config: Required<TopicConfig>;
  /**
   * The epoch the topic's partitions started at: above every epoch a deleted topic of the same
   * name ever had, so a broker can tell a replica it kept of that topic (written at lower
   * epochs) from one of this topic, and drop it. Absent (0) from an earlier coordinator.
   */
  firstEpoch?: number;
  /** Indexed by partition number. */
  partitions: PartitionAssignment[];
}

/** `GET /metadata`: the cluster map, what clients and brokers route by. */
export interface MetadataResponse {
  /** Increases on every change of the map; brokers compare it to refresh. */
  version: number;
  brokers: BrokerInfo[];
  topics: TopicMetadata[];
}

export interface PartitionDescription extends PartitionAssignment {
  status: PartitionStatus;
  /** As last reported by the primary's heartbeat (null before the first report). */
  highWatermark: number | null;
  logEndOffset: number | null;
}

/** `GET /topics/:topic`, `POST /topics`. */
export interface TopicDescription extends Omit<TopicMetadata, 'partitions'> {
  partitions: PartitionDescription[];
}

/** `GET /topics`. */
export interface TopicListResponse {
  topics: Array<{ name: string; partitions: number; replicationFactor: number }>;
}

/** `POST /topics/:topic/partitions/:partition/records` on the primary. */
export interface ProduceResponse {
  topic: string;
  partition: number;
  /** Offset of the first record; the batch holds `baseOffset` .. `baseOffset + count - 1`. */
  baseOffset: number;
  count: number;
  epoch: number;
}

/** `POST /topics/:topic/records` on the coordinator: one entry per record, in request order. */
export interface RoutedProduceResponse {
  offsets: Array<{ partition: number; offset: number }>;
}

export interface FetchPartitionResult {
  topic: string;
  partition: number;
  highWatermark: number;
  logStartOffset: number;
  records: WireRecord[];
  error?: ErrorBody['error'];
}

/** `POST /fetch`. */
export interface FetchResponse {
  partitions: FetchPartitionResult[];
}

/** `POST /commit`. */
export interface CommitResponse {
  results: Array<{ topic: string; partition: number; error?: ErrorBody['error'] }>;
}

/** `POST /offsets`: committed offsets of a group (null: nothing committed yet). */
export interface CommittedOffsetsResponse {
  partitions: Array<{
    topic: string;
    partition: number;
    offset: number | null;
    highWatermark: number;
    logStartOffset: number;
    error?: ErrorBody['error'];
  }>;
}

/** `POST /brokers/register` and `POST /brokers/heartbeat`. */
export interface BrokerHeartbeatResponse {
  metadataVersion: number;
  /** Current generation of every consumer group, so brokers refuse stale commits. */
  groups: Record<string, number>;
  heartbeatMs: number;
  /** Version of the principals and ACLs (`GET /internal/auth`); brokers refetch them when it changes. */
  authVersion?: number;
  /** Version of the push subscriptions (`GET /internal/subscriptions`); brokers refetch them when it changes. */
  subscriptionsVersion?: number;
}

/** `POST /groups/:group/join` and `POST /groups/:group/heartbeat`. */
export interface GroupMembership {
  group: string;
  topic: string;
  memberId: string;
  generation: number;
  /** The partitions this member owns in `generation`. */
  assignment: number[];
  members: number;
  sessionTimeoutMs: number;
  heartbeatMs: number;
}

/** `GET /groups/:group`. */
export interface GroupDescription {
  group: string;
  topic: string;
  generation: number;
  members: Array<{ memberId: string; clientId: string | null; partitions: number[] }>;
  /** Partitions no member owns right now (waiting for their previous owner to release them, or no members). */
  unassigned: number[];
}

export interface GroupListResponse {
  /**
   * `emptySinceMs`: since when (ms since the Unix epoch) the group has had no member, null while
   * it has members; a group empty for the coordinator's group retention is deleted with its
   * offsets. Absent from a coordinator of an earlier release.
   */
  groups: Array<{ group: string; topic: string; generation: number; members: number; emptySinceMs?: number | null }>;
}

export interface BrokerStatus extends BrokerInfo {
  /** Milliseconds since the last heartbeat (null: none since the coordinator started). */
  lastHeartbeatAgoMs: number | null;
  primaries: number;
  replicas: number;
  /** `alive` or `dead` (the same as `alive`, spelled for people). */
  state?: 'alive' | 'dead';
  /** Marked for drain: every replica is being moved off it, and no new one is placed on it. */
  draining?: boolean;
  /** Replicas being added to this broker by moves in progress (not counted in `replicas`). */
  adding?: number;
}

/** `GET /brokers`. */
export interface BrokerListResponse {
  brokers: BrokerStatus[];
}

/** `GET /cluster/status`. */
export interface ClusterStatusResponse {
  brokers: BrokerStatus[];
  topics: number;
  partitions: number;
  underReplicated: number;
  offline: number;
  underReplicatedPartitions: PartitionRef[];
  offlinePartitions: PartitionRef[];
}

/** One entry of the coordinator's event log: failover, ISR change, rebalance move, broker up or down... */
export interface ClusterEvent {
  id: number;
  /** Milliseconds since the Unix epoch. */
  timeMs: number;
  type: string;
  /** What the event is about: topic, partition, brokerId, epoch, isr... */
  [detail: string]: unknown;
}

/** `GET /cluster/events?limit=N`: the newest N events, newest last. */
export interface ClusterEventsResponse {
  events: ClusterEvent[];
}

/** `GET /health` and `GET /ready`. */
export interface HealthResponse {
  status: 'ok' | 'starting';
  service: 'coordinator' | 'broker';
  id?: number;
}

/** `POST /producers`: the identity an idempotent producer stamps into its batches. */
export interface InitProducerResponse {
  producerId: number;
  producerEpoch: number;
}

/** One partition's answer to a purge: where its log starts now (its HW at the time of the purge). */
export interface PurgedPartition {
  partition: number;
  logStartOffset: number;
  highWatermark: number;
}

/** `POST /topics/:topic/purge`. */
export interface PurgeTopicResponse {
  topic: string;
  partitions: PurgedPartition[];
}
