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
 */
import {
  BROKER_ROUTES,
  DELETED_GROUP_OFFSET,
  TesseraError,
  resetOffsetFor,
  type CommitResponse,
  type CommittedOffsetsResponse,
  type JsonHttpClient,
  type ListOffsetsResponse,
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

export class GroupOffsetAdmin {
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
      [...this.byPrimary(request.topic, partitions)].map(async ([url, list]) => {
        const refs = list.map((partition) => ({ topic: request.topic, partition }));
        const committed = await this.deps.client.post<CommittedOffsetsResponse>(
          url + BROKER_ROUTES.committedOffsets,
          { group: groupId, partitions: refs },
          { timeoutMs: this.deps.timeoutMs },
        );
        const target = request.target;
        const atTime = new Map<number, number>();
        if (target.to === 'timestamp') {
          const found = await this.deps.client.post<ListOffsetsResponse>(
            url + BROKER_ROUTES.listOffsets,
            { partitions: refs.map((ref) => ({ ...ref, at: { timestamp: target.timestamp } })) },
            { timeoutMs: this.deps.timeoutMs },
          );
          for (const entry of found.partitions) {
            if (entry.error !== undefined) throw partitionError(request.topic, entry.partition, entry.error);
            atTime.set(entry.partition, entry.offset);
          }
        }
        for (const entry of committed.partitions) {
          if (entry.error !== undefined) throw partitionError(request.topic, entry.partition, entry.error);
          const at = atTime.get(entry.partition);
          const position = { current: entry.offset, logStartOffset: entry.logStartOffset, highWatermark: entry.highWatermark };
          out.push({ partition: entry.partition, ...position, target: resetOffsetFor(target, at === undefined ? position : { ...position, atTimestamp: at }) });
        }
      }),
    );
    return out.sort((a, b) => a.partition - b.partition);
  }

  /** Stores `offsets` (partition → offset) at `generation` on each partition's primary; any refusal fails the whole call. */
  private async store(groupId: string, generation: number, topic: string, offsets: Map<number, number>): Promise<void> {
    await Promise.all(
      [...this.byPrimary(topic, [...offsets.keys()])].map(async ([url, list]) => {
        const answer = await this.deps.client.post<CommitResponse>(
          url + BROKER_ROUTES.adminGroupOffsets,
          { group: groupId, generation, offsets: list.map((partition) => ({ topic, partition, offset: offsets.get(partition)! })) },
          { timeoutMs: this.deps.timeoutMs },
        );
        for (const result of answer.results) {
          if (result.error !== undefined) throw partitionError(topic, result.partition, result.error);
        }
      }),
    );
  }

  /** Partitions grouped by their primary's internal URL; PARTITION_OFFLINE when one has no live primary. */
  private byPrimary(topic: string, partitions: number[]): Map<string, number[]> {
    const out = new Map<string, number[]>();
    for (const partition of partitions) {
      const state = this.deps.cluster.partition(topic, partition);
      const broker = state.primary === null ? undefined : this.deps.cluster.brokers.get(state.primary);
      if (broker === undefined || !broker.alive) {
        throw new TesseraError('PARTITION_OFFLINE', `${topic}/${partition} has no live primary; nothing was changed`);
      }
      const list = out.get(broker.internalUrl);
      if (list === undefined) out.set(broker.internalUrl, [partition]);
      else list.push(partition);
    }
    return out;
  }
}

function partitionError(topic: string, partition: number, body: NonNullable<CommitResponse['results'][number]['error']>): TesseraError {
  const error = TesseraError.fromBody({ error: body }) ?? new TesseraError('INTERNAL', body.message);
  return new TesseraError(error.code, `${topic}/${partition}: ${error.message}`, error.details);
}
