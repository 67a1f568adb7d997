/**
 * `POST /fetch`: records below the HW of each requested partition, within one response-wide
 * budget of records and bytes. When no partition has anything at its offset (and none has an
 * error), the request waits (long-poll) until one of them changes or waitMs passes; the
 * number of waiting fetches is bounded.
 */
import { TesseraError, fetchRequest, parseOrThrow, type FetchPartitionResult, type FetchResponse } from '@tessera/protocol';
import type { Context } from '@tessera/service';
import { findReplicas, inlineError, notHeldHere, type HandlerDeps } from '../http/deps.js';
import { payloadBytes } from '../metrics/broker-metrics.js';
import type { PartitionReplica } from '../replica/index.js';

type ParsedFetch = ReturnType<typeof fetchRequest.parse>;

export class FetchHandler {
  private pendingLongPolls = 0;

  constructor(private readonly deps: HandlerDeps) {}

  get pending(): number {
    return this.pendingLongPolls;
  }

  async handle(ctx: Context): Promise<void> {
    const request = parseOrThrow(fetchRequest, ctx.state.body);
    const replicas = await findReplicas(this.deps, request.partitions);
    let answer = this.read(request, replicas);
    const waitMs = request.waitMs ?? 0;
    const idle = answer.partitions.every((p) => p.records.length === 0 && p.error === undefined);
    if (idle && waitMs > 0 && this.pendingLongPolls < this.deps.limits.maxPendingFetches) {
      this.pendingLongPolls++;
      try {
        await waitForChange(replicas.filter((r): r is PartitionReplica => r !== undefined), waitMs, ctx);
      } finally {
        this.pendingLongPolls--;
      }
      answer = this.read(request, replicas);
    }
    ctx.body = answer;
  }

  private read(request: ParsedFetch, replicas: Array<PartitionReplica | undefined>): FetchResponse {
    let recordsLeft = Math.min(request.maxRecords ?? this.deps.limits.fetchMaxRecords, this.deps.limits.fetchMaxRecords * 10);
    let bytesLeft = request.maxBytes ?? this.deps.limits.fetchMaxBytes;
    const partitions: FetchPartitionResult[] = request.partitions.map((ref, i) => {
      const replica = replicas[i];
      const result: FetchPartitionResult = {
        topic: ref.topic,
        partition: ref.partition,
        highWatermark: replica?.hw ?? 0,
        logStartOffset: replica?.logStartOffset ?? 0,
        records: [],
      };
      try {
        if (replica === undefined || replica.isClosed) throw notHeldHere(this.deps, ref);
        if (replica.role !== 'primary') throw replica.notPrimary();
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
        if (recordsLeft > 0 && bytesLeft > 0 && ref.offset < replica.hw) {
          const read = replica.store.readForFetch(ref.offset, {
            maxRecords: Math.min(recordsLeft, this.deps.limits.fetchMaxRecords),
            maxBytes: bytesLeft,
            endOffset: replica.hw,
          });
          result.records = read.records;
          recordsLeft -= read.records.length;
          bytesLeft -= read.bytes;
          if (read.records.length > 0) {
            this.deps.metrics.recordsFetched.inc({ topic: ref.topic }, read.records.length);
            this.deps.metrics.bytesFetched.inc({ topic: ref.topic }, payloadBytes(read.records));
          }
        }
      } catch (error) {
        result.error = inlineError(this.deps, error);
      }
      return result;
    });
    return { partitions };
  }
}

/** Resolves when any replica's HW or role changes, after waitMs, or when the client goes away. */
function waitForChange(replicas: PartitionReplica[], waitMs: number, ctx: Context): Promise<void> {
  return new Promise((resolve) => {
    const unsubscribes: Array<() => void> = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      for (const unsubscribe of unsubscribes) unsubscribe();
      ctx.res.off('close', finish);
      resolve();
    };
    const timer = setTimeout(finish, waitMs);
    for (const replica of replicas) unsubscribes.push(replica.onChange(finish));
    // The response closes early only when the client went away: stop waiting for it.
    ctx.res.once('close', finish);
  });
}
