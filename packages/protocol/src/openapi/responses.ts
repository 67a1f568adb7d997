/**
 * Response bodies of the public HTTP API as zod schemas, for the OpenAPI description only: the
 * services build their answers from the plain types of `wire.ts`. Every schema here is checked
 * at compile time to describe exactly its `wire.ts` type (`Same` below), so the two cannot drift.
 */
import { z } from 'zod';
import { ERRORS, type ErrorBody } from '../errors.js';
import type * as wire from '../wire.js';
import type { ListOffsetsResponse, ResetOffsetsResponse } from '../positions.js';
import { ACL_OPERATIONS, ACL_RESOURCES, type AclListResponse, type PrincipalListResponse, type PrincipalSecretResponse, type TokenResponse } from '../auth.js';

/** An integer field (every number of the API is one). */
export const int = z.number().int();
const brokerRef = z.object({ id: int, url: z.string() });

export const errorBody = z.object({
  error: z.object({
    code: z.enum(Object.keys(ERRORS) as [keyof typeof ERRORS, ...Array<keyof typeof ERRORS>]),
    message: z.string(),
    retriable: z.boolean().describe('true when the same request may succeed later (retry with backoff)'),
    primary: brokerRef.nullable().optional().describe('NOT_PRIMARY: the primary the answering service knows'),
    epoch: int.optional().describe('STALE_EPOCH, UNKNOWN_EPOCH: the epoch the answering side knows'),
    version: int.optional().describe("STALE_ASSIGNMENT: the partition's assignment version the coordinator knows"),
    generation: int.optional().describe('GENERATION_MISMATCH: the group generation the answering side knows'),
    leo: int.optional(),
    logStartOffset: int.optional(),
    highWatermark: int.optional(),
    epochs: z.array(z.tuple([int, int])).optional().describe('OFFSET_MISMATCH: the epoch history, [epoch, startOffset] pairs'),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional().describe('INVALID_REQUEST: where the body is wrong'),
  }),
});

const wireRecord = z.object({
  offset: int,
  key: z.string().nullable(),
  value: z.string().nullable(),
  headers: z.record(z.string(), z.string().nullable()).nullable(),
  timestamp: int.describe('milliseconds since the Unix epoch'),
  encoding: z.literal('base64').optional().describe("present when the record's bytes are not UTF-8: key, value and header values are base64"),
});

const brokerInfo = z.object({
  id: int,
  url: z.string().describe('where clients reach the broker'),
  internalUrl: z.string().describe('where the coordinator and other brokers reach it'),
  alive: z.boolean(),
});

const partitionAssignment = z.object({
  partition: int,
  primary: int.nullable().describe('null while the partition is offline'),
  secondary: int.nullable(),
  epoch: int,
  isr: z.array(int).describe('in-sync replicas: [primary] or [primary, secondary]'),
  adding: int.nullable().optional().describe('a replica being added by a move, caught up in the background'),
  version: int.optional().describe('counts every change of this assignment'),
});

const topicConfigOut = z.object({ minInsyncReplicas: z.number().int(), retentionMs: z.number().int(), retentionBytes: z.number().int() });

const topicMetadata = z.object({
  name: z.string(),
  replicationFactor: int,
  config: topicConfigOut,
  firstEpoch: int.optional().describe("the epoch the topic's partitions started at, above every epoch of a deleted topic of the same name"),
  partitions: z.array(partitionAssignment),
});

export const metadataResponse = z.object({
  version: int.describe('increases on every change of the map'),
  brokers: z.array(brokerInfo),
  topics: z.array(topicMetadata),
});

const partitionStatus = z.enum(['online', 'under-replicated', 'offline']);

export const topicDescription = z.object({
  name: z.string(),
  replicationFactor: int,
  config: topicConfigOut,
  partitions: z.array(
    partitionAssignment.extend({
      status: partitionStatus,
      highWatermark: int.nullable().describe("as last reported by the primary's heartbeat"),
      logEndOffset: int.nullable(),
    }),
  ),
});

export const topicListResponse = z.object({
  topics: z.array(z.object({ name: z.string(), partitions: int, replicationFactor: int })),
});

