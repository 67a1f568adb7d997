/**
 * `POST /commit` and `POST /offsets`: committed offsets of consumer groups, stored with each
 * partition's log on its primary (the broker's one database) and replicated with the log
 * (through the same flush queue, so a commit is on every ISR member before it is answered).
 * `POST /internal/group-offsets`: the coordinator stores a group's offsets after a reset or a
 * delete, at a generation it has just made the group's newest.
 */
import {
  DELETED_GROUP_OFFSET,
  TesseraError,
  adminGroupOffsetsRequest,
  commitRequest,
  committedOffsetsRequest,
  parseOrThrow,
  type CommitResponse,
  type CommittedOffsetsResponse,
  type PartitionAtEpoch,
} from '@tessera/protocol';
import type { Context } from '@tessera/service';
import type { Partition } from '../partition/index.js';
import { findReplicas, inlineError, requirePrimary, type HandlerDeps } from '../http/deps.js';

type Results = CommitResponse['results'];

export async function handleCommit(deps: HandlerDeps, ctx: Context): Promise<void> {
  ctx.body = await commitOffsets(deps, ctx.state.body);
}

/** One `POST /commit` (`body` not yet validated), over HTTP or the data stream. */
export async function commitOffsets(deps: HandlerDeps, body: unknown): Promise<CommitResponse> {
  const request = parseOrThrow(commitRequest, body);
  const results = await commitEach(deps, request.offsets, async (replica, offset) => {
    // Only the group's current generation may commit: as the coordinator last told us, or,
    // when it never did (this broker restarted while the coordinator is down), as the last
    // commit replicated here says. A newer generation than that is not believed: a commit
    // could otherwise fence every real member out with a far-future generation.
    const known = deps.link.generation(request.group) ?? replica.storedGeneration(request.group);
    if (request.generation !== known) {
      const message =
        known < 0
          ? `group ${request.group}: generation not known here yet, retry`
          : `group ${request.group} is at generation ${known}, not ${request.generation}`;
      throw new TesseraError('GENERATION_MISMATCH', message, known < 0 ? {} : { generation: known });
    }
    await replica.commit({ group: request.group, offset, generation: request.generation });
  });
  return { results };
}

/**
 * The coordinator is the authority on generations: it bumped the group's generation before
 * calling, so its generation is believed even when this broker has not heard of it yet. The
 * partition still refuses it if a newer one is stored (a later reset won the race), and once
 * stored, every commit of an older generation (a stale member's) is refused by the partition.
 */
export async function handleAdminGroupOffsets(deps: HandlerDeps, ctx: Context): Promise<void> {
  const request = parseOrThrow(adminGroupOffsetsRequest, ctx.state.body);
  const results = await commitEach(deps, request.offsets, (replica, offset) =>
    replica.commit({ group: request.group, offset, generation: request.generation }),
  );
  const body: CommitResponse = { results };
  ctx.body = body;
}

/** Commits one offset per entry on this broker's primaries; each partition answers on its own. */
async function commitEach(
  deps: HandlerDeps,
  entries: Array<PartitionAtEpoch & { offset: number }>,
  commit: (replica: Partition, offset: number) => Promise<void>,
): Promise<Results> {
  const replicas = await findReplicas(deps, entries);
  return Promise.all(
    entries.map(async (entry, i): Promise<Results[number]> => {
      const ref = { topic: entry.topic, partition: entry.partition };
      try {
        const replica = requirePrimary(deps, replicas[i], entry);
        // Up to the LEO, not only the HW: right after a change of primary the new primary's HW can
        // trail, for a moment, what the group already read below the old primary's HW.
        if (entry.offset !== DELETED_GROUP_OFFSET && entry.offset > replica.store.leo) {
          throw new TesseraError('OFFSET_OUT_OF_RANGE', `cannot commit ${entry.offset} beyond the log end offset ${replica.store.leo}`, {
            logStartOffset: replica.logStartOffset,
            highWatermark: replica.hw,
          });
        }
        await commit(replica, entry.offset);
        return ref;
      } catch (error) {
        return { ...ref, error: inlineError(deps, error) };
      }
    }),
  );
}

export async function handleCommittedOffsets(deps: HandlerDeps, ctx: Context): Promise<void> {
  const request = parseOrThrow(committedOffsetsRequest, ctx.state.body);
  const replicas = await findReplicas(deps, request.partitions);
  const partitions = request.partitions.map((ref, i): CommittedOffsetsResponse['partitions'][number] => {
    const replica = replicas[i];
    const base = { topic: ref.topic, partition: ref.partition, highWatermark: replica?.hw ?? 0, logStartOffset: replica?.logStartOffset ?? 0 };
    try {
      return { ...base, offset: requirePrimary(deps, replica, ref).store.groupOffset(request.group)?.offset ?? null };
    } catch (error) {
      return { ...base, offset: null, error: inlineError(deps, error) };
    }
  });
  const body: CommittedOffsetsResponse = { partitions };
  ctx.body = body;
}
