/**
 * The client's view of the cluster map (`GET /metadata` on the coordinator).
 *
 * Producers and consumers route by this cache. It refreshes when it is older than
 * `maxAgeMs` (in the background, answering from the cache meanwhile) and when a
 * broker says the map is wrong (NOT_PRIMARY, STALE_EPOCH, PARTITION_NOT_FOUND, or no
 * answer). Calls name the partition's epoch of the map they were routed by, so a broker
 * that has not applied that map yet refuses them (UNKNOWN_EPOCH) instead of serving from a
 * replica the map took from it. While the coordinator is unreachable the last map stays in
 * use, so produce and consume keep working (promise 5 of docs/architecture.md); only a topic
 * this client just changed waits for a map fetched after the change (`invalidate`).
 */
import { COORDINATOR_ROUTES, isNetworkError, isRetriable, isTesseraError, TesseraError } from '@tessera/protocol';
import type { MetadataResponse, PartitionAssignment, TopicMetadata } from '@tessera/protocol';
import type { Connection } from '../connection/connection.js';

/**
 * Background refreshes start at most this often, so a dead coordinator is not asked again
 * on every send or fetch; explicit `refresh()` calls (made between retries, after a
 * backoff) are not limited.
 */
const BACKGROUND_REFRESH_INTERVAL_MS = 250;

export class MetadataCache {
  private current: MetadataResponse | null = null;
  /** `performance.now()` times (a monotonic clock); -Infinity: never. */
  private fetchedAtMs = -Infinity;
  private lastAttemptMs = -Infinity;
  /** Fetches started so far; each fetch is numbered, and a map replaces the cache only if fetched later than it. */
  private started = 0;
  /** The number of the fetch the cached map came from. */
  private applied = 0;
  /**
   * Topics this client changed (made, altered, deleted), each with the number of the last fetch
   * started before the change: a map from that fetch or an earlier one may predate it. Removed
   * once a later fetch's map is cached.
   */
  private readonly changed = new Map<string, number>();
  private inFlight: { seq: number; promise: Promise<MetadataResponse> } | null = null;

  constructor(
    private readonly connection: Connection,
    private readonly maxAgeMs: number,
  ) {}

  /** The cached map, fetched first when there is none; a map older than maxAgeMs is refreshed in the background. */
  async get(): Promise<MetadataResponse> {
    if (this.current === null) return this.refresh();
    if (performance.now() - this.fetchedAtMs > this.maxAgeMs) this.refreshInBackground();
    return this.current;
  }

  /**
   * Fetches the map now (concurrent callers share the request, unless it started before a
   * change this client made). When the coordinator cannot answer and a map is cached, the
   * cached map is returned instead.
   */
  async refresh(): Promise<MetadataResponse> {
    try {
      return await this.fetch();
    } catch (error) {
      if (this.current !== null && isRetriable(error)) return this.current;
      throw error;
    }
  }

  /** Starts a refresh without waiting for it; its failure leaves the cache as it is. */
  refreshInBackground(): void {
    if (performance.now() - this.lastAttemptMs < BACKGROUND_REFRESH_INTERVAL_MS) return;
    this.fetch().catch(() => undefined);
  }

  /**
   * Fetches the map now and caches it, like `refresh()`, but an unreachable coordinator is an
   * error here, not the cached map (`admin.metadata()`).
   */
  fetchNow(): Promise<MetadataResponse> {
    return this.fetch();
  }

  /**
   * This client changed `topic` (made, altered or deleted it): the cached map, and any fetch
   * already under way, may predate the change. Until a map fetched after it is cached, that
   * topic is looked up only in a fresh map (its lookups wait for one, and fail with the
   * coordinator's error when it cannot answer), so this client never routes it by the map of
   * a deleted topic of the same name; the other topics are served from the cache as always.
   */
  invalidate(topic: string): void {
    this.changed.set(topic, this.started);
    this.fetchedAtMs = -Infinity;
  }

  /**
   * A topic's map; an unknown topic triggers one fetch before TOPIC_NOT_FOUND. Only a map the
   * coordinator has just answered can say that a topic does not exist: when it cannot answer,
   * its (retriable) error is thrown, not TOPIC_NOT_FOUND from a cached map older than the topic.
   */
  async topic(name: string): Promise<TopicMetadata> {
    return (await this.lookup(name)).topic;
  }

  /** A topic's map and the map it is part of (for its brokers' URLs), as `topic()`. */
  async lookup(name: string): Promise<{ metadata: MetadataResponse; topic: TopicMetadata }> {
    if (!this.changed.has(name)) {
      const metadata = await this.get();
      const cached = metadata.topics.find((topic) => topic.name === name);
      if (cached !== undefined) return { metadata, topic: cached };
    }
    const metadata = await this.fetch();
    const fresh = metadata.topics.find((topic) => topic.name === name);
    if (fresh !== undefined) return { metadata, topic: fresh };
    throw new TesseraError('TOPIC_NOT_FOUND', `topic ${name} does not exist`);
  }