export const produceResponse = z.object({
  topic: z.string(),
  partition: int,
  baseOffset: int.describe('offset of the first record; the batch holds baseOffset .. baseOffset + count - 1'),
  count: int,
  epoch: int,
});

export const routedProduceResponse = z.object({
  offsets: z.array(z.object({ partition: int, offset: int })).describe('one entry per record, in request order'),
});

const inlineError = errorBody.shape.error;

export const fetchResponse = z.object({
  partitions: z.array(
    z.object({
      topic: z.string(),
      partition: int,
      highWatermark: int,
      logStartOffset: int,
      records: z.array(wireRecord),
      error: inlineError.optional(),
    }),
  ),
});

export const commitResponse = z.object({
  results: z.array(z.object({ topic: z.string(), partition: int, error: inlineError.optional() })),
});

export const committedOffsetsResponse = z.object({
  partitions: z.array(
    z.object({
      topic: z.string(),
      partition: int,
      offset: int.nullable().describe('null: nothing committed yet'),
      highWatermark: int,
      logStartOffset: int,
      error: inlineError.optional(),
    }),
  ),
});

export const partitionOffset = z.object({
  topic: z.string(),
  partition: int,
  offset: int,
  timestamp: int.nullable().describe('a time lookup: the timestamp of the record at offset; null otherwise, or when no record is that recent'),
  logStartOffset: int,
  highWatermark: int,
});

export const listOffsetsResponse = z.object({
  partitions: z.array(partitionOffset.extend({ error: inlineError.optional() })),
});

export const resetOffsetsResponse = z.object({
  group: z.string(),
  topic: z.string(),
  executed: z.boolean().describe('false for a dry run: nothing was stored'),
  generation: int.nullable().describe('the generation the new offsets were stored with; null for a dry run'),
  partitions: z.array(
    z.object({
      partition: int,
      current: int.nullable().describe('the committed offset before; null when none'),
      target: int.describe("where the group's next member starts"),
      logStartOffset: int,
      highWatermark: int,
    }),
  ),
});

export const groupMembership = z.object({
  group: z.string(),
  topic: z.string(),
  memberId: z.string(),
  generation: int,
  assignment: z.array(int).describe('the partitions this member owns in this generation'),
  members: int,
  sessionTimeoutMs: int,
  heartbeatMs: int,
});

export const groupDescription = z.object({
  group: z.string(),
  topic: z.string(),
  generation: int,
  members: z.array(z.object({ memberId: z.string(), clientId: z.string().nullable(), partitions: z.array(int) })),
  unassigned: z.array(int),
});

export const groupListResponse = z.object({
  groups: z.array(
    z.object({
      group: z.string(),
      topic: z.string(),
      generation: int,
      members: int,
      emptySinceMs: int
        .nullable()
        .optional()
        .describe('since when (ms since the Unix epoch) the group has had no member, null while it has members; an empty group is deleted with its offsets after the group retention'),
    }),
  ),
});

const brokerStatus = brokerInfo.extend({
  lastHeartbeatAgoMs: int.nullable().describe('null: no heartbeat since the coordinator started'),
  primaries: int,
  replicas: int,
  state: z.enum(['alive', 'dead']).optional(),
  draining: z.boolean().optional(),
  adding: int.optional().describe('replicas being added to this broker by moves in progress'),
});

export const brokerStatusResponse = brokerStatus;

export const brokerListResponse = z.object({ brokers: z.array(brokerStatus) });

const partitionRefOut = z.object({ topic: z.string(), partition: int });

export const clusterStatusResponse = z.object({
  brokers: z.array(brokerStatus),
  topics: int,
  partitions: int,
  underReplicated: int,
  offline: int,
  underReplicatedPartitions: z.array(partitionRefOut),
  offlinePartitions: z.array(partitionRefOut),
});

export const clusterEventsResponse = z.object({
  events: z.array(
    z
      .object({ id: int, timeMs: int.describe('milliseconds since the Unix epoch'), type: z.string() })
      .catchall(z.unknown())
      .describe('an event: failover, ISR change, rebalance move, broker up or down..., with its details'),
  ),
});

