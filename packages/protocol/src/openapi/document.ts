/**
 * The OpenAPI 3.1 description of the public HTTP API of the coordinator and of the brokers,
 * generated from the request schemas the services validate with (`schemas.ts`) and the response
 * schemas of `responses.ts`, through zod's own JSON Schema output (OpenAPI 3.1 uses JSON Schema
 * 2020-12). Each service serves its document at `GET /openapi.json`; `docs/openapi/` holds
 * copies that a test keeps equal to what this builds.
 *
 * Routes only services call on each other (broker registration and heartbeats, ISR changes,
 * reassignment, replication, metadata notifications) are internal and left out: they change
 * with the replication protocol and no client should call them. `INTERNAL_ROUTES` lists them.
 */
import { z } from 'zod';
import { BROKER_ROUTES, COORDINATOR_ROUTES } from '../routes.js';
import { FRAME_CONTENT_TYPE } from '../batch/frame.js';
import { IDEMPOTENCY_KEY_HEADER } from '../json-records.js';
import {
  commitRequest,
  committedOffsetsRequest,
  createTopicRequest,
  fetchRequest,
  groupHeartbeatRequest,
  groupId,
  joinGroupRequest,
  leaveGroupRequest,
  partitionNumber,
  produceRequest,
  routedProduceRequest,
  alterTopicRequest,
  topicName,
} from '../schemas.js';
import { listOffsetsRequest, resetOffsetsRequest } from '../positions.js';
import { aclEntry, createPrincipalRequest, principalName, rotateSecretRequest } from '../auth.js';
import * as responses from './responses.js';
import * as subscriptionResponses from './subscription-responses.js';
import { createSubscriptionRequest } from '../subscriptions.js';
import { subscriptionName } from '../schemas.js';

export type ServiceName = 'coordinator' | 'broker';

/** The API's version: the wire contract's, which changes with `@tessera/protocol`. */
export const API_VERSION = '0.1.0';

export const INTERNAL_ROUTES: Record<ServiceName, readonly string[]> = {
  coordinator: [
    COORDINATOR_ROUTES.brokerRegister,
    COORDINATOR_ROUTES.brokerHeartbeat,
    COORDINATOR_ROUTES.isr,
    COORDINATOR_ROUTES.reassignComplete,
    COORDINATOR_ROUTES.authState,
    COORDINATOR_ROUTES.subscriptionsState,
  ],
  broker: [BROKER_ROUTES.replicate, BROKER_ROUTES.metadataChanged, BROKER_ROUTES.purge, BROKER_ROUTES.adminGroupOffsets],
};

/** The route of the document itself, on both services. */
export const OPENAPI_ROUTE = COORDINATOR_ROUTES.openapi;

type Method = 'get' | 'post' | 'patch' | 'delete';

interface Operation {
  method: Method;
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  request?: { id: string; schema: z.ZodType };
  /** A binary request body instead of JSON (a frame of record batches). */
  binaryRequest?: { contentType: string; description: string };
  /** Success status and body (none for 204; `text` for the Prometheus exposition). */
  response: { status: number; description: string; id?: string; schema?: z.ZodType; text?: true };
  query?: Array<{ name: string; description: string; schema: Record<string, unknown> }>;
  /** Optional request headers. */
  headers?: Array<{ name: string; description: string; schema: Record<string, unknown> }>;
  /** Open without a token (health, readiness, metrics, this document, the token exchange). */
  public?: true;
}

const PARAMS: Record<string, { schema: z.ZodType; description: string }> = {
  topic: { schema: topicName, description: 'topic name' },
  partition: { schema: partitionNumber, description: 'partition number' },
  group: { schema: groupId, description: 'consumer group id' },
  id: { schema: z.number().int().positive(), description: 'broker id' },
  name: { schema: principalName, description: 'principal name' },
  subscription: { schema: subscriptionName, description: 'subscription name' },
};

