/**
 * Cluster administration through the coordinator: topics, cluster status, groups and
 * their lag. Every call is one request (no retries), so a command-line tool fails fast
 * with a clear message when the coordinator is unreachable.
 */
import {
  BROKER_ROUTES,
  COORDINATOR_ROUTES,
  alterTopicRequest,
  createTopicRequest,
  groupId,
  isRetriable,
  parseOrThrow,
  retry,
  topicName,
  type AlterTopicRequest,
  type BrokerListResponse,
  type PurgeTopicResponse,
  type BrokerStatus,
  type ClusterEvent,
  type ClusterEventsResponse,
  type ClusterStatusResponse,
  type CommittedOffsetsResponse,
  type CreateTopicRequest,
  type GroupDescription,
  type GroupListResponse,
  type MetadataResponse,
  type TopicDescription,
  type TopicListResponse,
  type AclEntry,
  type AclInput,
  type AclListResponse,
  type PrincipalInfo,
  type PrincipalListResponse,
  type PrincipalSecretResponse,
  TesseraError,
  aclEntry,
  offsetQuery,
  resetOffsetsRequest,
  type ListOffsetsResponse,
  type OffsetQuery,
  type ResetOffsetsRequest,
  type ResetOffsetsResponse,
  createPrincipalRequest,
  principalName,
  rotateSecretRequest,
} from '@tessera/protocol';
import type { Connection } from '../connection/connection.js';
import { addRoute, needsMetadataRefresh, type MetadataCache, type RoutedPartition } from '../cluster/metadata-cache.js';

/** Lag of one partition of a group's topic. */
export interface PartitionLag {
  partition: number;
  /** The group's next offset to read, or null when it never committed on this partition. */
  committed: number | null;
  highWatermark: number;
  /** `highWatermark - committed`; with nothing committed, every retained record counts (`highWatermark - logStartOffset`). */
  lag: number;
}

/** A partition's offset found by `listOffsets`. */
export interface PartitionOffset {
  partition: number;
  offset: number;
  /** For a time lookup, the timestamp of the record at `offset`; null otherwise (or no record that recent). */
  timestamp: number | null;
  logStartOffset: number;
  highWatermark: number;
}

