/**
 * The coordinator's HTTP API: every route of COORDINATOR_ROUTES, each validating its
 * params and body with the protocol schemas before anything else happens.
 */
import {
  COORDINATOR_ROUTES as R,
  TesseraError,
  brokerHeartbeatRequest,
  brokerIdParam,
  alterTopicRequest,
  createTopicRequest,
  groupHeartbeatRequest,
  groupId,
  isrChangeRequest,
  joinGroupRequest,
  leaveGroupRequest,
  openApiDocument,
  parseOrThrow,
  reassignCompleteRequest,
  resetOffsetsRequest,
  registerBrokerRequest,
  routedProduceRequest,
  topicName,
  type BrokerHeartbeatResponse,
  type BrokerListResponse,
  type InitProducerResponse,
  brokerNode,
} from '@tessera/protocol';
import { type Context, type HttpService, type ServiceMetrics, requireClusterNode } from '@tessera/service';
import type { Cluster } from '../cluster/cluster.js';
import type { Notifier } from '../cluster/notify.js';
import type { GroupManager } from '../groups/groups.js';
import type { GroupOffsetAdmin } from '../groups/offset-admin.js';
import type { ProduceRouter } from '../routing/produce.js';
import type { TopicPurger } from '../topics/purge.js';
import type { SubscriptionManager } from '../subscriptions/subscriptions.js';
import { createTopic } from '../topics/topics.js';
import { SUBSCRIPTION_GROUP_PREFIX } from '../subscriptions/subscriptions.js';

export interface RouteDeps {
  cluster: Cluster;
  /** Hands out producer ids (persisted, never twice). */
  allocateProducerId: () => number;
  groups: GroupManager;
  offsetAdmin: GroupOffsetAdmin;
  router: ProduceRouter;
  notifier: Notifier;
  purger: TopicPurger;
  /** Refuses topic creation with STORAGE_FULL while the disk is nearly full. */
  storage: { checkWritable(what: string): void };
  heartbeatMs: number;
  metrics: ServiceMetrics;
  /** Version of the principals and ACLs, so brokers refetch them when it changes. */
  authVersion: () => number;
  subscriptions: SubscriptionManager;
}

const DEFAULT_EVENTS_LIMIT = 100;
/** The log keeps about 10,000 events; a larger limit simply returns all of them. */
const MAX_EVENTS_LIMIT = 100_000;

const topicParam = (ctx: Context) => parseOrThrow(topicName, ctx.params.topic, 'topic name');
const groupParam = (ctx: Context) => parseOrThrow(groupId, ctx.params.group, 'group id');

/**
 * A group a member may join or an operator may reset: not a push subscription's own group
 * (`subscription.NAME.ID`), whose progress the brokers commit at generation 0. A member's join
 * or a reset would give it a generation of its own, and the partitions would then refuse the
 * delivery's commits.
 */
const memberGroupParam = (ctx: Context) => {
  const group = groupParam(ctx);
  if (group.startsWith(SUBSCRIPTION_GROUP_PREFIX)) {
    throw new TesseraError('INVALID_REQUEST', `group ${group}: groups named ${SUBSCRIPTION_GROUP_PREFIX}… belong to push subscriptions`);
  }
  return group;
};