const common = (service: ServiceName): Operation[] => [
  {
    method: 'get',
    path: '/health',
    public: true,
    operationId: 'health',
    summary: 'Liveness: 200 while the process serves HTTP',
    tag: 'operations',
    response: { status: 200, description: 'the process runs', id: 'HealthResponse', schema: responses.healthResponse },
  },
  {
    method: 'get',
    path: '/ready',
    public: true,
    operationId: 'ready',
    summary:
      service === 'coordinator'
        ? 'Readiness: 200 once the state is loaded, 503 UNAVAILABLE while stopping'
        : 'Readiness: 200 once registered with the coordinator and its assignments applied, 503 UNAVAILABLE before',
    tag: 'operations',
    response: { status: 200, description: 'ready to serve', id: 'HealthResponse', schema: responses.healthResponse },
  },
  {
    method: 'get',
    path: '/metrics',
    public: true,
    operationId: 'metrics',
    summary: 'Prometheus metrics (text exposition format)',
    tag: 'operations',
    response: { status: 200, description: 'the metrics', text: true },
  },
  {
    method: 'get',
    path: OPENAPI_ROUTE,
    public: true,
    operationId: 'openapi',
    summary: 'This OpenAPI 3.1 description',
    tag: 'operations',
    response: { status: 200, description: 'the OpenAPI document', schema: z.object({}).catchall(z.unknown()), id: 'OpenApiDocument' },
  },
];

