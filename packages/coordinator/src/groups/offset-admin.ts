/**
 * Administration of a group's committed offsets: reset (`kafka-consumer-groups --reset-offsets`)
 * and delete. Committed offsets live on the partitions' primaries (`broker/src/groups/`), so the
 * coordinator reads them there and writes them there.
 *
 * Why a reset cannot be overwritten or raced (see docs/architecture.md, "Positions"):
 * - it is refused while the group has members, and while it runs no member may join
 *   (`GroupManager.takeExclusive`), so no member reads offsets the reset is about to replace;
 * - it first bumps the group's generation (persisted), then stores every new offset at that
 *   generation through the primaries' commit path (`POST /internal/group-offsets`, coordinator
 *   only). A partition refuses any commit of an older generation than one it stored, so a member
 *   that was dropped from the group but still runs cannot overwrite the reset afterwards, and
 *   one that commits before the reset lands is simply overwritten by it;
 * - the next member joins after the reset, in a newer generation, and starts from the offsets
 *   the reset stored.
 *
 * Every call names each partition's epoch in the coordinator's assignment, so a broker that has
 * not applied it yet (a topic deleted and made again, a failover it missed) refuses it
 * (UNKNOWN_EPOCH) instead of reading or writing the offsets of a replica it is about to drop.
 *
 * A failover while a reset or delete runs does not fail it: a partition whose broker answers that
 * it is not (or not yet) the partition's primary at the epoch named, or does not answer at all,
 * is sent again to the primary, at the epoch, that the coordinator's assignment names at that
 * moment, for as long as a failover takes (`failoverDeadlineMs`).
 */
import {
  BROKER_ROUTES,
  DELETED_GROUP_OFFSET,
  EpochRefusals,
  TesseraError,
  isNetworkError,
  resetOffsetFor,
  retry,
  withoutEpochs,
  type CommitResponse,
  type CommittedOffsetsResponse,
  type ErrorBody,
  type ErrorCode,
  type JsonHttpClient,
  type ListOffsetsResponse,
  type PartitionAtEpoch,
  type ResetOffsetsRequest,
  type ResetOffsetsResponse,
} from '@tessera/protocol';
import type { Cluster } from '../cluster/cluster.js';
import type { GroupManager } from './groups.js';

export interface OffsetAdminDeps {
  cluster: Cluster;
  groups: GroupManager;
  /** Signed as the coordinator; each call bounded by its own timeout. */
  client: JsonHttpClient;
  timeoutMs: number;
  /** The cluster's broker timeout: a primary silent this long is declared dead and its partitions fail over. */
  brokerTimeoutMs: number;
}

/**
 * Refusals meaning that the broker called is not, or not yet, the partition's primary at the
 * epoch named: it was deposed (NOT_PRIMARY, STALE_EPOCH), has not applied the coordinator's
 * assignment yet (UNKNOWN_EPOCH, which makes it fetch the map), or holds no replica yet
 * (PARTITION_NOT_FOUND). The partition is sent again to the primary the assignment names then.
 * Every other refusal (bad input, FORBIDDEN, a full disk, a newer generation stored) is the
 * answer: the partition's primary itself refused, and a few seconds would not change that.
 */
const NOT_PRIMARY_AT_EPOCH: ReadonlySet<ErrorCode> = new Set(['NOT_PRIMARY', 'STALE_EPOCH', 'UNKNOWN_EPOCH', 'PARTITION_NOT_FOUND']);

/**
 * How long the broker a failover promotes takes to serve at its new epoch once the coordinator
 * assigned it: it is notified at once, and a call naming the new epoch before it applied the map
 * makes it fetch the map (at most every 250 ms), so a few seconds cover it.
 */
const MAP_APPLIED_MS = 3_000;

/**
 * The waits between tries: short at first (a new primary applies the map quickly), then a
 * second. The deadline (`failoverDeadlineMs`) ends them, not the count: from the fifth wait on
 * each is 800 ms or more, so 100 tries outlast any broker timeout up to a minute.
 */
