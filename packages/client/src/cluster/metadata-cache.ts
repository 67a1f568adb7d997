/**
 * The client's view of the cluster map (`GET /metadata` on the coordinator).
 *
 * Producers and consumers route by this cache. It refreshes when it is older than
 * `maxAgeMs` (in the background, answering from the cache meanwhile) and when a
 * broker says the map is wrong (NOT_PRIMARY, STALE_EPOCH, PARTITION_NOT_FOUND, or no
 * answer). While the coordinator is unreachable the last map stays in use, so produce
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
  private inFlight: Promise<MetadataResponse> | null = null;

  constructor(
    private readonly connection: Connection,
    private readonly maxAgeMs: number,
  ) {}

  /** The cached map, fetched first when there is none; a stale map is refreshed in the background. */
  async get(): Promise<MetadataResponse> {
    if (this.current === null) return this.refresh();
    if (performance.now() - this.fetchedAtMs > this.maxAgeMs) this.refreshInBackground();
    return this.current;
  }

  /**
   * Fetches the map now (one request at a time; concurrent callers share it). When the
   * coordinator cannot answer and a map is cached, the cached map is returned instead.
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
   * Replaces the cache with a map the coordinator just answered (also from `admin.metadata()`).
   * The latest answer wins even with a lower version: only one refresh runs at a time, and
   * a coordinator started afresh on an empty data directory counts versions from zero again.
   */
  update(metadata: MetadataResponse): void {
    this.current = metadata;
    this.fetchedAtMs = performance.now();
  }

  /** Forgets the fetch time, so the next `get()` refreshes in the background. */
  invalidate(): void {
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

  /** The cached topic without any I/O (undefined when not cached): the producer's fast path. */
  cachedTopic(name: string): TopicMetadata | undefined {
    if (this.current === null) return undefined;
    if (performance.now() - this.fetchedAtMs > this.maxAgeMs) this.refreshInBackground();
    return this.current.topics.find((topic) => topic.name === name);
  }

  /**
   * The URL of a partition's primary from the cached map without any I/O: undefined when
   * the topic is not cached, PARTITION_OFFLINE (thrown) when the map names no primary.
   */
  cachedPrimaryUrl(topic: string, partition: number): string | undefined {
    const cached = this.cachedTopic(topic);
    return cached === undefined ? undefined : primaryUrlIn(this.current!, cached, partition);
  }

  /** The URL of a partition's primary, or PARTITION_OFFLINE (retriable) when it has none. */
  async primaryUrl(topic: string, partition: number): Promise<string> {
    const metadata = await this.get();
    return primaryUrlIn(metadata, await this.topic(topic), partition);
  }

  private fetch(): Promise<MetadataResponse> {
    if (this.inFlight !== null) return this.inFlight;
    this.lastAttemptMs = performance.now();
    this.inFlight = this.connection
      .coordinator<MetadataResponse>('GET', COORDINATOR_ROUTES.metadata)
      .then((metadata) => {
        this.update(metadata);
        return metadata;
      })
      .finally(() => {
        this.inFlight = null;
      });
    return this.inFlight;
  }
}

/** Finds the primary's URL of `partition` in a map. */
export function primaryUrlIn(metadata: MetadataResponse, topic: TopicMetadata, partition: number): string {
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
  return broker.url;
}

/** Errors after which the cluster map may be out of date and is worth fetching again. */
export function needsMetadataRefresh(error: unknown): boolean {
  return (
    isNetworkError(error) ||
    isTesseraError(error, 'UNAVAILABLE') ||
    isTesseraError(error, 'NOT_PRIMARY') ||
    isTesseraError(error, 'STALE_EPOCH') ||
    isTesseraError(error, 'PARTITION_NOT_FOUND') ||
    isTesseraError(error, 'PARTITION_OFFLINE') ||
    isTesseraError(error, 'TIMEOUT')
  );
}
