/**
 * Routed produce: a plain HTTP client sends records for a topic to the coordinator, which
 * picks each record's partition like every client does (`partitionForKey`, keyless records
 * round-robin) and forwards each partition's records, in input order, to its primary.
 */
import {
  BROKER_ROUTES,
  TesseraError,
  isNetworkError,
  partitionForKey,
  retry,
  routePath,
  type JsonHttpClient,
  type ProduceResponse,
  type RecordInput,
  type RoutedProduceRequest,
  type RoutedProduceResponse,
} from '@tessera/protocol';
import type { Cluster } from '../cluster/cluster.js';

export interface RoutingOptions {
  retries: number;
  initialMs: number;
  maxMs: number;
  timeoutMs: number;
}

export const DEFAULT_ROUTING: RoutingOptions = { retries: 5, initialMs: 50, maxMs: 1_000, timeoutMs: 10_000 };

export class ProduceRouter {
  /** Round-robin position for keyless records; one counter for every topic is enough to spread them. */
  private nextKeyless = 0;

  constructor(
    private readonly cluster: Cluster,
    private readonly client: JsonHttpClient,
    private readonly options: RoutingOptions = DEFAULT_ROUTING,
  ) {}

  async produce(topicName: string, request: RoutedProduceRequest): Promise<RoutedProduceResponse> {
    const partitionCount = this.cluster.topic(topicName).partitions.length;
    const byPartition = new Map<number, { indexes: number[]; records: RecordInput[] }>();
    request.records.forEach((input, index) => {
      const { partition: explicit, ...record } = input;
      let partition: number;
      if (explicit !== undefined) {
        if (explicit >= partitionCount) {
          throw new TesseraError('INVALID_REQUEST', `records.${index}.partition: topic ${topicName} has ${partitionCount} partitions`);
        }
        partition = explicit;
      } else if (record.key != null) {
        partition = partitionForKey(record.key, partitionCount);
      } else {
        partition = this.nextKeyless++ % partitionCount;
        if (this.nextKeyless >= Number.MAX_SAFE_INTEGER) this.nextKeyless = 0;
      }
      let group = byPartition.get(partition);
      if (!group) byPartition.set(partition, (group = { indexes: [], records: [] }));
      group.indexes.push(index);
      group.records.push(record);
    });

    const offsets: RoutedProduceResponse['offsets'] = new Array(request.records.length);
    const failures: Array<{ partition: number; error: unknown }> = [];
    await Promise.all(
      [...byPartition].map(async ([partition, group]) => {
        try {
          const answer = await this.sendToPrimary(topicName, partition, group.records);
          if (answer.count !== group.records.length) {
            throw new TesseraError('INTERNAL', `primary stored ${answer.count} of ${group.records.length} records`);
          }
          group.indexes.forEach((index, i) => {
            offsets[index] = { partition, offset: answer.baseOffset + i };
          });
        } catch (error) {
          failures.push({ partition, error });
        }
      }),
    );
    if (failures.length > 0) {
      failures.sort((a, b) => a.partition - b.partition);
      const { partition, error } = failures[0];
      const stored = byPartition.size > failures.length ? ' (records for other partitions may have been stored)' : '';
      if (error instanceof TesseraError) {
        throw new TesseraError(error.code, `partition ${partition}: ${error.message}${stored}`, error.details, { cause: error });
      }
      const code = isNetworkError(error) && /ETIMEDOUT|timeout/i.test(String((error as Error).message)) ? 'TIMEOUT' : 'UNAVAILABLE';
      throw new TesseraError(code, `partition ${partition}: primary unreachable: ${(error as Error).message}${stored}`, {}, { cause: error });
    }
    return { offsets };
  }

  private sendToPrimary(topic: string, partition: number, records: RecordInput[]): Promise<ProduceResponse> {
    return retry(
      async () => {
        // Looked up on every attempt: a failover may have moved the primary meanwhile.
        const p = this.cluster.partition(topic, partition);
        const primary = this.cluster.brokerRef(p.primary);
        if (!primary) throw new TesseraError('PARTITION_OFFLINE', `partition ${topic}/${partition} has no live in-sync replica`);
        return this.client.post<ProduceResponse>(
          `${primary.internalUrl}${routePath(BROKER_ROUTES.produce, { topic, partition })}`,
          { records },
          { timeoutMs: this.options.timeoutMs },
        );
      },
      { retries: this.options.retries, initialMs: this.options.initialMs, maxMs: this.options.maxMs },
    );
  }
}