const C = COORDINATOR_ROUTES;
const COORDINATOR_OPERATIONS: Operation[] = [
  {
    method: 'get',
    path: C.metadata,
    operationId: 'getMetadata',
    summary: 'The cluster map: brokers and where every partition lives (what clients route by)',
    tag: 'cluster',
    query: [{ name: 'topics', description: 'comma-separated topic names to limit the answer to', schema: { type: 'string' } }],
    response: { status: 200, description: 'the map', id: 'MetadataResponse', schema: responses.metadataResponse },
  },
  {
    method: 'get',
    path: C.topics,
    operationId: 'listTopics',
    summary: 'Every topic with its partition count and replication factor',
    tag: 'topics',
    response: { status: 200, description: 'the topics', id: 'TopicListResponse', schema: responses.topicListResponse },
  },
  {
    method: 'post',
    path: C.topics,
    operationId: 'createTopic',
    summary: 'Create a topic (409 TOPIC_EXISTS when it exists, 503 NOT_ENOUGH_BROKERS when too few brokers are alive)',
    tag: 'topics',
    request: { id: 'CreateTopicRequest', schema: createTopicRequest },
    response: { status: 201, description: 'created; the brokers were told before the answer', id: 'TopicDescription', schema: responses.topicDescription },
  },
  {
    method: 'get',
    path: C.topic,
    operationId: 'describeTopic',
    summary: 'Where each partition lives, its status, epoch, ISR and high watermark',
    tag: 'topics',
    response: { status: 200, description: 'the topic', id: 'TopicDescription', schema: responses.topicDescription },
  },
  {
    method: 'delete',
    path: C.topic,
    operationId: 'deleteTopic',
    summary: 'Delete a topic and its records',
    tag: 'topics',
    response: { status: 204, description: 'deleted' },
  },
  {
    method: 'patch',
    path: C.topic,
    operationId: 'alterTopic',
    summary: 'Change a topic\'s retention (retentionMs, retentionBytes; -1 for no limit); the brokers apply it from their next map',
    tag: 'topics',
    request: { id: 'AlterTopicRequest', schema: alterTopicRequest },
    response: { status: 200, description: 'the topic with its new settings', id: 'TopicDescription', schema: responses.topicDescription },
  },
  {
    method: 'post',
    path: C.topicPurge,
    operationId: 'purgeTopic',
    summary: 'Empty every partition (its log start moves to its high watermark); the topic, its offset numbering and its groups stay',
    tag: 'topics',
    response: { status: 200, description: 'where each partition starts now', id: 'PurgeTopicResponse', schema: responses.purgeTopicResponse },
  },
  {
    method: 'post',
    path: C.routedProduce,
    operationId: 'produceRouted',
    summary: "Produce through the coordinator: each record's key picks its partition, and the coordinator forwards to the primaries",
    tag: 'records',
    request: { id: 'RoutedProduceRequest', schema: routedProduceRequest },
    response: { status: 200, description: 'stored on every in-sync replica', id: 'RoutedProduceResponse', schema: responses.routedProduceResponse },
  },
  {
    method: 'post',
    path: C.producers,
    operationId: 'initProducer',
    summary:
      'A new producer id (epoch 0) for an idempotent producer, which stamps it and per-partition sequence numbers into its record batches; any authenticated principal may get one',
    tag: 'records',
    response: { status: 200, description: 'the producer id and epoch', id: 'InitProducerResponse', schema: responses.initProducerResponse },
  },
  {
    method: 'get',
    path: C.brokers,
    operationId: 'listBrokers',
    summary: 'Every registered broker: liveness, primaries, replicas, draining',
    tag: 'brokers',
    response: { status: 200, description: 'the brokers', id: 'BrokerListResponse', schema: responses.brokerListResponse },
  },
  {
    method: 'post',
    path: C.brokerDrain,
    operationId: 'drainBroker',
    summary: 'Mark a broker draining: moves take every replica off it',
    tag: 'brokers',
    response: { status: 200, description: 'the broker', id: 'BrokerStatus', schema: responses.brokerStatusResponse },
  },
  {
    method: 'delete',
    path: C.brokerDrain,
    operationId: 'undrainBroker',
    summary: 'Stop draining a broker',
    tag: 'brokers',
    response: { status: 200, description: 'the broker', id: 'BrokerStatus', schema: responses.brokerStatusResponse },
  },
  {
    method: 'get',
    path: C.clusterStatus,
    operationId: 'clusterStatus',
    summary: 'Brokers, and the under-replicated and offline partitions',
    tag: 'cluster',
    response: { status: 200, description: 'the status', id: 'ClusterStatusResponse', schema: responses.clusterStatusResponse },
  },
  {
    method: 'get',
    path: C.clusterEvents,
    operationId: 'clusterEvents',
    summary: 'The newest events of the cluster (failovers, ISR changes, moves, brokers up and down), newest last',
    tag: 'cluster',
    query: [{ name: 'limit', description: 'how many events (default 100)', schema: { type: 'integer', minimum: 1, maximum: 100_000 } }],
    response: { status: 200, description: 'the events', id: 'ClusterEventsResponse', schema: responses.clusterEventsResponse },
  },
  {
    method: 'get',
    path: C.groups,
    operationId: 'listGroups',
    summary: 'Every consumer group',
    tag: 'groups',
    response: { status: 200, description: 'the groups', id: 'GroupListResponse', schema: responses.groupListResponse },
  },
  {
    method: 'get',
    path: C.group,
    operationId: 'describeGroup',
    summary: 'A group: members and the partitions each owns',
    tag: 'groups',
    response: { status: 200, description: 'the group', id: 'GroupDescription', schema: responses.groupDescription },
  },
  {
    method: 'post',
    path: C.groupJoin,
    operationId: 'joinGroup',
    summary: 'Join a group (or rejoin with the member id given before); answers the assignment',
    tag: 'groups',
    request: { id: 'JoinGroupRequest', schema: joinGroupRequest },
    response: { status: 200, description: 'the membership', id: 'GroupMembership', schema: responses.groupMembership },
  },
  {
    method: 'post',
    path: C.groupHeartbeat,
    operationId: 'groupHeartbeat',
    summary: 'Keep a membership alive and acknowledge the generation whose assignment the member applied',
    tag: 'groups',
    request: { id: 'GroupHeartbeatRequest', schema: groupHeartbeatRequest },
    response: { status: 200, description: 'the membership', id: 'GroupMembership', schema: responses.groupMembership },
  },
  {
    method: 'post',
    path: C.authToken,
    operationId: 'issueToken',
    summary: "Exchange a principal's secret (HTTP Basic: principal:secret) for a signed token, valid --token-ttl-ms; 401 UNAUTHORIZED otherwise",
    tag: 'auth',
    public: true,
    response: { status: 200, description: 'the token', id: 'TokenResponse', schema: responses.tokenResponse },
  },
  {
    method: 'get',
    path: C.users,
    operationId: 'listPrincipals',
    summary: 'Every principal (cluster admin)',
    tag: 'auth',
    response: { status: 200, description: 'the principals', id: 'PrincipalListResponse', schema: responses.principalListResponse },
  },
  {
    method: 'post',
    path: C.users,
    operationId: 'createPrincipal',
    summary: 'Create a principal with a given or generated secret, shown once (409 PRINCIPAL_EXISTS; cluster admin)',
    tag: 'auth',
    request: { id: 'CreatePrincipalRequest', schema: createPrincipalRequest },
    response: { status: 201, description: 'created', id: 'PrincipalSecretResponse', schema: responses.principalSecretResponse },
  },
  {
    method: 'delete',
    path: C.user,
    operationId: 'deletePrincipal',
    summary: 'Delete a principal: its tokens stop working (cluster admin)',
    tag: 'auth',
    response: { status: 204, description: 'deleted' },
  },
  {
    method: 'post',
    path: C.userSecret,
    operationId: 'rotateSecret',
    summary: "Replace a principal's secret (given or generated, shown once); tokens of the old one stop working (cluster admin)",
    tag: 'auth',
    request: { id: 'RotateSecretRequest', schema: rotateSecretRequest },
    response: { status: 200, description: 'the new secret', id: 'PrincipalSecretResponse', schema: responses.principalSecretResponse },
  },
  {
    method: 'get',
    path: C.acls,
    operationId: 'listAcls',
    summary: 'The ACLs, optionally of one principal (cluster admin)',
    tag: 'auth',
    query: [{ name: 'principal', description: 'only the ACLs of this principal', schema: { type: 'string' } }],
    response: { status: 200, description: 'the ACLs', id: 'AclListResponse', schema: responses.aclListResponse },
  },
  {
    method: 'post',
    path: C.acls,
    operationId: 'addAcl',
    summary: 'Allow a principal an operation on a topic, a group or the cluster (201 added, 200 when it existed; cluster admin)',
    tag: 'auth',
    request: { id: 'AclEntry', schema: aclEntry },
    response: { status: 201, description: 'added', id: 'AclAddResponse', schema: responses.aclAddResponse },
  },
  {
    method: 'post',
    path: C.aclsRemove,
    operationId: 'removeAcl',
    summary: 'Remove an ACL (cluster admin)',
    tag: 'auth',
    request: { id: 'AclEntry', schema: aclEntry },
    response: { status: 200, description: 'whether it existed', id: 'AclRemoveResponse', schema: responses.aclRemoveResponse },
  },
  {
    method: 'post',
    path: C.groupLeave,
    operationId: 'leaveGroup',
    summary: 'Leave a group',
    tag: 'groups',
    request: { id: 'LeaveGroupRequest', schema: leaveGroupRequest },
    response: { status: 204, description: 'left' },
  },
  {
    method: 'post',
    path: C.groupResetOffsets,
    operationId: 'resetGroupOffsets',
    summary:
      "Reset a group's committed offsets on a topic (to earliest, latest, an offset, a time, or shifted), clamped to [log start, high watermark]; " +
      'a dry run unless execute is true. Refused (GROUP_NOT_EMPTY) while the group has live members; creates an empty group when there is none',
    tag: 'groups',
    request: { id: 'ResetOffsetsRequest', schema: resetOffsetsRequest },
    response: { status: 200, description: 'the current and new offset per partition', id: 'ResetOffsetsResponse', schema: responses.resetOffsetsResponse },
  },
  {
    method: 'delete',
    path: C.group,
    operationId: 'deleteGroup',
    summary: 'Delete a group and its committed offsets; refused (GROUP_NOT_EMPTY) while it has live members',
    tag: 'groups',
    response: { status: 204, description: 'deleted' },
  },
];

