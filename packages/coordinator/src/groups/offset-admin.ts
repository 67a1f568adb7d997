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
 */
import {
  BROKER_ROUTES,
  DELETED_GROUP_OFFSET,
  EpochRefusals,
  TesseraError,
  isTesseraError,
  resetOffsetFor,
  retry,
  withoutEpochs,
  type CommitResponse,
  type CommittedOffsetsResponse,
  type ErrorBody,
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
}

/**
 * Tries of a call after a primary answered UNKNOWN_EPOCH, and the waits between them: a few
 * seconds in all, while the primary fetches the map (it does so at once, at most every 250 ms).
 */
const UNKNOWN_EPOCH_RETRY = { retries: 5, initialMs: 100, maxMs: 1_000 };

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
    if (!request.execute) {
      // A dry run still says when the reset would be refused.
      this.deps.groups.assertEmpty(groupId);
      return { group: groupId, topic: request.topic, executed: false, generation: null, partitions: await this.plan(groupId, request, partitions) };
    }
    const generation = this.deps.groups.takeExclusive(groupId, { topic: request.topic, create: true, touch: true });
    try {
      const planned = await this.plan(groupId, request, partitions);
      await this.store(groupId, generation, request.topic, new Map(planned.map((p) => [p.partition, p.target])));
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
        await this.store(groupId, generation, topicName, new Map(topic.partitions.map((p) => [p.partition, DELETED_GROUP_OFFSET])));
      }
      this.deps.groups.remove(groupId);
    } finally {
      this.deps.groups.release(groupId);
    }
  }

  /** Reads each partition's committed offset, log start and HW (and the time lookup) on its primary, and computes the targets. */
  private async plan(groupId: string, request: ResetOffsetsRequest, partitions: number[]): Promise<ResetOffsetsResponse['partitions']> {
    const out: ResetOffsetsResponse['partitions'] = [];
    await Promise.all(
      [...this.byPrimary(request.topic, partitions)].map(async ([url, refs]) => {
        const committed = await this.callPrimary<CommittedOffsetsResponse>(
          url,
          BROKER_ROUTES.committedOffsets,
          { group: groupId, partitions: refs },
          (answer) => answer.partitions,
        );
        const target = request.target;
        const atTime = new Map<number, number>();
        if (target.to === 'timestamp') {
          const found = await this.callPrimary<ListOffsetsResponse>(
            url,
            BROKER_ROUTES.listOffsets,
            { partitions: refs.map((ref) => ({ ...ref, at: { timestamp: target.timestamp } })) },
            (answer) => answer.partitions,
          );
          for (const entry of found.partitions) atTime.set(entry.partition, entry.offset);
        }
        for (const entry of committed.partitions) {
          const at = atTime.get(entry.partition);
          const position = { current: entry.offset, logStartOffset: entry.logStartOffset, highWatermark: entry.highWatermark };
          out.push({ partition: entry.partition, ...position, target: resetOffsetFor(target, at === undefined ? position : { ...position, atTimestamp: at }) });
        }
      }),
    );
    return out.sort((a, b) => a.partition - b.partition);
  }

  /**
   * Stores `offsets` (partition → offset) at `generation` on each partition's primary; any
   * refusal fails the whole call. Every primary's call ends (answered, or its retries spent)
   * before this returns: the group is released after it, and a call still being retried then
   * could store this generation's offsets over what the group's next owner does.
   */
  private async store(groupId: string, generation: number, topic: string, offsets: Map<number, number>): Promise<void> {
    await allOrFirstError(
      [...this.byPrimary(topic, [...offsets.keys()])].map(([url, refs]) =>
        this.callPrimary<CommitResponse>(
          url,
          BROKER_ROUTES.adminGroupOffsets,
          { group: groupId, generation, offsets: refs.map((ref) => ({ ...ref, offset: offsets.get(ref.partition)! })) },
          (answer) => answer.results,
        ),
      ),
    );
  }

  /**
   * POSTs `body` to the primary at `url`: its answer when no partition in it has an error, else
   * the first partition error. A primary behind the epochs named (UNKNOWN_EPOCH) is fetching the
   * map, so it gets the same call again after a wait, a few times: reading offsets twice is
   * harmless, and storing the same offsets at the same generation again changes nothing (the
   * group is held, so no member commits at that generation meanwhile). A broker of an earlier
   * release, which refuses the epoch field, gets the call without epochs.
   */
  private callPrimary<T>(url: string, route: string, body: object, entries: (answer: T) => PartitionAnswer[]): Promise<T> {
    return retry(
      async () => {
        const answer = await this.epochs.send(url, body, withoutEpochs, (sent) =>
          this.deps.client.post<T>(url + route, sent, { timeoutMs: this.deps.timeoutMs }),
        );
        for (const entry of entries(answer)) {
          if (entry.error !== undefined) throw partitionError(entry.topic, entry.partition, entry.error);
        }
        return answer;
      },
      { ...UNKNOWN_EPOCH_RETRY, shouldRetry: (error) => isTesseraError(error, 'UNKNOWN_EPOCH') },
    );
  }

  /**
   * Partitions grouped by their primary's internal URL, each with its epoch in the same look at
   * the assignment; PARTITION_OFFLINE when one has no live primary.
   */
  private byPrimary(topic: string, partitions: number[]): Map<string, PartitionAtEpoch[]> {
    const out = new Map<string, PartitionAtEpoch[]>();
    for (const partition of partitions) {
      const state = this.deps.cluster.partition(topic, partition);
      const broker = state.primary === null ? undefined : this.deps.cluster.brokers.get(state.primary);
      if (broker === undefined || !broker.alive) {
        throw new TesseraError('PARTITION_OFFLINE', `${topic}/${partition} has no live primary; nothing was changed`);
      }
      const ref = { topic, partition, epoch: state.epoch };
      const list = out.get(broker.internalUrl);
      if (list === undefined) out.set(broker.internalUrl, [ref]);
      else list.push(ref);
    }
    return out;
  }
}

/** Waits for every promise to settle; then throws the first rejection, if any. */
async function allOrFirstError(promises: Array<Promise<unknown>>): Promise<void> {
  const failed = (await Promise.allSettled(promises)).find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
}

function partitionError(topic: string, partition: number, body: ErrorBody['error']): TesseraError {
  const error = TesseraError.fromBody({ error: body }) ?? new TesseraError('INTERNAL', body.message);
  return new TesseraError(error.code, `${topic}/${partition}: ${error.message}`, error.details);
}
