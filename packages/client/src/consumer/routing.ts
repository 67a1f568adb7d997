/** Which broker to ask for which partitions: shared by the group consumer and the reader. */
import { addRoute, type MetadataCache, type RoutedPartition } from '../cluster/metadata-cache.js';

/**
 * Groups partitions of `topic` by their primary's URL. Partitions without a known primary are
 * left out and reported to `onPartitionError` (which refreshes the map for routing errors); a
 * map that cannot be read at all goes to `onError` and nothing is grouped.
 */
export async function groupByPrimary(
  metadataCache: MetadataCache,
  topicName: string,
  partitions: number[],
  report: { onError(error: unknown): void; onPartitionError(error: unknown): void },
): Promise<Map<string, RoutedPartition[]>> {
  const byPrimary = new Map<string, RoutedPartition[]>();
  let metadata;
  let topic;
  try {
    ({ metadata, topic } = await metadataCache.lookup(topicName));
  } catch (error) {
    report.onError(error);
    return byPrimary;
  }
  for (const partition of partitions) {
    try {
      addRoute(byPrimary, metadata, topic, partition);
    } catch (error) {
      report.onPartitionError(error);
    }
  }
  return byPrimary;
}