const FAILOVER_RETRY = { retries: 100, initialMs: 100, multiplier: 2, maxMs: 1_000, jitter: 0.2 };

/** A partition's entry in a primary's answer: its error, when it has one. */
type PartitionAnswer = { topic: string; partition: number; error?: ErrorBody['error'] };

export class GroupOffsetAdmin {
  /** Brokers of an earlier release, which refuse partition epochs. */
  private readonly epochs = new EpochRefusals();

  constructor(private readonly deps: OffsetAdminDeps) {}

  /** A dry run answers the new offsets; `execute` also stores them (refused while the group has members). */
  async reset(groupId: string, request: ResetOffsetsRequest): Promise<ResetOffsetsResponse> {
    const topic = this.deps.cluster.topic(request.topic);
    const partitions = request.partitions ?? topic.partitions.map((p) => p.partition);
    for (const p of partitions) this.deps.cluster.partition(request.topic, p);
    const deadlineMs = this.failoverDeadlineMs();
    if (!request.execute) {
      // A dry run still says when the reset would be refused.
      this.deps.groups.assertEmpty(groupId);
      return { group: groupId, topic: request.topic, executed: false, generation: null, partitions: await this.plan(groupId, request, partitions, deadlineMs) };
    }
    const generation = this.deps.groups.takeExclusive(groupId, { topic: request.topic, create: true, touch: true });
    try {
      const planned = await this.plan(groupId, request, partitions, deadlineMs);
      await this.store(groupId, generation, request.topic, new Map(planned.map((p) => [p.partition, p.target])), deadlineMs);
      return { group: groupId, topic: request.topic, executed: true, generation, partitions: planned };
    } finally {
      this.deps.groups.release(groupId);
    }
  }

  /** Deletes an empty group: its committed offsets on every partition of its topic, then the group. */
  async delete(groupId: string): Promise<void> {
    const generation = this.deps.groups.takeExclusive(groupId, { create: false });
    try {
      const topicName = this.deps.groups.get(groupId)!.topic;
      const topic = this.deps.cluster.topics.get(topicName);
      // A topic deleted since took its partitions, and the offsets in them, along.
      if (topic !== undefined) {
        const offsets = new Map(topic.partitions.map((p) => [p.partition, DELETED_GROUP_OFFSET]));
        await this.store(groupId, generation, topicName, offsets, this.failoverDeadlineMs());
      }
      this.deps.groups.remove(groupId);
    } finally {
      this.deps.groups.release(groupId);
    }
  }

  /**
   * Stores the deletion mark at `generation` on every partition of `topic`, for a group the
   * group manager does not hold: a deleted push subscription's, whose only committers are the
   * brokers' delivery loops (at SUBSCRIPTION_DELIVERY_GENERATION, fenced by deletion). Nobody
   * joins such a group, so there is nothing to take or release; storing the mark again, after a
   * failure part of the way, is harmless. Only `partitions` when given (those a run before did not
   * mark). A partition without a live primary is left out rather than holding the others back:
   * the answer is the partitions not marked (an offline one keeps the group's offsets until its
   * primary is back, and is marked then).
   */
  async markDeleted(groupId: string, topic: string, generation: number, partitions?: readonly number[]): Promise<number[]> {
    const wanted = partitions ?? this.deps.cluster.topic(topic).partitions.map((p) => p.partition);
    const online = wanted.filter((partition) => this.livePrimary(topic, partition) !== undefined);
    if (online.length > 0) {
      await this.store(groupId, generation, topic, new Map(online.map((partition) => [partition, DELETED_GROUP_OFFSET])), this.failoverDeadlineMs());
    }
    return wanted.filter((partition) => !online.includes(partition));
  }

