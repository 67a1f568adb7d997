/**
 * `POST /topics/:topic/partitions/:partition/records`: validates the whole request (route,
 * body, every value's size) before anything is stored, then hands the records to the
 * partition's flush queue and answers once they are below the HW.
 */
import { TesseraError, parseOrThrow, produceRequest, type ProduceResponse } from '@tessera/protocol';
import type { Context } from '@tessera/service';
import { findReplicas, notHeldHere, routePartition, type HandlerDeps } from '../http/deps.js';
import { payloadBytes } from '../metrics/broker-metrics.js';

export async function handleProduce(deps: HandlerDeps, ctx: Context): Promise<void> {
  const stopTimer = deps.metrics.produceLatency.startTimer();
  const ref = routePartition(ctx);
  const request = parseOrThrow(produceRequest, ctx.state.body);
  checkValueSizes(request.records, deps.maxValueBytes);
  const [replica] = await findReplicas(deps, [ref]);
  if (replica === undefined) throw notHeldHere(deps, ref);
  const result = await replica.produce(request.records);
  stopTimer();
  deps.metrics.recordsProduced.inc({ topic: ref.topic }, result.count);
  deps.metrics.bytesProduced.inc({ topic: ref.topic }, payloadBytes(request.records));
  const body: ProduceResponse = { topic: ref.topic, partition: ref.partition, ...result };
  ctx.body = body;
}

/** One value over the limit refuses the whole request (413), so nothing of it is stored. */
export function checkValueSizes(records: ReadonlyArray<{ value: string }>, maxValueBytes: number): void {
  for (let i = 0; i < records.length; i++) {
    const value = records[i].value;
    // UTF-8 takes at least one byte per UTF-16 unit and at most three: measure only when in doubt.
    if (value.length * 3 <= maxValueBytes) continue;
    const bytes = value.length > maxValueBytes ? value.length : Buffer.byteLength(value, 'utf8');
    if (bytes > maxValueBytes) {
      throw new TesseraError('PAYLOAD_TOO_LARGE', `record ${i}: value is larger than ${maxValueBytes} bytes; nothing was stored`);
    }
  }
}