export function registerRoutes(router: HttpService['router'], deps: RouteDeps): void {
  const { cluster, groups } = deps;
  // Only cluster members reach the broker routes (the HTTP edge checks that); each broker may
  // only speak for itself.
  const asBroker = (ctx: Context, id: number) => requireClusterNode(ctx.state, brokerNode(id), deps.metrics);

  const heartbeatAnswer = (): BrokerHeartbeatResponse => ({
    metadataVersion: cluster.version,
    groups: groups.generations(),
    heartbeatMs: deps.heartbeatMs,
    authVersion: deps.authVersion(),
    subscriptionsVersion: deps.subscriptions.version,
  });

  // The public API's description, built once from the protocol schemas.
  const openApi = openApiDocument('coordinator');
  router.get(R.openapi, (ctx) => {
    ctx.body = openApi;
  });

  router.get(R.metadata, (ctx) => {
    const raw = ctx.query.topics;
    let names: string[] | undefined;
    if (raw !== undefined) {
      const list = (Array.isArray(raw) ? raw.join(',') : raw).split(',').filter((name) => name.length > 0);
      names = list.map((name) => parseOrThrow(topicName, name, 'topic name in ?topics'));
    }
    ctx.body = cluster.metadata(names);
  });

  // ---- topics ----
  router.post(R.topics, async (ctx) => {
    const request = parseOrThrow(createTopicRequest, ctx.state.body);
    deps.storage.checkWritable(`creating topic ${request.name}`);
    const description = createTopic(cluster, request);
    groups.topicChanged(request.name);
    // Wait (bounded) for the brokers to create their replicas, so a produce right after finds them ready.
    await deps.notifier.notifyNow();
    ctx.status = 201;
    ctx.body = description;
  });
  router.get(R.topics, (ctx) => {
    ctx.body = cluster.listTopics();
  });
  router.get(R.topic, (ctx) => {
    ctx.body = cluster.describeTopic(topicParam(ctx));
  });
  router.patch(R.topic, async (ctx) => {
    const name = topicParam(ctx);
    const request = parseOrThrow(alterTopicRequest, ctx.state.body);
    cluster.alterTopicConfig(name, request.config);
    await deps.notifier.notifyNow();
    ctx.body = cluster.describeTopic(name);
  });
  router.post(R.topicPurge, async (ctx) => {
    ctx.body = await deps.purger.purge(topicParam(ctx));
  });
  router.delete(R.topic, async (ctx) => {
    const name = topicParam(ctx);
    cluster.removeTopic(name);
    groups.topicChanged(name);
    await deps.notifier.notifyNow();
    ctx.status = 204;
  });
  router.post(R.routedProduce, async (ctx) => {
    const name = topicParam(ctx);
    const request = parseOrThrow(routedProduceRequest, ctx.state.body);
    ctx.body = await deps.router.produce(name, request);
  });

  // ---- idempotent producers ----
  // Any authenticated caller may get a producer id (the default rule): an id lets it write
  // nothing by itself, and each batch is still checked against the topic's produce ACL.
  router.post(R.producers, (ctx) => {
    const body: InitProducerResponse = { producerId: deps.allocateProducerId(), producerEpoch: 0 };
    ctx.body = body;
  });

  // ---- brokers ----
  router.post(R.brokerRegister, (ctx) => {
    const request = parseOrThrow(registerBrokerRequest, ctx.state.body);
    asBroker(ctx, request.id);
    cluster.brokerSeen(request.id, request.url, request.internalUrl);
    cluster.brokerStarted(request.id);
    ctx.body = heartbeatAnswer();
  });
  router.post(R.brokerHeartbeat, (ctx) => {
    const request = parseOrThrow(brokerHeartbeatRequest, ctx.state.body);
    asBroker(ctx, request.id);
    cluster.brokerSeen(request.id, request.url, request.internalUrl, request.replicas);
    if (request.subscriptions) deps.subscriptions.report(request.id, request.subscriptions);
    ctx.body = heartbeatAnswer();
  });
  router.get(R.brokers, (ctx) => {
    const body: BrokerListResponse = { brokers: cluster.brokerStatuses() };
    ctx.body = body;
  });
  // Drain: moves take every replica off the broker (it can then be removed); DELETE undoes it.
  router.post(R.brokerDrain, (ctx) => {
    ctx.body = cluster.setDraining(parseOrThrow(brokerIdParam, ctx.params.id, 'broker id'), true);
  });
  router.delete(R.brokerDrain, (ctx) => {
    ctx.body = cluster.setDraining(parseOrThrow(brokerIdParam, ctx.params.id, 'broker id'), false);
  });
  router.post(R.isr, (ctx) => {
    const request = parseOrThrow(isrChangeRequest, ctx.state.body);
    asBroker(ctx, request.brokerId);
    ctx.body = cluster.changeIsr(request);
  });
  router.post(R.reassignComplete, (ctx) => {
    const request = parseOrThrow(reassignCompleteRequest, ctx.state.body);
    asBroker(ctx, request.brokerId);
    ctx.body = cluster.completeReassignment(request);
  });

  // ---- cluster ----
  router.get(R.clusterStatus, (ctx) => {
    ctx.body = cluster.status();
  });
  router.get(R.clusterEvents, (ctx) => {
    let limit = DEFAULT_EVENTS_LIMIT;
    if (ctx.query.limit !== undefined) {
      const raw = String(ctx.query.limit);
      limit = Number(raw);
      if (!/^\d+$/.test(raw) || limit < 1 || limit > MAX_EVENTS_LIMIT) {
        throw new TesseraError('INVALID_REQUEST', `limit must be an integer from 1 to ${MAX_EVENTS_LIMIT}, got ${raw}`);
      }
    }
    ctx.body = { events: cluster.events(limit) };
  });

  // ---- groups ----
  router.get(R.groups, (ctx) => {
    ctx.body = groups.list();
  });
  router.get(R.group, (ctx) => {
    ctx.body = groups.describe(groupParam(ctx));
  });
  router.post(R.groupJoin, (ctx) => {
    const group = memberGroupParam(ctx);
    ctx.body = groups.join(group, parseOrThrow(joinGroupRequest, ctx.state.body));
  });
  router.post(R.groupHeartbeat, (ctx) => {
    const group = groupParam(ctx);
    ctx.body = groups.heartbeat(group, parseOrThrow(groupHeartbeatRequest, ctx.state.body));
  });
  router.post(R.groupLeave, (ctx) => {
    const group = groupParam(ctx);
    groups.leave(group, parseOrThrow(leaveGroupRequest, ctx.state.body));
    ctx.status = 204;
  });
  router.post(R.groupResetOffsets, async (ctx) => {
    const group = memberGroupParam(ctx);
    ctx.body = await deps.offsetAdmin.reset(group, parseOrThrow(resetOffsetsRequest, ctx.state.body));
  });
  router.delete(R.group, async (ctx) => {
    await deps.offsetAdmin.delete(groupParam(ctx));
    ctx.status = 204;
  });
}
