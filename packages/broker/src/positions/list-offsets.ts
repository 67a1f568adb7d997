/**
 * `POST /list-offsets`: offsets by position on the partitions this broker leads. `earliest` is
 * the log start offset, `latest` the high watermark (what a consumer can read up to), and
 * `{timestamp}` the first offset below the HW whose record timestamp is at or after it: the
 * batch is found through the stored max timestamps, then its records are read. With no such
 * record the answer is the HW (where a consumer starting at that time would begin).
 * `GET /topics/:topic/partitions/:partition/offsets?at=...` answers the same for one partition.
 */
import { TesseraError, decodeRecordBatch, listOffsetsRequest, offsetQuery, parseOrThrow, type ListOffsetsResponse, type OffsetQuery } from '@tessera/protocol';
import type { Context } from '@tessera/service';
import { findReplicas, inlineError, requirePrimary, routePartition, type HandlerDeps } from '../http/deps.js';
import type { Partition } from '../partition/index.js';
import type { PartitionLog } from '../storage/index.js';

type Entry = ListOffsetsResponse['partitions'][number];

/** `GET /topics/:topic/partitions/:partition/offsets?at=earliest|latest|<epoch ms>`: one partition, errors as the status. */
export async function handlePartitionOffsets(deps: HandlerDeps, ctx: Context): Promise<void> {
  const ref = routePartition(ctx);
  const raw = ctx.query.at;
  if (typeof raw !== 'string') throw new TesseraError('INVALID_REQUEST', 'give ?at=earliest, ?at=latest or ?at=<epoch ms> once');
  const at = parseOrThrow(offsetQuery, /^\d{1,16}$/.test(raw) ? { timestamp: Number(raw) } : raw, '?at (earliest, latest or epoch ms)');
  const [replica] = await findReplicas(deps, [ref]);
  const body: Entry = { ...ref, ...offsetAt(requirePrimary(deps, replica, ref), at) };
  ctx.body = body;
}

export async function handleListOffsets(deps: HandlerDeps, ctx: Context): Promise<void> {
  const request = parseOrThrow(listOffsetsRequest, ctx.state.body);
  const replicas = await findReplicas(deps, request.partitions);
  const partitions = request.partitions.map((ref, i): Entry => {
    const replica = replicas[i];
    const base = { topic: ref.topic, partition: ref.partition, logStartOffset: replica?.logStartOffset ?? 0, highWatermark: replica?.hw ?? 0 };
    try {
      return { ...base, ...offsetAt(requirePrimary(deps, replica, ref), ref.at) };
    } catch (error) {
      return { ...base, offset: 0, timestamp: null, error: inlineError(deps, error) };
    }
  });
  const body: ListOffsetsResponse = { partitions };
  ctx.body = body;
}

/** The offset (and the record's timestamp, for a time lookup) of one query on a primary. */
export function offsetAt(replica: Partition, at: OffsetQuery): { offset: number; timestamp: number | null; logStartOffset: number; highWatermark: number } {
  // Read both once: the HW may move while this runs, and the answer must be consistent.
  const logStartOffset = replica.logStartOffset;
  const highWatermark = replica.hw;
  const answer = (offset: number, timestamp: number | null) => ({ offset, timestamp, logStartOffset, highWatermark });
  if (at === 'earliest') return answer(logStartOffset, null);
  if (at === 'latest') return answer(highWatermark, null);
  const found = recordAtTime(replica.store, at.timestamp, logStartOffset, highWatermark);
  return found === undefined ? answer(highWatermark, null) : answer(found.offset, found.timestamp);
}

/**
 * The first record in [from, end) whose timestamp is at or after `timestampMs`, undefined when
 * there is none. A batch whose max timestamp qualifies may hold no such record in the range (the
 * log start cuts it, and producers' clocks need not grow with offsets): the search goes on after it.
 */
export function recordAtTime(log: PartitionLog, timestampMs: number, from: number, end: number): { offset: number; timestamp: number } | undefined {
  for (let next = from; next < end; ) {
    const batch = log.firstBatchAtTime(timestampMs, next, end);
    if (batch === undefined) return undefined;
    for (const record of decodeRecordBatch(batch.bytes).records) {
      if (record.offset < from || record.offset >= end) continue;
      if (record.timestamp >= timestampMs) return { offset: record.offset, timestamp: record.timestamp };
    }
    next = batch.lastOffset + 1;
  }
  return undefined;
}
