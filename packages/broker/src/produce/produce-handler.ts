/**
 * Produce on the primary.
 * - `POST /produce` (a frame): whole RecordBatches of many partitions, as the producer
 *   encoded them. Every batch of a partition is validated (CRC, sizes, codec) before anything
 *   of that partition is queued; each partition succeeds or fails on its own (FORBIDDEN for a
 *   topic the caller may not produce to), answered in request order. A malformed frame is a
 *   400 for the whole request.
 * - `POST /topics/:topic/partitions/:partition/records` (JSON, for curl users): the records
 *   are turned into one batch at the edge (`jsonRecordsToBatch`), then take the same path.
 *   With an `Idempotency-Key` header (1 to 256 printable ASCII characters) the request is
 *   stored once per key within the broker's idempotency window: a repeat is answered with the
 *   offsets of the first (see producers/producer-state.ts).
 * A produce is answered once its last record is below the HW. Batches of idempotent producers
 * are checked against the partition's producer state by the primary (partition.ts).
 */
import {
  IDEMPOTENCY_KEY_HEADER,
  TesseraError,
  batchSize,
  jsonRecordsToBatch,
  iterateBatches,
  parseOrThrow,
  produceFrameHead,
  produceRequest,
  validateBatch,
  type ErrorBody,
  type PartitionAtEpoch,
  type ProduceResponse,
} from '@tessera/protocol';
import type { Caller, Context } from '@tessera/service';
import { findReplicas, inlineError, parseFrame, requireFrame, requirePrimary, routePartition, type HandlerDeps } from '../http/deps.js';
import type { IncomingBatch, Partition } from '../partition/index.js';
import { KEYED_PRODUCER_ID_BASE, keyedProducerId } from '../producers/producer-state.js';

/** What an idempotency key may be: printable ASCII, as HTTP header values are in practice. */
const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,256}$/;

/** One partition's answer in `POST /produce`. */
export type ProducedPartition =
  | { topic: string; partition: number; baseOffset: number; lastOffset: number; epoch: number }
  | { topic: string; partition: number; error: ErrorBody['error'] };

export async function handleProduceBatches(deps: HandlerDeps, ctx: Context): Promise<void> {
  ctx.body = await produceBatches(deps, requireFrame(ctx), ctx.state.caller, ctx.state.clusterAuthOff === true);
}

/** One `POST /produce` frame from `caller`, over HTTP or the data stream. */
export async function produceBatches(deps: HandlerDeps, frame: Buffer, caller: Caller, membersUnchecked: boolean): Promise<{ partitions: ProducedPartition[] }> {
  const stopTimer = deps.metrics.produceLatency.startTimer();
  const { head, parts } = parseFrame(frame, (raw) => parseOrThrow(produceFrameHead, raw, 'frame head'), (h) => h.partitions);
  const replicas = await findReplicas(deps, head.partitions);
  const partitions = await Promise.all(
    head.partitions.map(async (ref, i): Promise<ProducedPartition> => {
      const key = { topic: ref.topic, partition: ref.partition };
      try {
        deps.authorizeProduce(caller, membersUnchecked, ref.topic);
        const batches = validateBatches(parts[i], deps.limits.maxBatchBytes, deps.maxValueBytes);
        const result = await produceTo(deps, replicas[i], ref, batches);
        return { ...key, baseOffset: result.baseOffset, lastOffset: result.lastOffset, epoch: result.epoch };
      } catch (error) {
        return { ...key, error: inlineError(deps, error) };
      }
    }),
  );
  stopTimer();
  return { partitions };
}