export const initProducerResponse = z.object({
  producerId: int.describe('unique in the cluster, never handed out twice (also across coordinator restarts and a restore of its database from a backup); below 2^52'),
  producerEpoch: int.describe('the epoch of this producer id (0 for a new id)'),
});

export const healthResponse = z.object({
  status: z.enum(['ok', 'starting']),
  service: z.enum(['coordinator', 'broker']),
  id: int.optional(),
});

// ---- compile-time checks: each schema describes exactly its wire type ---------------------

export const produceBatchesResponse = z.object({
  partitions: z.array(
    z.union([
      z.object({ topic: z.string(), partition: int, baseOffset: int, lastOffset: int, epoch: int }),
      z.object({ topic: z.string(), partition: int, error: errorBody.shape.error }),
    ]),
  ),
});

const principalInfo = z.object({ name: z.string(), createdMs: int });
export const principalListResponse = z.object({ principals: z.array(principalInfo) });
export const principalSecretResponse = principalInfo.extend({ secret: z.string().describe('shown once; only its scrypt hash is stored') });
const aclOut = z.object({
  principal: z.string(),
  resource: z.enum(ACL_RESOURCES),
  name: z.string(),
  prefix: z.boolean(),
  operation: z.enum(ACL_OPERATIONS),
});
export const aclListResponse = z.object({ acls: z.array(aclOut) });
export const aclAddResponse = z.object({ added: z.boolean().describe('false when the ACL existed already') });
export const aclRemoveResponse = z.object({ removed: z.boolean().describe('false when no such ACL existed') });
export const tokenResponse = z.object({ token: z.string(), principal: z.string(), expiresAtMs: int });

/** True when a schema's output type and an API type are the same, both ways. */
export type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export type Out<T extends z.ZodType> = z.output<T>;

export const purgeTopicResponse = z.object({
  topic: z.string(),
  partitions: z.array(z.object({ partition: z.number().int(), logStartOffset: z.number().int(), highWatermark: z.number().int() })),
});

export const RESPONSE_SCHEMAS_MATCH_WIRE_TYPES: [
  Same<Out<typeof errorBody>, ErrorBody>,
  Same<Out<typeof metadataResponse>, wire.MetadataResponse>,
  Same<Out<typeof topicDescription>, wire.TopicDescription>,
  Same<Out<typeof topicListResponse>, wire.TopicListResponse>,
  Same<Out<typeof produceResponse>, wire.ProduceResponse>,
  Same<Out<typeof routedProduceResponse>, wire.RoutedProduceResponse>,
  Same<Out<typeof fetchResponse>, wire.FetchResponse>,
  Same<Out<typeof commitResponse>, wire.CommitResponse>,
  Same<Out<typeof committedOffsetsResponse>, wire.CommittedOffsetsResponse>,
  Same<Out<typeof listOffsetsResponse>, ListOffsetsResponse>,
  Same<Out<typeof resetOffsetsResponse>, ResetOffsetsResponse>,
  Same<Out<typeof groupMembership>, wire.GroupMembership>,
  Same<Out<typeof groupDescription>, wire.GroupDescription>,
  Same<Out<typeof groupListResponse>, wire.GroupListResponse>,
  Same<Out<typeof brokerListResponse>, wire.BrokerListResponse>,
  Same<Out<typeof clusterStatusResponse>, wire.ClusterStatusResponse>,
  Same<Out<typeof clusterEventsResponse>, wire.ClusterEventsResponse>,
  Same<Out<typeof healthResponse>, wire.HealthResponse>,
  Same<Out<typeof principalListResponse>, PrincipalListResponse>,
  Same<Out<typeof principalSecretResponse>, PrincipalSecretResponse>,
  Same<Out<typeof aclListResponse>, AclListResponse>,
  Same<Out<typeof tokenResponse>, TokenResponse>,
  Same<Out<typeof initProducerResponse>, wire.InitProducerResponse>,
  Same<Out<typeof purgeTopicResponse>, wire.PurgeTopicResponse>,
] = [true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true];