const SUBSCRIPTION_OPERATIONS: Operation[] = [
  {
    method: 'post',
    path: C.subscriptions,
    operationId: 'createSubscription',
    summary:
      "Push a topic's records to an HTTP endpoint (signed, in order per partition, retried, dead-lettered); needs consume on the topic and produce on the dead-letter topic, " +
      'and is suspended while its creator loses either; 409 SUBSCRIPTION_EXISTS; 503 UNAVAILABLE (retry) when it starts from the end (the default) and the end of a partition ' +
      'is not known yet (no report from its primary since the coordinator started, or no live primary)',
    tag: 'subscriptions',
    request: { id: 'CreateSubscriptionRequest', schema: createSubscriptionRequest },
    response: { status: 201, description: 'created, with its signing secret (shown once)', id: 'CreatedSubscription', schema: subscriptionResponses.createdSubscription },
  },
  {
    method: 'get',
    path: C.subscriptions,
    operationId: 'listSubscriptions',
    summary: 'The push subscriptions on topics the caller may consume from (every one for a cluster admin)',
    tag: 'subscriptions',
    response: { status: 200, description: 'the subscriptions', id: 'SubscriptionListResponse', schema: subscriptionResponses.subscriptionListResponse },
  },
  {
    method: 'get',
    path: C.subscription,
    operationId: 'describeSubscription',
    summary: 'A subscription with, per partition, its delivering broker, next offset, lag, attempts and last error; needs consume on its topic',
    tag: 'subscriptions',
    response: { status: 200, description: 'the subscription', id: 'SubscriptionDescription', schema: subscriptionResponses.subscriptionDescription },
  },
  {
    method: 'post',
    path: C.subscriptionPause,
    operationId: 'pauseSubscription',
    summary: 'Stop delivering (progress is kept); needs consume on its topic',
    tag: 'subscriptions',
    response: { status: 200, description: 'the subscription', id: 'Subscription', schema: subscriptionResponses.subscription },
  },
  {
    method: 'post',
    path: C.subscriptionResume,
    operationId: 'resumeSubscription',
    summary: 'Deliver again from where it stopped (once not suspended too); needs consume on its topic',
    tag: 'subscriptions',
    response: { status: 200, description: 'the subscription', id: 'Subscription', schema: subscriptionResponses.subscription },
  },
  {
    method: 'delete',
    path: C.subscription,
    operationId: 'deleteSubscription',
    summary: "Delete a subscription; its group's committed offsets are then marked deleted on every partition, in the background; needs consume on its topic",
    tag: 'subscriptions',
    response: { status: 204, description: 'deleted' },
  },
];

