// Proves a consumer's commits reach the primary one at a time, in the order they were asked
// for: a commit asked for while another is out waits for its answer, so an older offset can
// never land after a newer one (which would hand a revoked partition on behind what was handled).
import { describe, expect, it } from 'vitest';
import { DEFAULT_RETRY, type CommitRequest } from '@tessera/protocol';
import type { Connection } from '../connection/connection.js';
import type { MetadataCache } from '../cluster/metadata-cache.js';
import { Offsets } from './offsets.js';
import { newPartitionState, type PartitionState } from './partition-state.js';

/** A primary that answers each commit when the test says so; records what it was sent, in order. */
function slowPrimary() {
  const sent: number[] = [];
  const answers: Array<() => void> = [];
  const connection = {
    broker: (_url: string, _route: string, _query: object, body: CommitRequest) =>
      new Promise((resolve) => {
        sent.push(body.offsets[0]!.offset);
        answers.push(() => resolve({ results: body.offsets.map(({ topic, partition }) => ({ topic, partition })) }));
      }),
  } as unknown as Connection;
  return { connection, sent, answers };
}

describe('Offsets.commit', () => {
  it('sends a commit only once the one before it is answered, and the newest offset lands last', async () => {
    const { connection, sent, answers } = slowPrimary();
    const state: PartitionState = { ...newPartitionState(0), consumedOffset: 0 };
    const offsets = new Offsets({
      group: 'g',
      topic: 't',
      startAt: 'earliest',
      owned: new Map([[0, state]]),
      connection,
      metadata: {} as MetadataCache,
      retry: DEFAULT_RETRY,
      member: () => ({ memberId: 'm', generation: 2 }),
      heartbeat: async () => undefined,
      groupByPrimary: async (partitions) => new Map([['https://broker-1.invalid', partitions.map((partition) => ({ partition, epoch: 0 }))]]),
      onPartitionError: (error) => {
        throw error;
      },
    });

    // The background commit of what was handled so far, then (a rebalance) the commit of the revoked partition.
    const background = offsets.commit(new Map([[0, 1]]));
    const revoked = offsets.commit(new Map([[0, 5]]));
    await new Promise((resolve) => setImmediate(resolve));
    expect(sent).toEqual([1]);

    answers[0]!();
    await background;
    await new Promise((resolve) => setImmediate(resolve));
    expect(sent).toEqual([1, 5]);
    answers[1]!();
    await revoked;
    expect(state.committedOffset).toBe(5);
  });
});
