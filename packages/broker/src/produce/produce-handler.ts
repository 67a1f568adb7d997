/**
 * Produce on the primary.
 * - `POST /produce` (a frame): whole RecordBatches of many partitions, as the producer
 *   encoded them. Every batch of a partition is validated (CRC, sizes, codec) before anything
 *   of that partition is queued; each partition succeeds or fails on its own (FORBIDDEN for a
 *   topic the caller may not produce to), answered in request order. A malformed frame is a
 *   400 for the whole request.
 * - `POST /topics/:topic/partitions/:partition/records` (JSON, for curl users): the records
 *   are turned into one batch at the edge (`jsonRecordsToBatch`), then take the same path.
 * A produce is answered once its last record is below the HW.
 */
import {
  TesseraError,
  jsonRecordsToBatch,
  iterateBatches,
  parseOrThrow,
  produceFrameHead,
  produceRequest,
  validateBatch,
  type ErrorBody,
  type ProduceResponse,
} from '@tessera/protocol';
import type { Context } from '@tessera/service';
import { findReplicas, inlineError, notHeldHere, readFrame, routePartition, type HandlerDeps } from '../http/deps.js';
import type { IncomingBatch, Partition } from '../partition/index.js';

/** One partition's answer in `POST /produce`. */
export type ProducedPartition =
  | { topic: string; partition: number; baseOffset: number; lastOffset: number; epoch: number }
  | { topic: string; partition: number; error: ErrorBody['error'] };

export async function handleProduceBatches(deps: HandlerDeps, ctx: Context): Promise<void> {
  const stopTimer = deps.metrics.produceLatency.startTimer();
  const { head, parts } = readFrame(ctx, (raw) => parseOrThrow(produceFrameHead, raw, 'frame head'), (h) => h.partitions);
  const replicas = await findReplicas(deps, head.partitions);
  const partitions = await Promise.all(
    head.partitions.map(async (ref, i): Promise<ProducedPartition> => {
      const key = { topic: ref.topic, partition: ref.partition };
      try {
        deps.authorizeProduce(ctx, ref.topic);
        const batches = validateBatches(parts[i], deps.limits.maxBatchBytes, deps.maxValueBytes);
        const result = await produceTo(deps, replicas[i], key, batches);
        return { ...key, baseOffset: result.baseOffset, lastOffset: result.lastOffset, epoch: result.epoch };
      } catch (error) {
        return { ...key, error: inlineError(deps, error) };
      }
    }),
  );
  stopTimer();
  ctx.body = { partitions };
}

export async function handleProduceJson(deps: HandlerDeps, ctx: Context): Promise<void> {
  const stopTimer = deps.metrics.produceLatency.startTimer();
  const ref = routePartition(ctx);
  const request = parseOrThrow(produceRequest, ctx.state.body);
  const batch = jsonRecordsToBatch(request.records, deps.maxValueBytes);
  const [replica] = await findReplicas(deps, [ref]);
  const result = await produceTo(deps, replica, ref, validateBatches(batch, Number.MAX_SAFE_INTEGER, deps.maxValueBytes));
  stopTimer();
  const body: ProduceResponse = { topic: ref.topic, partition: ref.partition, baseOffset: result.baseOffset, count: result.count, epoch: result.epoch };
  ctx.body = body;
}

async function produceTo(deps: HandlerDeps, replica: Partition | undefined, ref: { topic: string; partition: number }, batches: IncomingBatch[]) {
  if (replica === undefined || replica.isClosed) throw notHeldHere(deps, ref);
  const result = await replica.produce(batches);
  deps.metrics.recordsProduced.inc({ topic: ref.topic }, result.count);
  let bytes = 0;
  for (const batch of batches) bytes += batch.bytes.length;
  deps.metrics.bytesProduced.inc({ topic: ref.topic }, bytes);
  return result;
}

/** Every batch of one partition's part, checked whole (CRC, sizes, codec) before any is stored. */
function validateBatches(part: Buffer, maxBatchBytes: number, maxValueBytes: number): IncomingBatch[] {
  const batches: IncomingBatch[] = [];
  for (const { at, header } of iterateBatches(part)) {
    const size = 12 + header.batchLength;
    if (size > maxBatchBytes) {
      throw new TesseraError('PAYLOAD_TOO_LARGE', `batch of ${size} bytes is larger than ${maxBatchBytes}; nothing of this partition was stored`);
    }
    validateBatch(part, at, { maxValueBytes });
    batches.push({
      bytes: part.subarray(at, at + size),
      recordCount: header.recordCount,
      lastOffsetDelta: header.lastOffsetDelta,
      maxTimestamp: header.maxTimestamp,
      sequenced:
        header.producerId < 0
          ? undefined
          : { producerId: header.producerId, producerEpoch: header.producerEpoch, baseSequence: header.baseSequence, lastOffsetDelta: header.lastOffsetDelta },
    });
  }
  if (batches.length === 0) throw new TesseraError('INVALID_REQUEST', 'no record batch for this partition');
  return batches;
}