/** Administration of topics, groups and the cluster (`client.admin`). */
export interface Admin {
  /** Creates a topic (replication factor 2 by default); TOPIC_EXISTS when the name is taken. */
  createTopic(request: CreateTopicRequest): Promise<TopicDescription>;
  /** Every topic with its partition count and replication factor. */
  listTopics(): Promise<TopicListResponse['topics']>;
  /** A topic's partitions: primary, secondary, epoch, ISR, status, high watermark. */
  describeTopic(name: string): Promise<TopicDescription>;
  /** Deletes a topic and its records. */
  deleteTopic(name: string): Promise<void>;
  /** Changes a topic's retention (`retentionMs`, `retentionBytes`; -1: no limit); answers the topic with its settings in force. */
  alterTopic(name: string, config: AlterTopicRequest['config']): Promise<TopicDescription>;
  /** Empties every partition of a topic (log start := HW), keeping the topic, its offsets numbering and its groups. */
  purgeTopic(name: string): Promise<PurgeTopicResponse>;
  /** Every broker: liveness (`state`), whether it is draining, primaries and replicas it holds. */
  listBrokers(): Promise<BrokerStatus[]>;
  /**
   * Marks a broker draining: the coordinator moves every replica off it, one move at a time
   * (add, catch up, swap; leadership transferred first for primaries), and places nothing new
   * on it. Resolves at once with its status; poll `listBrokers()` to see it empty.
   */
  drainBroker(id: number): Promise<BrokerStatus>;
  /** Ends a drain: the broker takes replicas again (a rebalance gives it its share). */
  undrainBroker(id: number): Promise<BrokerStatus>;
  /** Brokers (alive or not) and partition health counts. */
  clusterStatus(): Promise<ClusterStatusResponse>;
  /** The coordinator's recent cluster events (failovers, ISR changes, ...), newest last. */
  clusterEvents(limit?: number): Promise<ClusterEvent[]>;
  /**
   * Offsets of a topic's partitions (all, or `partitions`) by position: `'earliest'` (the log
   * start), `'latest'` (the high watermark: what a consumer can read up to), or
   * `{ timestamp }`: the first offset whose record timestamp (epoch ms) is at or after it, the
   * high watermark when no record is that recent. Asked of each partition's primary.
   */
  listOffsets(topic: string, at: OffsetQuery, partitions?: number[]): Promise<PartitionOffset[]>;
  /**
   * Resets a group's committed offsets on a topic (`kafka-consumer-groups --reset-offsets`),
   * clamped to [log start, high watermark]; only a dry run unless `execute` is true. Refused
   * with GROUP_NOT_EMPTY while the group has live members. The group's next member starts there.
   */
  resetGroupOffsets(group: string, request: ResetOffsetsRequest): Promise<ResetOffsetsResponse>;
  /** Deletes a group and its committed offsets; GROUP_NOT_EMPTY while it has live members. */
  deleteGroup(group: string): Promise<void>;
  /** Every consumer group with its topic, generation and member count. */
  listGroups(): Promise<GroupListResponse['groups']>;
  /** A group's members and the partitions each owns. */
  describeGroup(group: string): Promise<GroupDescription>;
  /**
   * Committed offset, high watermark and lag per partition of the group's topic (asks each
   * partition's primary via `POST /offsets`).
   */
  groupLag(group: string): Promise<PartitionLag[]>;
  /** The cluster map as the coordinator has it now (also refreshes the client's cache). */
  metadata(): Promise<MetadataResponse>;
  /** Creates a principal; without a secret the coordinator generates one. The answer is the only time the secret is shown. */
  createPrincipal(name: string, secret?: string): Promise<PrincipalSecretResponse>;
  listPrincipals(): Promise<PrincipalInfo[]>;
  /** Revokes a principal: its tokens stop working (on brokers within one heartbeat). */
  deletePrincipal(name: string): Promise<void>;
  /** A new secret for the principal; tokens of the old one stop working like a deleted principal's. */
  rotateSecret(name: string, secret?: string): Promise<PrincipalSecretResponse>;
  /** ACL entries, all or one principal's. */
  listAcls(principal?: string): Promise<AclEntry[]>;
  /** Grants a permission; `added` is false when it was granted already. */
  addAcl(acl: AclInput): Promise<{ added: boolean }>;
  /** Takes a permission back; `removed` is false when there was no such entry. */
  removeAcl(acl: AclInput): Promise<{ removed: boolean }>;
}

/** @internal The Admin implementation behind `client.admin`. */
export class AdminClient implements Admin {
  constructor(
    private readonly connection: Connection,
    private readonly cache: MetadataCache,
  ) {}

  async createTopic(request: CreateTopicRequest): Promise<TopicDescription> {
    const body = parseOrThrow(createTopicRequest, request, 'topic');
    // Also when the call fails: without an answer, the topic may have been made all the same.
    try {
      return await this.connection.coordinator<TopicDescription>('POST', COORDINATOR_ROUTES.topics, {}, body);
    } finally {
      this.cache.invalidate(body.name);
    }
  }

  async listTopics(): Promise<TopicListResponse['topics']> {
    return (await this.connection.coordinator<TopicListResponse>('GET', COORDINATOR_ROUTES.topics)).topics;
  }

  describeTopic(name: string): Promise<TopicDescription> {
    parseOrThrow(topicName, name, 'topic name');
    return this.connection.coordinator<TopicDescription>('GET', COORDINATOR_ROUTES.topic, { topic: name });
  }

  async alterTopic(name: string, config: AlterTopicRequest['config']): Promise<TopicDescription> {
    parseOrThrow(topicName, name, 'topic name');
    const body = parseOrThrow(alterTopicRequest, { config }, 'topic settings');
    try {
      return await this.connection.coordinator<TopicDescription>('PATCH', COORDINATOR_ROUTES.topic, { topic: name }, body);
    } finally {
      this.cache.invalidate(name);
    }
  }

