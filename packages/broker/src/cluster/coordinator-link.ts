/**
 * The broker's link to the coordinator: registers, heartbeats every heartbeatMs with every
 * replica's {epoch, leo, hw, role}, refreshes the cluster map when its version changes (or on
 * demand), asks for ISR changes, and remembers group generations. When the coordinator is
 * unreachable the broker keeps serving with the last map it applied.
 */
import {
  COORDINATOR_ROUTES,
  JsonHttpClient,
  type ClusterSigner,
  type TlsClientOptions,
  type BrokerHeartbeatResponse,
  type IsrChangeRequest,
  type MetadataResponse,
  type PartitionAssignment,
  type ReassignCompleteRequest,
  type ReplicaReport,
  type SubscriptionReport,
} from '@tessera/protocol';
import type { Logger } from '@tessera/service';
import type { ClusterPort } from '../replication/ports.js';

export interface CoordinatorLinkOptions {
  brokerId: number;
  /** This broker's advertised URL (for clients). */
  url: string;
  /** Where the coordinator and other brokers reach this broker (default: `url`). */
  internalUrl?: string;
  coordinatorUrl: string;
  heartbeatMs: number;
  timeoutMs: number;
  /** What the coordinator's certificate must chain to, when it serves HTTPS. */
  tls?: TlsClientOptions;
  /** Signs every call as this broker (service identity). */
  signer?: ClusterSigner;
  logger: Logger;
  reports: () => ReplicaReport[];
  /** Progress of the push subscription partitions delivered here. */
  subscriptionReports?: () => SubscriptionReport[];
  /** Sees every heartbeat answer (the auth version rides on it). */
  onHeartbeatAnswer?: (answer: BrokerHeartbeatResponse) => void;
  apply: (metadata: MetadataResponse, fetchSeq: number, first: boolean) => Promise<void>;
}

/** Most often a client's request makes this broker fetch the cluster map (`requestRefreshForCaller`). */
const CALLER_REFRESH_INTERVAL_MS = 250;

export class CoordinatorLink implements ClusterPort {
  readonly brokerId: number;
  registered = false;
  /** True once a cluster map has been applied. */
  loaded = false;
  appliedVersion = -1;
  /** The last cluster map applied. */
  metadata: MetadataResponse | undefined;
  private readonly http: JsonHttpClient;
  /** Every broker's URLs from the last map: `url` for clients, `internalUrl` for replication. */
  private readonly brokers = new Map<number, { url: string; internalUrl: string }>();
  private readonly generations = new Map<string, number>();
  private isrSeq = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private tickDone: Promise<void> = Promise.resolve();
  private runningRefresh: Promise<void> | undefined;
  private queuedRefresh: Promise<void> | undefined;
  private unreachableSinceMs: number | undefined;
  private lastCallerRefreshMs = -Infinity;
  /**
   * A refresh asked for failed (the coordinator did not answer): the next heartbeat answered
   * fetches the map, even at the version already applied. The caller asked because the map it
   * applied says less than it needs (an ISR skipped while an expansion was out, a deposition).
   */
  private refreshOwed = false;

  constructor(private readonly options: CoordinatorLinkOptions) {
    this.brokerId = options.brokerId;
    this.http = new JsonHttpClient({ timeoutMs: options.timeoutMs, maxSockets: 8, tls: options.tls, signer: options.signer });
    this.brokers.set(options.brokerId, { url: options.url, internalUrl: options.internalUrl ?? options.url });
  }

  /** The URLs are known only once the server listens (port 0 picks one). */
  setUrl(url: string, internalUrl: string = url): void {
    this.options.url = url;
    this.options.internalUrl = internalUrl;
    this.brokers.set(this.brokerId, { url, internalUrl });
  }