  /** Reads each partition's committed offset, log start and HW (and the time lookup) on its primary, and computes the targets. */
  private async plan(groupId: string, request: ResetOffsetsRequest, partitions: number[], deadlineMs: number): Promise<ResetOffsetsResponse['partitions']> {
    const committed = await this.callPrimaries(
      request.topic,
      partitions,
      BROKER_ROUTES.committedOffsets,
      (refs) => ({ group: groupId, partitions: refs }),
      (answer: CommittedOffsetsResponse) => answer.partitions,
      deadlineMs,
    );
    const target = request.target;
    const atTime = new Map<number, number>();
    if (target.to === 'timestamp') {
      const found = await this.callPrimaries(
        request.topic,
        partitions,
        BROKER_ROUTES.listOffsets,
        (refs) => ({ partitions: refs.map((ref) => ({ ...ref, at: { timestamp: target.timestamp } })) }),
        (answer: ListOffsetsResponse) => answer.partitions,
        deadlineMs,
      );
      for (const entry of found) atTime.set(entry.partition, entry.offset);
    }
    const planned = committed.map((entry) => {
      const at = atTime.get(entry.partition);
      const position = { current: entry.offset, logStartOffset: entry.logStartOffset, highWatermark: entry.highWatermark };
      return { partition: entry.partition, ...position, target: resetOffsetFor(target, at === undefined ? position : { ...position, atTimestamp: at }) };
    });
    return planned.sort((a, b) => a.partition - b.partition);
  }

  /**
   * Stores `offsets` (partition → offset) at `generation` on each partition's primary; any
   * refusal fails the whole call. Every call ends (answered, or its tries spent) before this
   * returns: the group is released after it, and a call still being sent again then could store
   * this generation's offsets over what the group's next owner does.
   */
  private async store(groupId: string, generation: number, topic: string, offsets: Map<number, number>, deadlineMs: number): Promise<void> {
    await this.callPrimaries(
      topic,
      [...offsets.keys()],
      BROKER_ROUTES.adminGroupOffsets,
      (refs) => ({ group: groupId, generation, offsets: refs.map((ref) => ({ ...ref, offset: offsets.get(ref.partition)! })) }),
      (answer: CommitResponse) => answer.results,
      deadlineMs,
    );
  }

  /**
   * POSTs `body` for `partitions` of `topic` to their primaries, one call per primary with the
   * epochs of the same look at the assignment, and answers each partition's entry (in the order
   * of `partitions`). A partition its broker refuses as not (yet) its primary at that epoch
   * (`NOT_PRIMARY_AT_EPOCH`), or whose call got no answer, is sent again after a wait, to the
   * primary and at the epoch the assignment names then, until `deadlineMs`: reading offsets twice
   * is harmless, and so is storing the same offsets at the same generation again, on the same
   * broker or the one that took over (the group is held, so no member commits meanwhile).
   * Partitions answered, or refused for another reason, are not sent again. Each try waits for
   * every call it made, so once this settles no call is out; it then fails with the first other
   * refusal, else with the last error of a partition still unanswered. PARTITION_OFFLINE when a
   * partition has no live primary, at once: the coordinator fails a dead primary over as it
   * declares it dead, so none is left only while no broker of its ISR is alive, which the few
   * seconds of the budget seldom change. A broker of an earlier release, which refuses the epoch
   * field, gets the call without epochs.
   */
  private async callPrimaries<T, E extends PartitionAnswer>(
    topic: string,
    partitions: readonly number[],
    route: string,
    body: (refs: PartitionAtEpoch[]) => object,
    entries: (answer: T) => E[],
    deadlineMs: number,
  ): Promise<E[]> {
    const answered = new Map<number, E>();
    /** Partitions answered, or refused for good: not sent again. */
    const settled = new Set<number>();
    let refusal: unknown;
    const refuse = (partition: number, error: unknown) => {
      settled.add(partition);
      refusal ??= error;
    };
    const tryPending = async (): Promise<void> => {
      const calls = [...this.byPrimary(topic, partitions.filter((p) => !settled.has(p)))];
      const outcomes = await Promise.allSettled(
        calls.map(([url, refs]) =>
          this.epochs.send(url, body(refs), withoutEpochs, (sent) => this.deps.client.post<T>(url + route, sent, { timeoutMs: this.deps.timeoutMs })),
        ),
      );
      let askAgain: unknown;
      outcomes.forEach((outcome, i) => {
        const refs = calls[i][1];
        if (outcome.status === 'rejected') {
          if (isSentAgain(outcome.reason)) askAgain ??= outcome.reason;
          else for (const ref of refs) refuse(ref.partition, outcome.reason);
          return;
        }
        const byPartition = new Map(entries(outcome.value).map((entry) => [entry.partition, entry]));
        for (const ref of refs) {
          const entry = byPartition.get(ref.partition);
          if (entry === undefined) {
            refuse(ref.partition, new TesseraError('INTERNAL', `${topic}/${ref.partition}: ${calls[i][0]} answered no entry for it`));
          } else if (entry.error === undefined) {
            answered.set(ref.partition, entry);
            settled.add(ref.partition);
          } else {
            const error = partitionError(topic, ref.partition, entry.error);
            if (isSentAgain(error)) askAgain ??= error;
            else refuse(ref.partition, error);
          }
        }
      });
      if (askAgain !== undefined) throw askAgain;
    };
    try {
      await retry(tryPending, { ...FAILOVER_RETRY, deadlineMs, shouldRetry: isSentAgain });
    } catch (error) {
      throw refusal ?? error;
    }
    if (refusal !== undefined) throw refusal;
    return partitions.map((partition) => answered.get(partition)!);
  }

