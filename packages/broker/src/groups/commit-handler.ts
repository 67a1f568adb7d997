/**
 * `POST /commit` and `POST /offsets`: committed offsets of consumer groups, stored with each
 * partition's log on its primary (the broker's one database) and replicated with the log
 * (through the same flush queue, so a commit is on every ISR member before it is answered).
 */
import {
  TesseraError,
  commitRequest,
  committedOffsetsRequest,
  parseOrThrow,
  type CommitResponse,
  type CommittedOffsetsResponse,
} from '@tessera/protocol';
import type { Context } from '@tessera/service';
import { findReplicas, inlineError, notHeldHere, type HandlerDeps } from '../http/deps.js';

export async function handleCommit(deps: HandlerDeps, ctx: Context): Promise<void> {
  const request = parseOrThrow(commitRequest, ctx.state.body);
  const replicas = await findReplicas(deps, request.offsets);
  const results = await Promise.all(
    request.offsets.map(async (entry, i): Promise<CommitResponse['results'][number]> => {
      const ref = { topic: entry.topic, partition: entry.partition };
      try {
        const replica = replicas[i];
        if (replica === undefined || replica.isClosed) throw notHeldHere(deps, ref);
        if (replica.role !== 'primary') throw replica.notPrimary();
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
        // Up to the LEO, not only the HW: right after a change of primary the new primary's HW can
        // trail, for a moment, what the group already read below the old primary's HW.
        if (entry.offset > replica.store.leo) {
          throw new TesseraError('OFFSET_OUT_OF_RANGE', `cannot commit ${entry.offset} beyond the log end offset ${replica.store.leo}`, {
            logStartOffset: replica.logStartOffset,
            highWatermark: replica.hw,
          });
        }
        await replica.commit({ group: request.group, offset: entry.offset, generation: request.generation });
        return ref;
      } catch (error) {
        return { ...ref, error: inlineError(deps, error) };
      }
    }),
  );
  const body: CommitResponse = { results };
  ctx.body = body;
}

export async function handleCommittedOffsets(deps: HandlerDeps, ctx: Context): Promise<void> {
  const request = parseOrThrow(committedOffsetsRequest, ctx.state.body);
  const replicas = await findReplicas(deps, request.partitions);
  const partitions = request.partitions.map((ref, i): CommittedOffsetsResponse['partitions'][number] => {
    const replica = replicas[i];
    const base = { topic: ref.topic, partition: ref.partition, highWatermark: replica?.hw ?? 0, logStartOffset: replica?.logStartOffset ?? 0 };
    try {
      if (replica === undefined || replica.isClosed) throw notHeldHere(deps, ref);
      if (replica.role !== 'primary') throw replica.notPrimary();
      return { ...base, offset: replica.store.groupOffset(request.group)?.offset ?? null };
    } catch (error) {
      return { ...base, offset: null, error: inlineError(deps, error) };
    }
  });
  const body: CommittedOffsetsResponse = { partitions };
  ctx.body = body;
}