  /**
   * The cached topic without any I/O (undefined when not cached, or cached before this client
   * changed it): the producer's fast path.
   */
  cachedTopic(name: string): TopicMetadata | undefined {
    if (this.current === null) return undefined;
    if (this.changed.has(name)) {
      this.refreshInBackground();
      return undefined;
    }
    if (performance.now() - this.fetchedAtMs > this.maxAgeMs) this.refreshInBackground();
    return this.current.topics.find((topic) => topic.name === name);
  }

  /**
   * A partition's primary from the cached map without any I/O: undefined when the topic is
   * not cached (or the map predates a change this client made), PARTITION_OFFLINE (thrown)
   * when the map names no primary.
   */
  cachedRoute(topic: string, partition: number): PartitionRoute | undefined {
    const cached = this.cachedTopic(topic);
    return cached === undefined ? undefined : routeIn(this.current!, cached, partition);
  }

  /** The URL of a partition's primary from the cached map, as `cachedRoute`. */
  cachedPrimaryUrl(topic: string, partition: number): string | undefined {
    return this.cachedRoute(topic, partition)?.url;
  }

  /** A partition's primary, or PARTITION_OFFLINE (retriable) when it has none. */
  async route(topic: string, partition: number): Promise<PartitionRoute> {
    const { metadata, topic: found } = await this.lookup(topic);
    return routeIn(metadata, found, partition);
  }

  private fetch(): Promise<MetadataResponse> {
    if (this.inFlight !== null && !this.changedAfterFetch(this.inFlight.seq)) return this.inFlight.promise;
    this.lastAttemptMs = performance.now();
    const seq = ++this.started;
    const promise = this.connection
      .coordinator<MetadataResponse>('GET', COORDINATOR_ROUTES.metadata)
      .then((metadata) => {
        this.apply(seq, metadata);
        return metadata;
      })
      .finally(() => {
        if (this.inFlight?.seq === seq) this.inFlight = null;
      });
    this.inFlight = { seq, promise };
    return promise;
  }

  /** Whether this client changed a topic after fetch `seq` started (its answer may predate the change). */
  private changedAfterFetch(seq: number): boolean {
    for (const before of this.changed.values()) if (seq <= before) return true;
    return false;
  }

  /**
   * Caches the map answered to fetch `seq`, unless a later fetch's answer is cached already.
   * Otherwise the latest answer wins even with a lower version: a coordinator started afresh
   * on an empty data directory counts versions from zero again.
   */
  private apply(seq: number, metadata: MetadataResponse): void {
    if (seq < this.applied) return;
    this.current = metadata;
    this.applied = seq;
    for (const [topic, before] of this.changed) if (seq > before) this.changed.delete(topic);
    this.fetchedAtMs = performance.now();
  }
}

/** Where to send a partition's calls: its primary's URL, and the epoch the map gives it (the calls name it). */
export interface PartitionRoute {
  url: string;
  epoch: number;
}

/** A partition and its epoch in the map it was routed by (calls name it). */
export interface RoutedPartition {
  partition: number;
  epoch: number;
}

/** Adds `partition` of `topic` to the list of its primary's URL in `byPrimary`; throws routeIn's errors. */
export function addRoute(byPrimary: Map<string, RoutedPartition[]>, metadata: MetadataResponse, topic: TopicMetadata, partition: number): void {
  const { url, epoch } = routeIn(metadata, topic, partition);
  const list = byPrimary.get(url);
  if (list === undefined) byPrimary.set(url, [{ partition, epoch }]);
  else list.push({ partition, epoch });
}

/** Finds the primary of `partition` in a map. */
export function routeIn(metadata: MetadataResponse, topic: TopicMetadata, partition: number): PartitionRoute {
  const assignment: PartitionAssignment | undefined = topic.partitions.find((p) => p.partition === partition);
  if (assignment === undefined) {
    throw new TesseraError('PARTITION_NOT_FOUND', `topic ${topic.name} has no partition ${partition}`);
  }
  if (assignment.primary === null) {
    throw new TesseraError('PARTITION_OFFLINE', `partition ${topic.name}/${partition} has no live in-sync replica`);
  }
  const broker = metadata.brokers.find((b) => b.id === assignment.primary);
  if (broker === undefined) {
    throw new TesseraError('PARTITION_OFFLINE', `partition ${topic.name}/${partition}: primary broker ${assignment.primary} is unknown`);
  }
  return { url: broker.url, epoch: assignment.epoch };
}

/** Errors after which the cluster map may be out of date and is worth fetching again. */
export function needsMetadataRefresh(error: unknown): boolean {
  return (
    isNetworkError(error) ||
    isTesseraError(error, 'UNAVAILABLE') ||
    isTesseraError(error, 'NOT_PRIMARY') ||
    isTesseraError(error, 'STALE_EPOCH') ||
    // The broker is behind the map, not the client; a refresh does no harm, and the error is a routing one.
    isTesseraError(error, 'UNKNOWN_EPOCH') ||
    isTesseraError(error, 'PARTITION_NOT_FOUND') ||
    isTesseraError(error, 'PARTITION_OFFLINE') ||
    isTesseraError(error, 'TIMEOUT')
  );
}