  /**
   * When the tries of a reset or delete starting now end: a primary that died is declared dead
   * after `brokerTimeoutMs` of silence, its in-sync secondary takes over in the same step, and
   * then applies the map (`MAP_APPLIED_MS`). Past it the last refusal is the answer; a call
   * already out then still ends within its own timeout.
   */
  private failoverDeadlineMs(): number {
    return performance.now() + this.deps.brokerTimeoutMs + MAP_APPLIED_MS;
  }

  /** The partition's primary, when alive, and its epoch, in one look at the assignment. */
  private livePrimary(topic: string, partition: number): { internalUrl: string; epoch: number } | undefined {
    const state = this.deps.cluster.partition(topic, partition);
    const broker = state.primary === null ? undefined : this.deps.cluster.brokers.get(state.primary);
    return broker?.alive === true ? { internalUrl: broker.internalUrl, epoch: state.epoch } : undefined;
  }

  /**
   * Partitions grouped by their primary's internal URL, each with its epoch in the same look at
   * the assignment; PARTITION_OFFLINE when one has no live primary.
   */
  private byPrimary(topic: string, partitions: number[]): Map<string, PartitionAtEpoch[]> {
    const out = new Map<string, PartitionAtEpoch[]>();
    for (const partition of partitions) {
      const primary = this.livePrimary(topic, partition);
      if (primary === undefined) throw new TesseraError('PARTITION_OFFLINE', `${topic}/${partition} has no live primary`);
      const ref = { topic, partition, epoch: primary.epoch };
      const list = out.get(primary.internalUrl);
      if (list === undefined) out.set(primary.internalUrl, [ref]);
      else list.push(ref);
    }
    return out;
  }
}

/** Whether a partition refused with `error`, or left unanswered by it, is sent again to its current primary. */
function isSentAgain(error: unknown): boolean {
  return isNetworkError(error) || (error instanceof TesseraError && NOT_PRIMARY_AT_EPOCH.has(error.code));
}

function partitionError(topic: string, partition: number, body: ErrorBody['error']): TesseraError {
  const error = TesseraError.fromBody({ error: body }) ?? new TesseraError('INTERNAL', body.message);
  return new TesseraError(error.code, `${topic}/${partition}: ${error.message}`, error.details);
}
