/**
 * Wires a broker together: the HTTP edge, the replicas, the replication client and the
 * coordinator link. `startBroker` listens, then registers in the background; /ready turns
 * true once the broker is registered and has applied its assignments.
 */
import { ClusterSigner, DEFAULT_MAX_REQUEST_BYTES, DataHttpClient, JsonHttpClient, brokerNode } from '@tessera/protocol';
import { StorageSpace, createHttpService, createLogger, registerDiskMetrics } from '@tessera/service';
import type { AddressInfo } from 'node:net';
import { AuthSync } from './auth/auth-sync.js';
import { CoordinatorLink, reconcile } from './cluster/index.js';
import { RetentionLoop } from './retention/retention-loop.js';
import { DEFAULT_CONFIG, DEFAULT_LIMITS, type BrokerConfig, type BrokerLimits } from './config.js';
import { mountRoutes } from './http/routes.js';
import { BrokerMetrics } from './metrics/broker-metrics.js';
import { groupLag } from './metrics/group-lag.js';
import { PartitionSet } from './partition/index.js';
import { PairExchanges } from './replication/index.js';
import { REPLICATION_STREAM_PATH } from './replication/stream/framing.js';
import { ReplicationStreamServer } from './replication/stream/stream-server.js';
import { DataStreamServer } from './http/data-stream.js';
import { routeUpgrades } from './http/upgrades.js';
import { BrokerStore, migrateLegacyLayout } from './storage/index.js';
import { DeadLetterWriter, SubscriptionDeliveries, SubscriptionMetrics } from './subscriptions/index.js';

export interface RunningBroker {
  url: string;
  close(): Promise<void>;
}

/** Required: id and dataDir; everything else has the contract's defaults. */
export type BrokerOptions = Partial<BrokerConfig> & Pick<BrokerConfig, 'id' | 'dataDir'>;

