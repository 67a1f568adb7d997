/**
 * The coordinator, in-process: `startCoordinator(config)` opens the SQLite state, serves
 * the HTTP API and runs the liveness loop until `close()`.
 */
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { COORDINATOR_ROUTES, ClusterSigner, DataHttpClient, JsonHttpClient, TargetPolicy } from '@tessera/protocol';
import { StorageSpace, createHttpService, createLogger, registerDiskMetrics } from '@tessera/service';
import { Cluster } from './cluster/cluster.js';
import { Notifier } from './cluster/notify.js';
import type { CoordinatorConfig } from './config.js';
import { TopicPurger } from './topics/purge.js';
import { GroupManager } from './groups/groups.js';
import { GroupOffsetAdmin } from './groups/offset-admin.js';
import { AuthRegistry } from './auth/registry.js';
import { COORDINATOR_RULES } from './http/access-rules.js';
import { registerAuthRoutes } from './http/auth-routes.js';
import { registerRoutes } from './http/routes.js';
import { registerSubscriptionRoutes } from './http/subscription-routes.js';
import { SubscriptionManager } from './subscriptions/subscriptions.js';
import { registerCoordinatorMetrics } from './metrics/metrics.js';
import { DEFAULT_ROUTING, ProduceRouter } from './routing/produce.js';
import { Store } from './store/store.js';

export { defaultConfig, type CoordinatorConfig } from './config.js';

/** Each call of a group offset reset or delete to a primary (reading or storing offsets). */
const GROUP_OFFSETS_TIMEOUT_MS = 5_000;

const COUNTED_MOVE_STEPS = new Set(['replica_reassigned', 'leadership_transferred', 'replica_dropped']);
/** Most time between two looks for expired groups (less for a short retention). */
const GROUP_EXPIRY_SWEEP_MS = 60_000;
/** How often the deleted subscriptions' groups not marked deleted on every partition yet are tried again. */
const DELETED_GROUP_MARKS_RETRY_MS = 10_000;

export interface RunningCoordinator {
  url: string;
  close(): Promise<void>;
}

