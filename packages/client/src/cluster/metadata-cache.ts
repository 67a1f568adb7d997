/**
 * The client's view of the cluster map (`GET /metadata` on the coordinator).
 *
 * Producers and consumers route by this cache. It refreshes when it is older than
 * `maxAgeMs` (in the background, answering from the cache meanwhile) and when a
 * broker says the map is wrong (NOT_PRIMARY, STALE_EPOCH, PARTITION_NOT_FOUND, or no
 * answer). Calls name the partition's epoch of the map they were routed by, so a broker
 * that has not applied that map yet refuses them (UNKNOWN_EPOCH) instead of serving
 * from a replica the map took from it. While the coordinator is unreachable the last map stays in use, so produce
 * and consume keep working (promise 5 of docs/architecture.md).
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
   * Fetches numbered up to this one may have been answered before a change this client made (a
   * topic made, deleted...); -1 when no change waits for a map (none made, or the coordinator
   * could not answer the fetch after it).
   */
  private changedAfter = -1;
  private inFlight: { seq: number; promise: Promise<MetadataResponse> } | null = null;

  constructor(
    private readonly connection: Connection,
    private readonly maxAgeMs: number,
  ) {}

  /**
   * The cached map, fetched first when there is none or when this client changed the cluster
   * since it was fetched; a map older than maxAgeMs is refreshed in the background.
   */
  async get(): Promise<MetadataResponse> {
    if (this.current === null || this.applied <= this.changedAfter) return this.refresh();
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
   * This client changed the cluster (made, altered or deleted a topic): the cached map, and
   * any fetch already under way, may predate the change. The next `get()` waits for a map
   * fetched after it, and the cached-only lookups answer nothing until then. If that fetch
   * fails (the coordinator is unreachable), the cached map serves again as before.
   */
  invalidate(): void {
    this.changedAfter = this.started;
    this.fetchedAtMs = -Infinity;
  }

  /**
   * A topic's map; an unknown topic triggers one fetch before TOPIC_NOT_FOUND. Only a map the
   * coordinator has just answered can say that a topic does not exist: when it cannot answer,
   * its (retriable) error is thrown, not TOPIC_NOT_FOUND from a cached map older than the topic.
   */
  async topic(name: string): Promise<TopicMetadata> {
    const cached = (await this.get()).topics.find((topic) => topic.name === name);
    if (cached !== undefined) return cached;
    const fresh = (await this.fetch()).topics.find((topic) => topic.name === name);
    if (fresh !== undefined) return fresh;
    throw new TesseraError('TOPIC_NOT_FOUND', `topic ${name} does not exist`);
  }

  /**
   * The cached topic without any I/O (undefined when not cached, or cached before a change
   * this client made): the producer's fast path.
   */
  cachedTopic(name: string): TopicMetadata | undefined {
    if (this.current === null) return undefined;
    if (this.applied <= this.changedAfter) {
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
    const metadata = await this.get();
    return routeIn(metadata, await this.topic(topic), partition);
  }

  private fetch(): Promise<MetadataResponse> {
    if (this.inFlight !== null && this.inFlight.seq > this.changedAfter) return this.inFlight.promise;
    this.lastAttemptMs = performance.now();
    const seq = ++this.started;
    const promise = this.connection
      .coordinator<MetadataResponse>('GET', COORDINATOR_ROUTES.metadata)
      .then(
        (metadata) => {
          this.apply(seq, metadata);
          return metadata;
        },
        (error: unknown) => {
          // The coordinator could not answer after the change: the cached map serves again (as
          // while it is down at any other time), rather than every call asking it first.
          if (seq > this.changedAfter) this.changedAfter = -1;
          throw error;
        },
      )
      .finally(() => {
        if (this.inFlight?.seq === seq) this.inFlight = null;
      });
    this.inFlight = { seq, promise };
    return promise;
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
    this.fetchedAtMs = performance.now();
  }
}

/** Where to send a partition's calls: its primary's URL, and the epoch the map gives it (the calls name it). */
export interface PartitionRoute {
  url: string;
  epoch: number;
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