const B = BROKER_ROUTES;
const BROKER_OPERATIONS: Operation[] = [
  {
    method: 'post',
    path: B.produceBatches,
    operationId: 'produceBatches',
    summary:
      'Append record batches to partitions this broker leads, many partitions per request; each partition answers on its own (NOT_PRIMARY names the primary), once every in-sync replica holds its batches',
    tag: 'records',
    binaryRequest: {
      contentType: FRAME_CONTENT_TYPE,
      description:
        'A frame: a uint32 (big-endian) head length, a JSON head {"partitions":[{"topic","partition","bytes"}]}, then per partition ' +
        '`bytes` of whole Kafka RecordBatch v2 (magic 2) batches, CRC-32C checked, uncompressed',
    },
    response: { status: 200, description: 'a result or an error per partition', id: 'ProduceBatchesResponse', schema: responses.produceBatchesResponse },
  },
  {
    method: 'post',
    path: B.produce,
    operationId: 'produce',
    summary: "Append records to a partition on its primary (421 NOT_PRIMARY names the primary); answered once every in-sync replica holds them",
    tag: 'records',
    request: { id: 'ProduceRequest', schema: produceRequest },
    headers: [
      {
        name: IDEMPOTENCY_KEY_HEADER,
        description:
          "stores the request once per key within the broker's idempotency window (default 2 minutes): a repeat is answered with the first offsets; every record carries the key as a header of this name",
        schema: { type: 'string', minLength: 1, maxLength: 256, pattern: '^[\\x20-\\x7e]+$' },
      },
    ],
    response: { status: 200, description: 'stored on every in-sync replica', id: 'ProduceResponse', schema: responses.produceResponse },
  },
  {
    method: 'post',
    path: B.fetch,
    operationId: 'fetch',
    summary:
      'Read records below the high watermark from partitions this broker leads; long-polls up to waitMs when none has any. ' +
      'With `Accept: application/vnd.tessera.frame` the answer is a frame of whole stored RecordBatches per partition instead of JSON; ' +
      'in JSON, a record whose bytes are not UTF-8 has key, value and headers in base64 and "encoding": "base64"',
    tag: 'records',
    request: { id: 'FetchRequest', schema: fetchRequest },
    response: { status: 200, description: 'records, or an error, per partition', id: 'FetchResponse', schema: responses.fetchResponse },
  },
  {
    method: 'post',
    path: B.commit,
    operationId: 'commit',
    summary: "Commit a group's next offsets to read, on the partitions' primaries (stored on every in-sync replica)",
    tag: 'groups',
    request: { id: 'CommitRequest', schema: commitRequest },
    response: { status: 200, description: 'a result per partition', id: 'CommitResponse', schema: responses.commitResponse },
  },
  {
    method: 'post',
    path: B.committedOffsets,
    operationId: 'committedOffsets',
    summary: "A group's committed offsets on partitions this broker leads",
    tag: 'groups',
    request: { id: 'CommittedOffsetsRequest', schema: committedOffsetsRequest },
    response: { status: 200, description: 'an offset, or an error, per partition', id: 'CommittedOffsetsResponse', schema: responses.committedOffsetsResponse },
  },
  {
    method: 'post',
    path: B.listOffsets,
    operationId: 'listOffsets',
    summary:
      'Offsets by position on partitions this broker leads: "earliest" (the log start), "latest" (the high watermark), or {"timestamp": ms}, ' +
      'the first offset whose record timestamp is at or after it (the high watermark when none is)',
    tag: 'records',
    request: { id: 'ListOffsetsRequest', schema: listOffsetsRequest },
    response: { status: 200, description: 'an offset, or an error, per partition', id: 'ListOffsetsResponse', schema: responses.listOffsetsResponse },
  },
  {
    method: 'get',
    path: B.partitionOffsets,
    operationId: 'partitionOffsets',
    summary: "One partition's offset by position (as /list-offsets), on its primary; errors as the status",
    tag: 'records',
    query: [
      {
        name: 'at',
        description: 'earliest (the log start), latest (the high watermark), or epoch milliseconds (the first offset whose record timestamp is at or after it)',
        schema: { type: 'string', pattern: '^(earliest|latest|[0-9]{1,16})$' },
      },
    ],
    response: { status: 200, description: 'the offset', id: 'PartitionOffset', schema: responses.partitionOffset },
  },
];