  purgeTopic(name: string): Promise<PurgeTopicResponse> {
    parseOrThrow(topicName, name, 'topic name');
    return this.connection.coordinator<PurgeTopicResponse>('POST', COORDINATOR_ROUTES.topicPurge, { topic: name }, {});
  }

  async deleteTopic(name: string): Promise<void> {
    parseOrThrow(topicName, name, 'topic name');
    try {
      await this.connection.coordinator<unknown>('DELETE', COORDINATOR_ROUTES.topic, { topic: name });
    } finally {
      this.cache.invalidate(name);
    }
  }

  async listBrokers(): Promise<BrokerStatus[]> {
    return (await this.connection.coordinator<BrokerListResponse>('GET', COORDINATOR_ROUTES.brokers)).brokers;
  }

  async drainBroker(id: number): Promise<BrokerStatus> {
    return this.connection.coordinator<BrokerStatus>('POST', COORDINATOR_ROUTES.brokerDrain, { id: checkedBrokerId(id) });
  }

  async undrainBroker(id: number): Promise<BrokerStatus> {
    return this.connection.coordinator<BrokerStatus>('DELETE', COORDINATOR_ROUTES.brokerDrain, { id: checkedBrokerId(id) });
  }

  clusterStatus(): Promise<ClusterStatusResponse> {
    return this.connection.coordinator<ClusterStatusResponse>('GET', COORDINATOR_ROUTES.clusterStatus);
  }

  async clusterEvents(limit?: number): Promise<ClusterEvent[]> {
    const searchParams = limit === undefined ? undefined : { limit };
    const body = await this.connection.coordinator<ClusterEventsResponse>('GET', COORDINATOR_ROUTES.clusterEvents, {}, undefined, {
      searchParams,
    });
    return body.events;
  }

  async listGroups(): Promise<GroupListResponse['groups']> {
    return (await this.connection.coordinator<GroupListResponse>('GET', COORDINATOR_ROUTES.groups)).groups;
  }

  describeGroup(group: string): Promise<GroupDescription> {
    parseOrThrow(groupId, group, 'group id');
    return this.connection.coordinator<GroupDescription>('GET', COORDINATOR_ROUTES.group, { group });
  }

  async groupLag(group: string): Promise<PartitionLag[]> {
    const description = await this.describeGroup(group);
    const lags = await this.askPrimaries(description.topic, undefined, async (url, topic, partitions) => {
      const answer = await this.connection.broker<CommittedOffsetsResponse>(url, BROKER_ROUTES.committedOffsets, {}, {
        group,
        partitions: partitions.map(({ partition, epoch }) => ({ topic, partition, epoch })),
      });
      return answer.partitions.map((entry): PartitionLag => {
        if (entry.error !== undefined) throw TesseraError.fromBody({ error: entry.error });
        const base = entry.offset ?? entry.logStartOffset;
        return { partition: entry.partition, committed: entry.offset, highWatermark: entry.highWatermark, lag: Math.max(0, entry.highWatermark - base) };
      });
    });
    return lags.sort((a, b) => a.partition - b.partition);
  }

  async listOffsets(topic: string, at: OffsetQuery, partitions?: number[]): Promise<PartitionOffset[]> {
    parseOrThrow(topicName, topic, 'topic name');
    const query = parseOrThrow(offsetQuery, at, 'offset query');
    const found = await this.askPrimaries(topic, partitions, async (url, name, list) => {
      const answer = await this.connection.broker<ListOffsetsResponse>(url, BROKER_ROUTES.listOffsets, {}, {
        partitions: list.map(({ partition, epoch }) => ({ topic: name, partition, epoch, at: query })),
      });
      return answer.partitions.map(({ topic: _topic, error, ...entry }): PartitionOffset => {
        if (error !== undefined) throw TesseraError.fromBody({ error });
        return entry;
      });
    });
    return found.sort((a, b) => a.partition - b.partition);
  }

  resetGroupOffsets(group: string, request: ResetOffsetsRequest): Promise<ResetOffsetsResponse> {
    parseOrThrow(groupId, group, 'group id');
    const body = parseOrThrow(resetOffsetsRequest, request, 'reset request');
    return this.connection.coordinator<ResetOffsetsResponse>('POST', COORDINATOR_ROUTES.groupResetOffsets, { group }, body);
  }