export async function startCoordinator(config: CoordinatorConfig): Promise<RunningCoordinator> {
  const logger = createLogger('coordinator', {}, { level: config.logLevel, pretty: config.logPretty });
  const nowMs = () => performance.now();
  const store = new Store(config.dataDir);
  // A full disk is an operating condition: topic creation is refused with STORAGE_FULL, and a
  // reserve file is released so topic deletion and the cluster's own changes still commit.
  const storage = StorageSpace.guard(
    store,
    { dataDir: config.dataDir, reserveBytes: config.storageReserveBytes, minFreeBytes: config.storageMinFreeBytes, logger },
    'a coordinator write failed: disk full',
  );
  store.onWriteFailed = (error) => {
    logger.fatal({ err: error }, 'a coordinator write failed; stopping (a restart loads what is stored)');
    process.exit(1);
  };
  const loaded = store.loadAll();
  let ready = false;
  const auth = await AuthRegistry.open({
    store,
    logger,
    dataDir: config.dataDir,
    enabled: config.auth,
    tokenTtlMs: config.tokenTtlMs,
    bootstrapSecret: config.bootstrapAdminSecret,
    secretChecks: config.secretChecks,
  });
  const service = createHttpService({
    service: 'coordinator',
    logger,
    isReady: () => ready,
    access: auth.clientAuth.accessControl(COORDINATOR_RULES),
    tls: config.tls,
    clusterSecrets: config.clusterSecrets,
    // What only brokers may call: their own registration and liveness, and the changes a primary asks for.
    clusterOnlyPaths: [
      COORDINATOR_ROUTES.brokerRegister,
      COORDINATOR_ROUTES.brokerHeartbeat,
      COORDINATOR_ROUTES.isr,
      COORDINATOR_ROUTES.reassignComplete,
    ],
    serverLimits: config.serverLimits,
  });
  // Calls to brokers are signed as the coordinator and trust the cluster's CA.
  const signer = config.clusterSecrets ? new ClusterSigner(config.clusterSecrets, 'coordinator') : undefined;

  // The metrics read the cluster and the groups at scrape time; both are assigned just below.
  let cluster: Cluster | undefined;
  let groupsRead: GroupManager | undefined;
  let subscriptionsRead: SubscriptionManager | undefined;
  const counters = registerCoordinatorMetrics(service.registry, {
    brokersByState: () => {
      const counts = { alive: 0, dead: 0 };
      for (const b of cluster?.brokers.values() ?? []) counts[b.alive ? 'alive' : 'dead']++;
      return counts;
    },
    partitionsByState: () => cluster?.partitionCounts() ?? { online: 0, 'under-replicated': 0, offline: 0 },
    groupMembers: () => groupsRead?.list().groups.map((g) => ({ group: g.group, members: g.members })) ?? [],
    primarySpread: () => cluster?.primarySpread() ?? 0,
    subscriptionsByState: () => subscriptionsRead?.countsByState() ?? { active: 0, paused: 0, suspended: 0 },
  });

  registerDiskMetrics(service.registry, config.dataDir);

  const notifyClient = new JsonHttpClient({ timeoutMs: config.notifyTimeoutMs, maxSockets: 8, tls: config.clientTls, signer });
  let notifier: Notifier | undefined;
  const theCluster = new Cluster(
    {
      store,
      logger,
      brokerTimeoutMs: config.brokerTimeoutMs,
      nowMs,
      counters,
      onChange: () => notifier?.schedule(),
      maxConcurrentMoves: config.maxConcurrentMoves,
      replaceDeadAfterMs: config.replaceDeadAfterMs,
      brokerStartGraceMs: config.brokerStartGraceMs,
      leadershipBalanceDelayMs: config.leadershipBalanceDelayMs,
      retentionDefaults: {
        retentionMs: config.defaultRetentionMs,
        retentionBytes: config.defaultRetentionBytes,
      },
      // A step that changes where a replica or the leadership lives counts as one move.
      onMoveStep: (type) => {
        if (COUNTED_MOVE_STEPS.has(type)) counters.rebalanceMoves.inc();
      },
    },
    loaded,
  );
  cluster = theCluster;
  notifier = new Notifier(notifyClient, config.notifyTimeoutMs, () => theCluster.liveBrokerUrls(), () => theCluster.version, logger);

  const groups = new GroupManager(
    {
      store,
      partitionCount: (topic) => theCluster.topics.get(topic)?.partitions.length ?? null,
      defaultSessionTimeoutMs: config.groupSessionTimeoutMs,
      nowMs,
      wallMs: Date.now,
      retentionMs: config.groupRetentionMs,
      onRebalance: (group) => counters.groupRebalances.inc(group),
    },
    loaded.groups,
  );
  groupsRead = groups;

  const produceClient = new DataHttpClient({ timeoutMs: DEFAULT_ROUTING.timeoutMs, ...(config.clientTls ? { tls: config.clientTls } : {}), ...(signer ? { signer } : {}) });
  // Group offset administration reads and writes offsets on the primaries, as the coordinator.
  const offsetAdminClient = new JsonHttpClient({ timeoutMs: GROUP_OFFSETS_TIMEOUT_MS, maxSockets: 8, tls: config.clientTls, signer });
  const offsetAdmin = new GroupOffsetAdmin({
    cluster: theCluster,
    groups,
    client: offsetAdminClient,
    timeoutMs: GROUP_OFFSETS_TIMEOUT_MS,
    brokerTimeoutMs: config.brokerTimeoutMs,
  });

  const subscriptions = SubscriptionManager.open({
    store,
    cluster: theCluster,
    targets: new TargetPolicy(config.subscriptionAllowedTargets),
    access: auth,
    marks: offsetAdmin,
    logger,
    heartbeatMs: config.heartbeatMs,
  });
  subscriptionsRead = subscriptions;
  // A subscription delivers on its creator's behalf: each change of principals or ACLs suspends or reinstates those it affects.
  auth.onChange(() => subscriptions.checkSuspensions());
  registerRoutes(service.router, {
    cluster: theCluster,
    allocateProducerId: () => store.allocateProducerId(Date.now()),
    groups,
    offsetAdmin,
    router: new ProduceRouter(theCluster, produceClient),
    notifier,
    purger: new TopicPurger(theCluster, notifyClient, config.notifyTimeoutMs),
    storage,
    heartbeatMs: config.heartbeatMs,
    metrics: service.metrics,
    authVersion: () => auth.version,
    subscriptions,
  });
  registerAuthRoutes(service, auth);
  registerSubscriptionRoutes(service, {
    subscriptions,
    authorize: (ctx, requirement) =>
      auth.clientAuth.authorize(requirement, ctx.state.caller, (ctx.state as { clusterAuthOff?: boolean }).clusterAuthOff === true),
  });

  const server = await service.listen(config.port, config.host);
  const url = `${service.scheme}://${config.host}:${(server.address() as AddressInfo).port}`;
  theCluster.recordEvent('coordinator_started', { url, brokers: theCluster.brokers.size, topics: theCluster.topics.size });

  // Liveness and session checks run often enough to notice a timeout within a fraction of it.
  const tickMs = Math.max(10, Math.min(config.heartbeatMs, Math.floor(config.brokerTimeoutMs / 4), 250));
  // A tick far later than planned means this process did not run (paused, or its event loop
  // stalled): the silence it would see was its own, so nobody is declared dead for it.
  const stallMs = Math.max(4 * tickMs, Math.floor(config.brokerTimeoutMs / 2));
  let lastTickMs = nowMs();
  const timer = setInterval(() => {
    try {
      const now = nowMs();
      if (now - lastTickMs > stallMs) {
        logger.warn({ stalledMs: Math.round(now - lastTickMs) }, 'coordinator did not run for a while: grace for brokers and group members');
        theCluster.extendGrace();
        groups.extendGrace();
      }
      lastTickMs = now;
      theCluster.checkLiveness();
      theCluster.driveMoves();
      groups.expireSessions();
    } catch (error) {
      logger.error({ err: error }, 'liveness check failed');
    }
  }, tickMs);
  // Groups empty for the group retention go with their offsets, one at a time (each deletion
  // writes to every primary of its topic); one that fails is tried again at the next look.
  let sweep: Promise<void> | undefined;
  let stopping = false;
  const expireGroups = async () => {
    for (const group of groups.expiredGroups()) {
      // Asked again: the list is as old as the deletions before this one took.
      if (stopping || !groups.isExpired(group)) continue;
      try {
        const topic = groups.get(group)?.topic;
        await offsetAdmin.delete(group);
        theCluster.recordEvent('group_expired', { group, topic, retentionMs: config.groupRetentionMs });
        logger.info({ group, topic }, 'group expired: empty for the group retention, deleted with its offsets');
      } catch (error) {
        if (!stopping) logger.warn({ group, err: error }, 'expired group not deleted yet; trying again later');
      }
    }
  };
  const expiryTimer =
    config.groupRetentionMs < 0
      ? undefined
      : setInterval(
          () => {
            sweep ??= expireGroups().finally(() => {
              sweep = undefined;
            });
          },
          Math.max(100, Math.min(GROUP_EXPIRY_SWEEP_MS, Math.floor(config.groupRetentionMs / 4))),
        );
  // Deleted subscriptions' groups left without their deletion marks (a primary was down, or the
  // coordinator stopped first) are marked now, and tried again until they are.
  void subscriptions.markDeletedGroups();
  const marksTimer = setInterval(() => void subscriptions.markDeletedGroups(), DELETED_GROUP_MARKS_RETRY_MS);
  ready = true;
  logger.info({ url }, 'listening');

  let closing: Promise<void> | undefined;
  return {
    url,
    close() {
      closing ??= (async () => {
        clearInterval(timer);
        clearInterval(expiryTimer);
        clearInterval(marksTimer);
        stopping = true;
        ready = false;
        await service.close();
        // A deletion under way finishes (its writes to the brokers, then the store) before the store closes.
        await sweep;
        await subscriptions.close();
        await notifier!.close();
        notifyClient.close();
        offsetAdminClient.close();
        await produceClient.close();
        storage.stop();
        store.close();
      })();
      return closing;
    },
  };
}
