/**
 * `POST /fetch`: whole stored batches below the HW of each requested partition, within one
 * response-wide byte budget (at least one batch when one is available, so a batch larger
 * than maxBytes still makes progress). Asked with `Accept: application/vnd.tessera.frame`,
 * the answer is a frame (the batches as stored, the first may begin before the requested
 * offset); otherwise JSON records for curl users, keys/values/header values as UTF-8 text,
 * or base64 with `"encoding": "base64"` on a record whose bytes are not valid UTF-8. When no
 * partition has anything at its offset (and none has an error), the request waits
 * (long-poll) until one of them changes or waitMs passes; waiting fetches are bounded.
 */
import {
  FRAME_CONTENT_TYPE,
  TesseraError,
  decodeRecordBatch,
  encodeFrame,
  fetchRequest,
  parseOrThrow,
  recordToJson,
  type ErrorBody,
  type JsonRecordOutput,
  type FetchFrameHead,
} from '@tessera/protocol';
import type { Context } from '@tessera/service';
import { findReplicas, inlineError, requirePrimary, type HandlerDeps } from '../http/deps.js';
import type { Partition } from '../partition/index.js';
import { batchBytes, type StoredBatch } from '../storage/index.js';

type ParsedFetch = ReturnType<typeof fetchRequest.parse>;

interface PartitionRead {
  topic: string;
  partition: number;
  highWatermark: number;
  logStartOffset: number;
  offset: number;
  batches: StoredBatch[];
  error?: ErrorBody['error'];
}

export class FetchHandler {
  private pendingLongPolls = 0;

  constructor(private readonly deps: HandlerDeps) {}

  get pending(): number {
    return this.pendingLongPolls;
  }

  async handle(ctx: Context): Promise<void> {
    const asFrame = ctx.accepts('application/json', FRAME_CONTENT_TYPE) === FRAME_CONTENT_TYPE && ctx.get('accept').includes(FRAME_CONTENT_TYPE);
    const answer = await this.fetch(ctx.state.body, asFrame, (finish) => {
      // The response closes early only when the client went away: stop waiting for it.
      ctx.res.once('close', finish);
      return () => ctx.res.off('close', finish);
    });
    if ('frame' in answer) {
      ctx.type = FRAME_CONTENT_TYPE;
      ctx.body = Buffer.concat(answer.frame);
    } else {
      ctx.body = answer.json;
    }
  }

  /**
   * One fetch (`body`: a fetch request, not yet validated): the frame's chunks when `asFrame`,
   * else the JSON answer. `onGone` registers what to call when the caller goes away (a long
   * poll stops waiting) and returns how to unregister it; `onWaiting` is told when the fetch
   * starts its long poll.
   */
  async fetch(
    body: unknown,
    asFrame: boolean,
    onGone: (finish: () => void) => () => void,
    onWaiting?: () => void,
  ): Promise<{ frame: Buffer[] } | { json: unknown }> {
    const request = parseOrThrow(fetchRequest, body);
    const replicas = await findReplicas(this.deps, request.partitions);
    let reads = this.read(request, replicas);
    const waitMs = request.waitMs ?? 0;
    const idle = reads.every((p) => p.batches.length === 0 && p.error === undefined);
    if (idle && waitMs > 0 && this.pendingLongPolls < this.deps.limits.maxPendingFetches) {
      this.pendingLongPolls++;
      onWaiting?.();
      try {
        await waitForChange(replicas.filter((r): r is Partition => r !== undefined), waitMs, onGone);
      } finally {
        this.pendingLongPolls--;
      }
      reads = this.read(request, replicas);
    }
    let records = 0;
    let bytes = 0;
    for (const read of reads) {
      for (const batch of read.batches) bytes += batchBytes(batch);
      if (read.batches.length > 0) records += read.batches[read.batches.length - 1].lastOffset + 1 - Math.max(read.offset, read.batches[0].baseOffset);
    }
    this.countFetched(reads, records, bytes);
    if (asFrame) {
      const head: FetchFrameHead = {
        partitions: reads.map((read) => ({
          topic: read.topic,
          partition: read.partition,
          highWatermark: read.highWatermark,
          logStartOffset: read.logStartOffset,
          bytes: read.batches.reduce((sum, batch) => sum + batchBytes(batch), 0),
          ...(read.error === undefined ? {} : { error: read.error }),
        })),
      };
      return { frame: encodeFrame(head, reads.flatMap((read) => read.batches.map((batch) => batch.bytes))) };
    }
    // maxRecords bounds the whole JSON answer, like maxBytes.
    const budget = { recordsLeft: request.maxRecords ?? this.deps.limits.fetchMaxRecords };
    return { json: { partitions: reads.map((read) => toJson(read, budget)) } };
  }