  async deleteGroup(group: string): Promise<void> {
    parseOrThrow(groupId, group, 'group id');
    await this.connection.coordinator<unknown>('DELETE', COORDINATOR_ROUTES.group, { group });
  }

  /**
   * Calls `ask` once per primary broker with its partitions of `topicName` (every partition
   * when `partitions` is undefined) and joins the answers. A failover between reading the map
   * and asking the primary answers NOT_PRIMARY: read the map again and ask again.
   */
  private askPrimaries<T>(
    topicName: string,
    partitions: number[] | undefined,
    ask: (url: string, topic: string, partitions: RoutedPartition[]) => Promise<T[]>,
  ): Promise<T[]> {
    return retry(
      async () => {
        const metadata = await this.metadata();
        const topic = metadata.topics.find((t) => t.name === topicName);
        if (topic === undefined) throw new TesseraError('TOPIC_NOT_FOUND', `topic ${topicName} does not exist`);
        const byPrimary = new Map<string, RoutedPartition[]>();
        for (const partition of partitions ?? topic.partitions.map((p) => p.partition)) {
          // PARTITION_NOT_FOUND for a partition the topic does not have, PARTITION_OFFLINE for one without a primary.
          addRoute(byPrimary, metadata, topic, partition);
        }
        const answers = await Promise.all([...byPrimary].map(([url, list]) => ask(url, topic.name, list)));
        return answers.flat();
      },
      { retries: 3, initialMs: 100, multiplier: 2, maxMs: 400, shouldRetry: (error) => isRetriable(error) && needsMetadataRefresh(error) },
    );
  }

  metadata(): Promise<MetadataResponse> {
    return this.cache.fetchNow();
  }

  createPrincipal(name: string, secret?: string): Promise<PrincipalSecretResponse> {
    const body = parseOrThrow(createPrincipalRequest, { name, ...(secret === undefined ? {} : { secret }) });
    return this.connection.coordinator<PrincipalSecretResponse>('POST', COORDINATOR_ROUTES.users, {}, body);
  }

  async listPrincipals(): Promise<PrincipalInfo[]> {
    return (await this.connection.coordinator<PrincipalListResponse>('GET', COORDINATOR_ROUTES.users)).principals;
  }

  async deletePrincipal(name: string): Promise<void> {
    await this.connection.coordinator<unknown>('DELETE', COORDINATOR_ROUTES.user, { name: parseOrThrow(principalName, name, 'principal name') });
  }

  rotateSecret(name: string, secret?: string): Promise<PrincipalSecretResponse> {
    const body = parseOrThrow(rotateSecretRequest, secret === undefined ? {} : { secret });
    return this.connection.coordinator<PrincipalSecretResponse>('POST', COORDINATOR_ROUTES.userSecret, {
      name: parseOrThrow(principalName, name, 'principal name'),
    }, body);
  }

  async listAcls(principal?: string): Promise<AclEntry[]> {
    const options = principal === undefined ? {} : { searchParams: { principal: parseOrThrow(principalName, principal, 'principal name') } };
    return (await this.connection.coordinator<AclListResponse>('GET', COORDINATOR_ROUTES.acls, {}, undefined, options)).acls;
  }

  addAcl(acl: AclInput): Promise<{ added: boolean }> {
    return this.connection.coordinator<{ added: boolean }>('POST', COORDINATOR_ROUTES.acls, {}, parseOrThrow(aclEntry, acl, 'ACL'));
  }

  removeAcl(acl: AclInput): Promise<{ removed: boolean }> {
    return this.connection.coordinator<{ removed: boolean }>('POST', COORDINATOR_ROUTES.aclsRemove, {}, parseOrThrow(aclEntry, acl, 'ACL'));
  }
}

function checkedBrokerId(id: number): number {
  if (!Number.isInteger(id) || id < 1 || id > 1_000_000) throw new TesseraError('INVALID_REQUEST', `broker id must be an integer from 1 to 1000000, got ${id}`);
  return id;
}