export function operations(service: ServiceName): Operation[] {
  return [...common(service), ...(service === 'coordinator' ? [...COORDINATOR_OPERATIONS, ...SUBSCRIPTION_OPERATIONS] : BROKER_OPERATIONS)];
}

/** `/topics/:topic` → `/topics/{topic}`. */
export function openApiPath(route: string): string {
  return route.replace(/:([A-Za-z]+)/g, '{$1}');
}

const componentRef = (id: string) => ({ $ref: `#/components/schemas/${id}` });

/** Drops the keys JSON Schema output adds for a standalone document. */
function bare(schema: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _schema, $id: _id, ...rest } = schema;
  return rest;
}

function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  return bare(z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' }) as Record<string, unknown>);
}

/** The OpenAPI 3.1 document of one service. */
export function openApiDocument(service: ServiceName): Record<string, unknown> {
  const ops = operations(service);
  const registry = z.registry<{ id: string }>();
  const named = new Map<string, z.ZodType>([['ErrorBody', responses.errorBody]]);
  for (const op of ops) {
    if (op.request) named.set(op.request.id, op.request.schema);
    if (op.response.id && op.response.schema) named.set(op.response.id, op.response.schema);
  }
  for (const [id, schema] of named) registry.add(schema, { id });
  const generated = z.toJSONSchema(registry, {
    target: 'draft-2020-12',
    io: 'input',
    unrepresentable: 'any',
    uri: (id) => `#/components/schemas/${id}`,
  }).schemas;
  const schemas: Record<string, unknown> = {};
  for (const id of [...named.keys()].sort()) schemas[id] = bare(generated[id] as Record<string, unknown>);

  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of ops) {
    const path = openApiPath(op.path);
    const parameters = [
      ...[...op.path.matchAll(/:([A-Za-z]+)/g)].map(([, name]) => ({
        name,
        in: 'path',
        required: true,
        description: PARAMS[name].description,
        schema: jsonSchema(PARAMS[name].schema),
      })),
      ...(op.query ?? []).map((q) => ({ name: q.name, in: 'query', required: false, description: q.description, schema: q.schema })),
      ...(op.headers ?? []).map((h) => ({ name: h.name, in: 'header', required: false, description: h.description, schema: h.schema })),
    ];
    const success: Record<string, unknown> = { description: op.response.description };
    if (op.response.text) success.content = { 'text/plain': { schema: { type: 'string' } } };
    else if (op.response.id) success.content = { 'application/json': { schema: componentRef(op.response.id) } };
    const operation: Record<string, unknown> = {
      operationId: op.operationId,
      summary: op.summary,
      tags: [op.tag],
      ...(op.operationId === 'issueToken' ? { security: [{ principalSecret: [] }] } : op.public ? { security: [] } : {}),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(op.request ? { requestBody: { required: true, content: { 'application/json': { schema: componentRef(op.request.id) } } } } : {}),
      ...(op.binaryRequest
        ? {
            requestBody: {
              required: true,
              description: op.binaryRequest.description,
              content: { [op.binaryRequest.contentType]: { schema: { type: 'string', contentMediaType: op.binaryRequest.contentType } } },
            },
          }
        : {}),
      responses: {
        [String(op.response.status)]: success,
        default: {
          description: 'an error: 4xx for a request that cannot succeed as sent, 5xx for one that may later (see `retriable`)',
          content: { 'application/json': { schema: componentRef('ErrorBody') } },
        },
      },
    };
    (paths[path] ??= {})[op.method] = operation;
  }

  return {
    openapi: '3.1.0',
    info: {
      title: service === 'coordinator' ? 'Tessera coordinator' : 'Tessera broker',
      version: API_VERSION,
      description:
        service === 'coordinator'
          ? 'The control plane of a Tessera cluster: topics, the cluster map, consumer groups, brokers, routed produce, principals and ACLs. ' +
            'Every body is JSON; every error is {"error": {"code", "message", "retriable"}}.'
          : 'A Tessera broker: produce to the partitions it leads, fetch, and consumer group offsets. ' +
            'Every body is JSON; every error is {"error": {"code", "message", "retriable"}}.',
    },
    servers: [{ url: service === 'coordinator' ? 'https://127.0.0.1:7070' : 'https://127.0.0.1:7071' }],
    tags: [...new Set(ops.map((op) => op.tag))].map((name) => ({ name })),
    // With authentication on (the default) every operation but the public ones needs a token
    // from POST /auth/token; the token exchange itself takes the principal's secret by HTTP Basic.
    security: [{ bearerToken: [] }],
    paths,
    components: {
      schemas,
      securitySchemes: {
        bearerToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'a token from POST /auth/token' },
        ...(service === 'coordinator' ? { principalSecret: { type: 'http', scheme: 'basic', description: 'principal name and secret, for POST /auth/token only' } } : {}),
      },
    },
  };
}
