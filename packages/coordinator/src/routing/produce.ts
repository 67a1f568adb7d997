/**
 * Routed produce: a plain HTTP client sends records for a topic to the coordinator, which
 * picks each record's partition like every client does (`partitionForKey`, keyless records
 * round-robin), turns each partition's records (in input order) into one RecordBatch at the
 * edge, and forwards it to the partition's primary with `POST /produce`.
 */
import {
  BROKER_ROUTES,
  DEFAULT_MAX_VALUE_BYTES,
  EpochRefusals,
  TesseraError,
  encodeFrame,
  frameWithoutEpochs,
  isNetworkError,
  jsonRecordsToBatch,
  partitionForKey,
  retry,
  type DataHttpClient,
  type ErrorBody,
  type RecordInput,
  type RoutedProduceRequest,
  type RoutedProduceResponse,
} from '@tessera/protocol';

/** One partition's answer of a broker's `POST /produce`. */
type ProducedPartition =
  | { topic: string; partition: number; baseOffset: number; lastOffset: number; epoch: number }
  | { topic: string; partition: number; error: ErrorBody['error'] };
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
  /** Brokers of an earlier release, which refuse partition epochs. */
  private readonly epochs = new EpochRefusals();

  constructor(
    private readonly cluster: Cluster,
    private readonly client: DataHttpClient,
    private readonly options: RoutingOptions = DEFAULT_ROUTING,
  ) {}

  async produce(topicName: string, request: RoutedProduceRequest): Promise<RoutedProduceResponse> {
    const partitionCount = this.cluster.topic(topicName).partitions.length;
    const byPartition = new Map<number, { indexes: number[]; records: RecordInput[] }>();
    const nowMs = Date.now();
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

    // Every batch is built before anything is sent: a bad record refuses the whole request.
    const batches = new Map([...byPartition].map(([partition, group]) => [partition, jsonRecordsToBatch(group.records, DEFAULT_MAX_VALUE_BYTES, nowMs)]));
    const offsets: RoutedProduceResponse['offsets'] = new Array(request.records.length);
    const failures: Array<{ partition: number; error: unknown }> = [];
    await Promise.all(
      [...byPartition].map(async ([partition, group]) => {
        try {
          const answer = await this.sendToPrimary(topicName, partition, batches.get(partition)!);
          if (answer.lastOffset - answer.baseOffset + 1 !== group.records.length) {
            throw new TesseraError('INTERNAL', `primary stored ${answer.lastOffset - answer.baseOffset + 1} of ${group.records.length} records`);
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

  private sendToPrimary(topic: string, partition: number, batch: Buffer): Promise<{ baseOffset: number; lastOffset: number }> {
    return retry(
      async () => {
        // Looked up on every attempt: a failover may have moved the primary meanwhile.
        const p = this.cluster.partition(topic, partition);
        const primary = this.cluster.brokerRef(p.primary);
        if (!primary) throw new TesseraError('PARTITION_OFFLINE', `partition ${topic}/${partition} has no live in-sync replica`);
        // The epoch fences a primary that has not applied this map yet (UNKNOWN_EPOCH, retried).
        const frame = encodeFrame({ partitions: [{ topic, partition, epoch: p.epoch, bytes: batch.length }] }, [batch]);
        const answer = await this.epochs.send(primary.internalUrl, frame, frameWithoutEpochs, (sent) =>
          this.client.postFrame(`${primary.internalUrl}${BROKER_ROUTES.produceBatches}`, sent, { timeoutMs: this.options.timeoutMs }),
        );
        const [result] = (JSON.parse(answer.body.toString('utf8')) as { partitions: ProducedPartition[] }).partitions;
        if (result === undefined) throw new TesseraError('INTERNAL', `${primary.internalUrl} answered no partition`);
        if ('error' in result) throw TesseraError.fromBody({ error: result.error }) ?? new TesseraError('INTERNAL', 'unreadable partition error');
        return result;
      },
      { retries: this.options.retries, initialMs: this.options.initialMs, maxMs: this.options.maxMs },
    );
  }
}