export async function startBroker(options: BrokerOptions): Promise<RunningBroker> {
  const config: BrokerConfig = { ...DEFAULT_CONFIG, ...definedOnly(options) } as BrokerConfig;
  const limits: BrokerLimits = { ...DEFAULT_LIMITS, ...definedOnly(options.limits ?? {}) };
  const logger =
    config.logger ?? createLogger('broker', { brokerId: config.id }, { level: config.logLevel, pretty: config.logPretty });

  // Every call to another service carries this broker's signature and trusts the cluster's CA.
  const signer = config.clusterSecrets ? new ClusterSigner(config.clusterSecrets, brokerNode(config.id)) : undefined;
  const peers = new JsonHttpClient({ timeoutMs: config.replicaTimeoutMs, maxSockets: 64, tls: config.clientTls, signer });
  // A broken invariant or a failed storage write: the broker cannot go on without risking its logs.
  const onFatal =
    config.onFatal ??
    ((error: Error) => {
      logger.fatal({ err: error }, 'stopping: invariant violated or storage failed');
      process.exit(1);
    });
  const metrics = new BrokerMetrics();
  const store = BrokerStore.open(config.dataDir, config.durability, {
    producerStateExpiryMs: config.producerStateExpiryMs,
    idempotencyWindowMs: config.idempotencyWindowMs,
  });
  store.onFatal = (error) => onFatal(error as Error);
  store.onCommit = (_writes, ms) => metrics.groupCommitLatency.observe(ms / 1000);
  try {
    await migrateLegacyLayout(config.dataDir, store, logger);
  } catch (error) {
    await store.close();
    throw error;
  }
  const client = new PairExchanges({
    brokerId: config.id,
    timeoutMs: config.replicaTimeoutMs,
    maxExchangeBytes: limits.maxExchangeBytes,
    ...(config.clientTls ? { tls: config.clientTls } : {}),
    ...(signer ? { signer } : {}),
    ...(config.replicationTransport ? { transport: config.replicationTransport } : {}),
    onExchange: (seconds) => metrics.replicationLatency.observe(seconds),
  });

  // Client credentials are checked against the coordinator's auth state, refetched when a heartbeat says it changed.
  const auth = new AuthSync(peers, config.coordinatorUrl.replace(/\/+$/, ''), limits.coordinatorTimeoutMs, logger);
  let replicas: PartitionSet | undefined;
  let subscriptions: SubscriptionDeliveries | undefined;
  const link = new CoordinatorLink({
    brokerId: config.id,
    url: config.advertisedUrl ?? '',
    coordinatorUrl: config.coordinatorUrl.replace(/\/+$/, ''),
    heartbeatMs: config.heartbeatMs,
    timeoutMs: limits.coordinatorTimeoutMs,
    tls: config.clientTls,
    signer,
    logger,
    onHeartbeatAnswer: (answer) => {
      auth.seen(answer.authVersion);
      subscriptions?.seen(answer.subscriptionsVersion);
    },
    reports: () => replicas?.all().map((replica) => replica.report()) ?? [],
    subscriptionReports: () => subscriptions?.reports() ?? [],
    apply: async (metadata, fetchSeq, first) => {
      if (replicas) await reconcile(metadata, { brokerId: config.id, replicas, logger, fetchSeq, deleteOrphans: first });
    },
  });
  // A full disk is an operating condition: writes are refused with STORAGE_FULL before they are
  // queued, and a reserve file is released so accepted writes and deletions still commit.
  const storage = StorageSpace.guard(
    store,
    { dataDir: config.dataDir, reserveBytes: config.storageReserveBytes, minFreeBytes: config.storageMinFreeBytes, logger },
    'a storage write failed: disk full',
  );
  replicas = new PartitionSet({
    checkStorage: (what) => storage.checkWritable(what),
    store,
    cluster: link,
    client,
    logger,
    replicaTimeoutMs: config.replicaTimeoutMs,
    limits,
    onFlush: (stats) => {
      metrics.writeBatchRecords.observe(stats.records);
      metrics.flushQueueLatency.observe(stats.queueSeconds);
      metrics.flushLocalLatency.observe(stats.localSeconds);
      metrics.flushReplicateLatency.observe(stats.replicateSeconds);
    },
    onDuplicate: () => metrics.duplicateBatches.inc({}),
  });

  // Push subscriptions: this broker delivers the partitions it leads; dead letters go to their primaries signed as this broker.
  const subscriptionMetrics = new SubscriptionMetrics();
  const deadLetterClient = new DataHttpClient({ timeoutMs: limits.coordinatorTimeoutMs, ...(config.clientTls ? { tls: config.clientTls } : {}), ...(signer ? { signer } : {}) });
  subscriptions = new SubscriptionDeliveries({
    replicas,
    http: peers,
    coordinatorUrl: config.coordinatorUrl.replace(/\/+$/, ''),
    timeoutMs: limits.coordinatorTimeoutMs,
    metrics: subscriptionMetrics,
    deadLetters: new DeadLetterWriter(link, deadLetterClient),
    logger,
  });
  const deliveries = subscriptions;

  const access = auth.accessControl();
  const service = createHttpService({
    service: 'broker',
    id: config.id,
    logger,
    isReady: () => link.registered && link.loaded && auth.loaded,
    access,
    tls: config.tls,
    clusterSecrets: config.clusterSecrets,
    serverLimits: config.serverLimits,
    onInvariantBroken: onFatal,
  });
  const routes = mountRoutes(service, {
    replicas,
    link,
    limits,
    maxValueBytes: config.maxValueBytes,
    logger,
    metrics,
    authorizeProduce: (caller, membersUnchecked, topic) => auth.authorizeProduce(caller, membersUnchecked, topic, service.metrics),
  });
  const held = replicas;
  metrics.register(service, {
    longPollsOpen: () => routes.fetch.pending,
    replicationLag: () =>
      held.all().flatMap((r) => (r.role === 'primary' && r.secondaryId !== null ? [{ topic: r.topic, partition: r.partition, lag: r.replicationLag() }] : [])),
    groupLag: () => {
      const now = Date.now();
      return held.all().flatMap((r) => groupLag(r, now));
    },
    partitions: () => held.all().map((r) => ({ role: r.role, underReplicated: r.underReplicated })),
    replicas: () =>
      held.all().flatMap((r) => (r.isClosed ? [] : [{ ...r.report(), logStartOffset: r.logStartOffset, logSizeBytes: r.store.sizeBytes }])),
  });
  subscriptionMetrics.register(service, () => deliveries.lag());
  registerDiskMetrics(service.registry, config.dataDir);
  const retention = new RetentionLoop({ replicas, logger, checkMs: config.retentionCheckMs, maxBatchesPerPass: limits.retentionMaxBatchesPerPass });
  const server = await service.listen(config.port, config.host);
  // Both streams bound a message as the HTTP edge bounds a request body (size and time to arrive).
  const messageLimits = {
    maxMessageBytes: DEFAULT_MAX_REQUEST_BYTES,
    ...(config.serverLimits?.requestTimeoutMs === undefined ? {} : { messageTimeoutMs: config.serverLimits.requestTimeoutMs }),
  };
  const streams = new ReplicationStreamServer({
    secrets: config.clusterSecrets,
    ...messageLimits,
    handle: routes.replicate,
    onInvariantBroken: onFatal,
    logger,
    onExchange: (seconds, status) =>
      service.metrics.requestDuration.observe({ method: 'STREAM', route: REPLICATION_STREAM_PATH, status: String(status) }, seconds),
    onAuthFailure: (reason) => service.metrics.authFailures.inc({ reason }),
  });
  const dataStreams = new DataStreamServer({
    deps: routes.deps,
    fetch: routes.fetch,
    access,
    metrics: service.metrics,
    membersUnchecked: config.clusterSecrets === undefined,
    ...messageLimits,
    ...(config.serverLimits?.headersTimeoutMs === undefined ? {} : { firstMessageTimeoutMs: config.serverLimits.headersTimeoutMs }),
    bodyBudget: service.bodyBudget,
    logger,
    onInvariantBroken: onFatal,
  });
  routeUpgrades(server, [streams, dataStreams]);
  const port = (server.address() as AddressInfo).port;
  const url = (config.advertisedUrl ?? `${service.scheme}://${config.host}:${port}`).replace(/\/+$/, '');
  const internalUrl = (config.internalUrl ?? url).replace(/\/+$/, '');
  link.setUrl(url, internalUrl);
  logger.info({ url, internalUrl, dataDir: config.dataDir, coordinator: config.coordinatorUrl, durability: config.durability }, 'listening');
  link.start();
  retention.start();
  deliveries.start();

  let closing: Promise<void> | undefined;
  return {
    url,
    close() {
      closing ??= (async () => {
        await retention.stop();
        storage.stop();
        await link.stop();
        await deliveries.close();
        await deadLetterClient.close();
        streams.close();
        dataStreams.close();
        await service.close();
        await replicas.closeAll();
        await client.close();
        logger.info('stopped');
      })();
      return closing;
    },
  };
}

function definedOnly<T extends object>(input: T): Partial<T> {
  return Object.fromEntries(Object.entries(input).filter(([, value]) => value !== undefined)) as Partial<T>;
}