  start(): void {
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await Promise.allSettled([this.tickDone, this.runningRefresh, this.queuedRefresh]);
    this.http.close();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.tickDone = this.tick().finally(() => this.schedule(this.options.heartbeatMs));
    }, delayMs);
  }

  private async tick(): Promise<void> {
    try {
      const path = this.registered ? COORDINATOR_ROUTES.brokerHeartbeat : COORDINATOR_ROUTES.brokerRegister;
      const self = { id: this.brokerId, url: this.options.url, internalUrl: this.options.internalUrl ?? this.options.url };
      const subscriptions = this.options.subscriptionReports?.() ?? [];
      const body = this.registered
        ? { ...self, replicas: this.options.reports(), ...(subscriptions.length > 0 ? { subscriptions } : {}) }
        : self;
      const answer = await this.http.post<BrokerHeartbeatResponse>(this.options.coordinatorUrl + path, body, {
        timeoutMs: Math.max(this.options.heartbeatMs, this.options.timeoutMs),
      });
      if (!this.registered) {
        this.registered = true;
        this.options.logger.info({ coordinator: this.options.coordinatorUrl }, 'registered with the coordinator');
      }
      if (this.unreachableSinceMs !== undefined) {
        this.options.logger.info({ downMs: Date.now() - this.unreachableSinceMs }, 'coordinator reachable again');
        this.unreachableSinceMs = undefined;
      }
      for (const [group, generation] of Object.entries(answer.groups ?? {})) this.generations.set(group, generation);
      this.options.onHeartbeatAnswer?.(answer);
      // Not awaited: applying a map can take long (a dropped replica's log is deleted), and the
      // coordinator declares a broker dead whose heartbeats stop for brokerTimeoutMs.
      if ((!this.loaded && this.runningRefresh === undefined) || (this.loaded && answer.metadataVersion !== this.appliedVersion)) {
        this.requestMetadataRefresh(`map version ${answer.metadataVersion}`);
      } else if (this.refreshOwed) {
        this.requestMetadataRefresh('a refresh asked for earlier failed');
      }
    } catch (error) {
      if (this.unreachableSinceMs === undefined) {
        this.unreachableSinceMs = Date.now();
        this.options.logger.warn(
          { err: (error as Error).message },
          'coordinator call failed; serving with the last known cluster map',
        );
      }
    }
  }

  /**
   * Fetches and applies the cluster map. Refreshes are serialized (so maps apply in order)
   * and coalesced: callers arriving while one runs share the next one.
   */
  refreshMetadata(): Promise<void> {
    if (this.queuedRefresh) return this.queuedRefresh;
    const previous = this.runningRefresh ?? Promise.resolve();
    const next: Promise<void> = previous
      .catch(() => undefined)
      .then(async () => {
        this.queuedRefresh = undefined;
        this.runningRefresh = next;
        try {
          await this.fetchAndApply();
        } finally {
          if (this.runningRefresh === next) this.runningRefresh = undefined;
        }
      });
    this.queuedRefresh = next;
    return next;
  }

  /**
   * A refresh a client's request asks for (it routes by a newer map than this broker's): at
   * most one per CALLER_REFRESH_INTERVAL_MS, as clients may ask as often as they like, also
   * while the coordinator cannot answer.
   */
  requestRefreshForCaller(reason: string): void {
    const now = performance.now();
    if (now - this.lastCallerRefreshMs < CALLER_REFRESH_INTERVAL_MS) return;
    this.lastCallerRefreshMs = now;
    this.requestMetadataRefresh(reason);
  }

  requestMetadataRefresh(reason: string): void {
    if (this.stopped) return;
    this.options.logger.debug({ reason }, 'metadata refresh requested');
    this.refreshOwed = false;
    this.refreshMetadata().catch((error: Error) => {
      this.refreshOwed = true;
      this.options.logger.warn({ err: error.message, reason }, 'metadata refresh failed; fetching again after the next heartbeat');
    });
  }

  private async fetchAndApply(): Promise<void> {
    if (this.stopped) return;
    const fetchSeq = this.isrSeq;
    const metadata = await this.http.get<MetadataResponse>(this.options.coordinatorUrl + COORDINATOR_ROUTES.metadata);
    if (this.stopped) return;
    for (const broker of metadata.brokers) {
      this.brokers.set(broker.id, { url: broker.url, internalUrl: broker.internalUrl ?? broker.url });
    }
    const first = !this.loaded;
    await this.options.apply(metadata, fetchSeq, first);
    if (metadata.version !== this.appliedVersion) {
      this.options.logger.debug({ version: metadata.version }, 'cluster map applied');
    }
    this.appliedVersion = metadata.version;
    this.metadata = metadata;
    this.loaded = true;
  }

  /** The primary of a partition in the last map: undefined when the map has no such partition. */
  primaryOf(topic: string, partition: number): { primary: number | null } | undefined {
    const assignment = this.metadata?.topics.find((t) => t.name === topic)?.partitions.find((p) => p.partition === partition);
    return assignment === undefined ? undefined : { primary: assignment.primary };
  }

  /** The generation of `group` from the latest heartbeat answer (undefined when never seen). */
  generation(group: string): number | undefined {
    return this.generations.get(group);
  }

  /** Where this broker reaches broker `id` (for replication). */
  brokerUrl(id: number): string | undefined {
    return this.brokers.get(id)?.internalUrl;
  }

  /** Broker `id` as clients know it, for NOT_PRIMARY answers. */
  brokerRef(id: number | null): { id: number; url: string } | null {
    if (id === null) return null;
    const broker = this.brokers.get(id);
    return broker === undefined ? null : { id, url: broker.url };
  }

  changeIsr(request: IsrChangeRequest): Promise<PartitionAssignment> {
    return this.http.post<PartitionAssignment>(this.options.coordinatorUrl + COORDINATOR_ROUTES.isr, request);
  }

  completeReassignment(request: ReassignCompleteRequest): Promise<PartitionAssignment> {
    return this.http.post<PartitionAssignment>(this.options.coordinatorUrl + COORDINATOR_ROUTES.reassignComplete, request);
  }

  nextIsrSeq(): number {
    return ++this.isrSeq;
  }
}