export async function handleProduceJson(deps: HandlerDeps, ctx: Context): Promise<void> {
  const stopTimer = deps.metrics.produceLatency.startTimer();
  const ref = routePartition(ctx);
  const request = parseOrThrow(produceRequest, ctx.state.body);
  const key = idempotencyKey(ctx.get(IDEMPOTENCY_KEY_HEADER));
  const batch =
    key === undefined
      ? jsonRecordsToBatch(request.records, deps.maxValueBytes)
      : jsonRecordsToBatch(
          request.records,
          deps.maxValueBytes,
          Date.now(),
          { producerId: keyedProducerId(key), producerEpoch: 0, baseSequence: 0 },
          { key: IDEMPOTENCY_KEY_HEADER, value: key },
        );
  const [replica] = await findReplicas(deps, [ref]);
  const batches = validateBatches(batch, Number.MAX_SAFE_INTEGER, deps.maxValueBytes, key);
  const result = await produceTo(deps, replica, ref, batches);
  stopTimer();
  const body: ProduceResponse = { topic: ref.topic, partition: ref.partition, baseOffset: result.baseOffset, count: result.count, epoch: result.epoch };
  ctx.body = body;
}

async function produceTo(deps: HandlerDeps, replica: Partition | undefined, ref: PartitionAtEpoch, batches: IncomingBatch[]) {
  const result = await requirePrimary(deps, replica, ref).produce(batches);
  deps.metrics.recordsProduced.inc({ topic: ref.topic }, result.count);
  let bytes = 0;
  for (const batch of batches) bytes += batch.bytes.length;
  deps.metrics.bytesProduced.inc({ topic: ref.topic }, bytes);
  return result;
}

/** The request's idempotency key: undefined without the header, INVALID_REQUEST when it is not a valid key. */
function idempotencyKey(header: string): string | undefined {
  if (header === '') return undefined;
  if (!IDEMPOTENCY_KEY.test(header)) {
    throw new TesseraError('INVALID_REQUEST', `${IDEMPOTENCY_KEY_HEADER} must be 1 to 256 printable ASCII characters; nothing was stored`);
  }
  return header;
}

/**
 * Every batch of one partition's part, checked whole (CRC, sizes, codec) before any is stored.
 * `key`: the idempotency key the JSON route stamped the batch for; a producer's own batch may
 * not use a producer id of the keyed range.
 */
function validateBatches(part: Buffer, maxBatchBytes: number, maxValueBytes: number, key?: string): IncomingBatch[] {
  const batches: IncomingBatch[] = [];
  for (const { at, header } of iterateBatches(part)) {
    const size = batchSize(header);
    if (size > maxBatchBytes) {
      throw new TesseraError('PAYLOAD_TOO_LARGE', `batch of ${size} bytes is larger than ${maxBatchBytes}; nothing of this partition was stored`);
    }
    validateBatch(part, at, { maxValueBytes });
    if (header.producerId >= 0 && (header.producerEpoch < 0 || header.baseSequence < 0)) {
      throw new TesseraError(
        'INVALID_REQUEST',
        `a batch of producer ${header.producerId} needs a producer epoch and a base sequence of 0 or more, got ${header.producerEpoch} and ${header.baseSequence}; nothing of this partition was stored`,
      );
    }
    if (key === undefined && header.producerId >= KEYED_PRODUCER_ID_BASE) {
      throw new TesseraError('INVALID_REQUEST', `producer id ${header.producerId} is reserved for idempotency keys (ids from 2^52); nothing of this partition was stored`);
    }
    batches.push({
      bytes: part.subarray(at, at + size),
      recordCount: header.recordCount,
      lastOffsetDelta: header.lastOffsetDelta,
      maxTimestamp: header.maxTimestamp,
      sequenced:
        header.producerId < 0
          ? undefined
          : {
              producerId: header.producerId,
              producerEpoch: header.producerEpoch,
              baseSequence: header.baseSequence,
              lastOffsetDelta: header.lastOffsetDelta,
              ...(key === undefined ? {} : { key }),
            },
    });
  }
  if (batches.length === 0) throw new TesseraError('INVALID_REQUEST', 'no record batch for this partition');
  return batches;
}