  private countFetched(reads: PartitionRead[], records: number, bytes: number): void {
    if (records === 0) return;
    const topic = reads[0].topic;
    this.deps.metrics.recordsFetched.inc({ topic }, records);
    this.deps.metrics.bytesFetched.inc({ topic }, bytes);
  }

  private read(request: ParsedFetch, replicas: Array<Partition | undefined>): PartitionRead[] {
    let bytesLeft = request.maxBytes ?? this.deps.limits.fetchMaxBytes;
    return request.partitions.map((ref, i) => {
      const found = replicas[i];
      const result: PartitionRead = {
        topic: ref.topic,
        partition: ref.partition,
        highWatermark: found?.hw ?? 0,
        logStartOffset: found?.logStartOffset ?? 0,
        offset: ref.offset,
        batches: [],
      };
      try {
        const replica = requirePrimary(this.deps, found, ref);
        // An offset between the HW and the LEO is not an error: right after a change of primary the
        // new primary's HW can trail what a consumer already read from the old one. It waits like
        // an offset at the HW until the HW passes it.
        if (ref.offset < replica.logStartOffset || ref.offset > replica.store.leo) {
          throw new TesseraError(
            'OFFSET_OUT_OF_RANGE',
            `offset ${ref.offset} is outside ${replica.logStartOffset}..${replica.store.leo} of ${ref.topic}/${ref.partition}`,
            { logStartOffset: replica.logStartOffset, highWatermark: replica.hw },
          );
        }
        if (bytesLeft > 0 && ref.offset < replica.hw) {
          result.batches = replica.store.readBatches(ref.offset, replica.hw, bytesLeft);
          for (const batch of result.batches) bytesLeft -= batchBytes(batch);
        }
      } catch (error) {
        result.error = inlineError(this.deps, error);
      }
      return result;
    });
  }
}

/** A partition's batches as JSON records from the requested offset, below the HW, within the answer's record budget. */
function toJson(read: PartitionRead, budget: { recordsLeft: number }) {
  const records: JsonRecordOutput[] = [];
  for (const batch of read.batches) {
    for (const record of decodeRecordBatch(batch.bytes).records) {
      if (record.offset < read.offset || record.offset >= read.highWatermark || budget.recordsLeft <= 0) continue;
      budget.recordsLeft--;
      records.push(recordToJson(record));
    }
  }
  return {
    topic: read.topic,
    partition: read.partition,
    highWatermark: read.highWatermark,
    logStartOffset: read.logStartOffset,
    records,
    ...(read.error === undefined ? {} : { error: read.error }),
  };
}

/** Resolves when any replica's HW or role changes, after waitMs, or when the caller goes away. */
function waitForChange(replicas: Partition[], waitMs: number, onGone: (finish: () => void) => () => void): Promise<void> {
  return new Promise((resolve) => {
    const unsubscribes: Array<() => void> = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      for (const unsubscribe of unsubscribes) unsubscribe();
      resolve();
    };
    const timer = setTimeout(finish, waitMs);
    for (const replica of replicas) unsubscribes.push(replica.onChange(finish));
    unsubscribes.push(onGone(finish));
  });
}
