/** What the request handlers share: the replicas, the coordinator link, limits, and the lookups they all do. */
import { InvariantError, TesseraError, decodeFrame, splitTail, parseOrThrow, partitionRef, type ErrorBody, type PartitionAtEpoch, type PartitionRef } from '@tessera/protocol';
import type { Caller, Context, Logger } from '@tessera/service';
import type { CoordinatorLink } from '../cluster/index.js';
import type { BrokerLimits } from '../config.js';
import type { BrokerMetrics } from '../metrics/broker-metrics.js';
import type { Partition, PartitionSet } from '../partition/index.js';

export interface HandlerDeps {
  replicas: PartitionSet;
  link: CoordinatorLink;
  limits: BrokerLimits;
  maxValueBytes: number;
  logger: Logger;
  metrics: BrokerMetrics;
  /**
   * Throws FORBIDDEN unless the request's caller may produce to `topic` (the ACLs; members
   * always may). For a frame of many partitions, whose route rule only asks for a caller.
   */
  authorizeProduce: (caller: Caller, membersUnchecked: boolean, topic: string) => void;
}

/** The topic and partition of a route, validated like a body (`/topics/:topic/partitions/:partition/...`). */
export function routePartition(ctx: Context): PartitionRef {
  const raw = String(ctx.params.partition ?? '');
  const partition = /^\d{1,10}$/.test(raw) ? Number(raw) : raw;
  return parseOrThrow(partitionRef, { topic: ctx.params.topic, partition }, 'route parameters');
}

/**
 * Finds the replicas of `refs`; when any is missing, refreshes the cluster map once (the
 * broker may not have heard of a new topic yet) and looks again. Missing ones map to undefined.
 */
export async function findReplicas(deps: HandlerDeps, refs: PartitionRef[]): Promise<Array<Partition | undefined>> {
  let found = refs.map((ref) => deps.replicas.get(ref.topic, ref.partition));
  if (found.some((replica) => replica === undefined)) {
    try {
      await deps.link.refreshMetadata();
    } catch (error) {
      deps.logger.debug({ err: (error as Error).message }, 'metadata refresh for an unknown partition failed');
    }
    found = refs.map((ref) => deps.replicas.get(ref.topic, ref.partition));
  }
  return found;
}

/**
 * The error for a partition this broker holds no replica of: NOT_PRIMARY naming the primary
 * when the cluster map has the partition (it lives elsewhere), else PARTITION_NOT_FOUND.
 */
export function notHeldHere(deps: HandlerDeps, ref: PartitionRef): TesseraError {
  const known = deps.link.primaryOf(ref.topic, ref.partition);
  if (known !== undefined) {
    return new TesseraError('NOT_PRIMARY', `broker ${deps.link.brokerId} holds no replica of ${ref.topic}/${ref.partition}`, {
      primary: deps.link.brokerRef(known.primary),
    });
  }
  return new TesseraError('PARTITION_NOT_FOUND', `this broker holds no replica of ${ref.topic}/${ref.partition}`);
}

/**
 * The replica if this broker leads it; else the NOT_PRIMARY / PARTITION_NOT_FOUND error to
 * answer. A caller routing by a newer map (`ref.epoch` above the replica's) gets UNKNOWN_EPOCH,
 * and the map is fetched: until it applies, this broker's role may be stale, and the replica
 * may even be one of a deleted topic of the same name, to be dropped.
 */
export function requirePrimary(deps: HandlerDeps, replica: Partition | undefined, ref: PartitionAtEpoch): Partition {
  if (replica === undefined || replica.isClosed) throw notHeldHere(deps, ref);
  if (ref.epoch !== undefined && ref.epoch > replica.epoch) {
    deps.link.requestRefreshForCaller(`a caller knows epoch ${ref.epoch} of ${ref.topic}/${ref.partition}`);
    throw new TesseraError(
      'UNKNOWN_EPOCH',
      `broker ${deps.link.brokerId} knows epoch ${replica.epoch} of ${ref.topic}/${ref.partition}, the request names ${ref.epoch}; it is fetching the cluster map, try again shortly`,
      { epoch: replica.epoch },
    );
  }
  if (replica.role !== 'primary') throw replica.notPrimary();
  return replica;
}

/** The inline error of one partition in a multi-partition answer. */
export function inlineError(deps: HandlerDeps, error: unknown): ErrorBody['error'] {
  if (error instanceof TesseraError) return error.toBody().error;
  // A broken invariant is not one partition's error: it stops the broker (see the service's edge).
  if (error instanceof InvariantError) throw error;
  deps.logger.error({ err: error }, 'partition operation failed');
  return new TesseraError('INTERNAL', 'internal error').toBody().error;
}

/** The request's frame bytes; INVALID_REQUEST when the body is not a frame. */
export function requireFrame(ctx: Context): Buffer {
  if (ctx.state.frame === undefined) {
    throw new TesseraError('INVALID_REQUEST', `POST ${ctx.path} takes a frame (content-type application/vnd.tessera.frame)`);
  }
  return ctx.state.frame;
}

/**
 * A frame's head validated by `parse` (a zod schema through parseOrThrow), and its tail cut into
 * one part per entry of `entries(head)` (their `bytes` must cover it exactly).
 */
export function parseFrame<H>(frame: Buffer, parse: (raw: unknown) => H, entries: (head: H) => ReadonlyArray<{ bytes: number }>): { head: H; parts: Buffer[] } {
  const { head: raw, tail } = decodeFrame(frame);
  const head = parse(raw);
  return { head, parts: splitTail(tail, entries(head).map((entry) => entry.bytes)) };
}
