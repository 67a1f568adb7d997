import { afterEach, describe, expect, it } from 'vitest';
import { TesseraClient } from '../client.js';
import type { ConsumedRecord } from './consumer.js';
import { answer, closeAfterTest, closeTestResources, errorAnswer, fetchFrameAnswer, metadataFor, pollAtLeast, stub, StubServer, until, type StubFetchPartition, type StubRequest } from '../test-support/stub-server.js';

afterEach(closeTestResources);

function client(coordinator: StubServer): TesseraClient {
  const c = new TesseraClient({ coordinator: coordinator.url, retry: { initialMs: 1, maxMs: 20, jitter: 0 }, requestTimeoutMs: 2_000 });
  closeAfterTest(() => c.close());
  return c;
}

/** What the stub coordinator tells the member; tests change it to script a rebalance. */
interface GroupScript {
  generation: number;
  assignment: number[];
  /** Answer the next heartbeat with UNKNOWN_MEMBER. */
  forget?: boolean;
}

function fakeCoordinator(coordinator: StubServer, metadata: () => unknown, group: GroupScript): void {
  let joins = 0;
  const membership = (memberId: string) => ({
    group: 'g',
    topic: 't',
    memberId,
    generation: group.generation,
    assignment: group.assignment,
    members: 1,
    sessionTimeoutMs: 10_000,
    heartbeatMs: 20,
  });
  coordinator
    .on('GET', '/metadata', () => metadata())
    .on('POST', '/groups/:group/join', () => membership(`m${++joins}`))
    .on('POST', '/groups/:group/heartbeat', (r) => {
      if (group.forget === true) {
        group.forget = false;
        return errorAnswer('UNKNOWN_MEMBER');
      }
      return membership(r.body.memberId);
    })
    .on('POST', '/groups/:group/leave', () => answer(204));
}

interface BrokerScript {
  logs: Map<number, number>; // partition → high watermark (records are `v<offset>`)
  logStartOffset?: number;
  committed?: Map<number, number>;
  /** Commits with a lower generation get GENERATION_MISMATCH. */
  minGeneration?: number;
  /** Partitions this broker no longer leads. */
  notPrimary?: Set<number>;
}

function fakeBroker(broker: StubServer, script: BrokerScript): void {
  const committed = (script.committed ??= new Map());
  const logStart = () => script.logStartOffset ?? 0;
  broker
    .on('POST', '/offsets', (r) => ({
      partitions: r.body.partitions.map(({ topic, partition }: { topic: string; partition: number }) => ({
        topic,
        partition,
        offset: committed.get(partition) ?? null,
        highWatermark: script.logs.get(partition) ?? 0,
        logStartOffset: logStart(),
      })),
    }))
    .on('POST', '/fetch', async (r) => {
      const answerNow = () =>
        r.body.partitions.map(({ topic, partition, offset }: { topic: string; partition: number; offset: number }) => {
          const hw = script.logs.get(partition) ?? 0;
          const base: StubFetchPartition = { topic, partition, highWatermark: hw, logStartOffset: logStart(), records: [] };
          if (script.notPrimary?.has(partition)) return { ...base, error: { code: 'NOT_PRIMARY', message: 'moved', retriable: true } };
          if (offset < logStart() || offset > hw) {
            return { ...base, error: { code: 'OFFSET_OUT_OF_RANGE', message: 'out of range', retriable: false } };
          }
          const end = Math.min(hw, offset + (r.body.maxRecords ?? 1000));
          for (let o = offset; o < end; o++) base.records.push({ offset: o, key: `k${partition}`, value: `p${partition}-v${o}`, headers: null, timestamp: 1 });
          return base;
        });
      let result = answerNow();
      // A short long-poll keeps idle tests from spinning.
      if (result.every((p: StubFetchPartition) => p.records.length === 0 && p.error === undefined)) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(r.body.waitMs ?? 0, 20)));
        result = answerNow();
      }
      return fetchFrameAnswer(result);
    })
    .on('POST', '/commit', (r) => ({
      results: r.body.offsets.map(({ topic, partition, offset }: { topic: string; partition: number; offset: number }) => {
        if (r.body.generation < (script.minGeneration ?? 0)) {
          return { topic, partition, error: { code: 'GENERATION_MISMATCH', message: 'old generation', retriable: true } };
        }
        committed.set(partition, offset);
        return { topic, partition };
      }),
    }));
}

/** A one-broker stub cluster whose group gives its members partition 0 of topic `t` (generation 1), the broker playing `script`. */
async function onePartitionGroup(script: BrokerScript): Promise<{ coordinator: StubServer; broker: StubServer }> {
  return oneBrokerGroup(1, script);
}

/** A one-broker stub cluster leading `partitions` partitions of topic `t`, all given to the group's member (generation 1). */
async function oneBrokerGroup(partitions: number, script: BrokerScript): Promise<{ coordinator: StubServer; broker: StubServer }> {
  const coordinator = await stub('coordinator');
  const broker = await stub('broker');
  const all = Array.from({ length: partitions }, (_, i) => i);
  fakeCoordinator(coordinator, () => metadataFor('t', [{ id: 1, url: broker.url }], all.map(() => 1)), { generation: 1, assignment: all });
  fakeBroker(broker, script);
  return { coordinator, broker };
}

function firstOffsets(records: ConsumedRecord[]): Record<number, number> {
  const first: Record<number, number> = {};
  for (const r of records) first[r.partition] ??= r.offset;
  return first;
}

describe('Consumer', () => {
  it('starts at the committed offset, else at the log start when fromBeginning', async () => {
    // Proves the start rule for a group with and without commits (fromBeginning).
    const { coordinator, broker } = await oneBrokerGroup(2, { logs: new Map([[0, 10], [1, 10]]), logStartOffset: 2, committed: new Map([[0, 5]]) });
    const consumer = client(coordinator).consumer({ group: 'g', topic: 't', fromBeginning: true });
    const records = await pollAtLeast(consumer, 13);
    expect(firstOffsets(records)).toEqual({ 0: 5, 1: 2 });
    expect(records.filter((r) => r.partition === 0).map((r) => r.offset)).toEqual([5, 6, 7, 8, 9]);
    expect(consumer.assignment()).toEqual([0, 1]);
  });

  it('hands out the exact bytes of fetched batches, skipping records below the fetch offset and at or above the high watermark', async () => {
    // Proves the frame fetch path: a batch that begins before the committed offset and runs past the HW yields only offsets 2..3, byte-exact.
    const { coordinator, broker } = await onePartitionGroup({ logs: new Map([[0, 4]]), committed: new Map([[0, 2]]) });
    const binary = Buffer.from([0, 0xff, 0xc3, 0x28, 0]);
    broker.on('POST', '/fetch', (r) => {
      expect(r.accept).toContain('application/vnd.tessera.frame');
      const { offset } = r.body.partitions[0];
      if (offset !== 2) return fetchFrameAnswer([{ topic: 't', partition: 0, highWatermark: 4, logStartOffset: 0, records: [] }]);
      return fetchFrameAnswer([
        {
          topic: 't',
          partition: 0,
          highWatermark: 4,
          logStartOffset: 0,
          records: [0, 1, 2, 3, 4, 5].map((o) => ({
            offset: o,
            key: o === 3 ? null : Buffer.from([o]),
            value: o === 2 ? binary : Buffer.alloc(0),
            headers: o === 2 ? { trace: binary, text: 'ü' } : null,
            timestamp: 1000 + o,
          })),
        },
      ]);
    });
    const consumer = client(coordinator).consumer({ group: 'g', topic: 't' });
    const records = await pollAtLeast(consumer, 2);
    expect(records.map((r) => r.offset)).toEqual([2, 3]);
    expect(records[0]).toMatchObject({ key: Buffer.from([2]), value: binary, timestamp: 1002, headers: { trace: binary, text: Buffer.from('ü') } });
    expect(records[1]).toMatchObject({ key: null, value: Buffer.alloc(0), headers: {} });
    // The next fetch asks from the high watermark, not past the records it ignored (it may take
    // a few polls for the background fetch to reach the stub on a loaded machine).
    const lastFetchOffset = () => broker.calls('POST', '/fetch').at(-1)!.body.partitions[0].offset;
    for (let i = 0; i < 100 && lastFetchOffset() === 2; i++) await consumer.poll({ waitMs: 30 });
    expect(lastFetchOffset()).toBe(4);
  });

  it('with waitMs 0, polling in a loop and subscribe() both get the records, and the process keeps serving its timers', async () => {
    const { coordinator, broker } = await onePartitionGroup({ logs: new Map([[0, 5]]) });
    const poller = client(coordinator).consumer({ group: 'g', topic: 't', fromBeginning: true, waitMs: 0 });
    const polled: ConsumedRecord[] = [];
    for (let round = 0; round < 500 && polled.length < 5; round++) polled.push(...(await poller.poll()));
    expect(polled.map((r) => r.offset)).toEqual([0, 1, 2, 3, 4]);
    // Asked without a long-poll.
    expect(broker.calls('POST', '/fetch').every((call) => call.body.waitMs === 0)).toBe(true);
    await poller.close();

    const subscriber = client(coordinator).consumer({ group: 'g', topic: 't', fromBeginning: true, waitMs: 0 });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const handled: number[] = [];
    const done = subscriber.subscribe((record) => {
      handled.push(record.offset);
    });
    try {
      await until(() => handled.length === 5 && ticks >= 5, 'five records handled and five timer ticks');
    } finally {
      clearInterval(timer);
    }
    await subscriber.close();
    await done;
    expect(handled).toEqual([0, 1, 2, 3, 4]);
  });

  it('starts at the high watermark without a commit when not fromBeginning, and commits what poll returned', async () => {
    // Proves the "latest" start rule and that commit() stores next offsets with the member's generation.
    const coordinator = await stub('coordinator');
    const broker = await stub('broker');
    fakeCoordinator(coordinator, () => metadataFor('t', [{ id: 1, url: broker.url }], [1, 1]), { generation: 4, assignment: [0, 1] });
    const script: BrokerScript = { logs: new Map([[0, 10], [1, 7]]), committed: new Map([[0, 3]]) };
    fakeBroker(broker, script);
    const consumer = client(coordinator).consumer({ group: 'g', topic: 't' });
    const first = await pollAtLeast(consumer, 7);
    expect(firstOffsets(first)).toEqual({ 0: 3 });
    const fetch = broker.calls('POST', '/fetch')[0].body;
    expect(fetch.partitions).toEqual([
      { topic: 't', partition: 0, offset: 3, epoch: 0 },
      { topic: 't', partition: 1, offset: 7, epoch: 0 },
    ]);
    script.logs.set(1, 9);
    const more = await pollAtLeast(consumer, 2);
    expect(more.map((r) => `${r.partition}:${r.offset}`)).toEqual(['1:7', '1:8']);
    await consumer.commit();
    const commits = broker.calls('POST', '/commit');
    expect(commits.at(-1)!.body).toMatchObject({ group: 'g', generation: 4, memberId: 'm1' });
    expect(script.committed).toEqual(new Map([[0, 10], [1, 9]]));
  });

  it('in subscribe mode, lets the handler finish a revoked partition, commits it, and only then reports the new generation', async () => {
    // Proves the cooperative protocol with a handler: while a revoked partition's record is being handled every heartbeat keeps the old generation; its commit precedes the report; it is not fetched after.
    const log: StubRequest[] = [];
    const coordinator = await stub('coordinator', log);
    const broker = await stub('broker', log);
    const group: GroupScript = { generation: 1, assignment: [0, 1] };
    fakeCoordinator(coordinator, () => metadataFor('t', [{ id: 1, url: broker.url }], [1, 1]), group);
    const script: BrokerScript = { logs: new Map([[0, 3], [1, 3]]) };
    fakeBroker(broker, script);
    const consumer = client(coordinator).consumer({ group: 'g', topic: 't', fromBeginning: true });
    const revoked: number[][] = [];
    consumer.on('revoked', (partitions: number[]) => revoked.push(partitions));

    let release!: () => void;
    const blocked = new Promise<void>((resolve) => (release = resolve));
    const handled: string[] = [];
    const done = consumer.subscribe(async (record) => {
      if (record.partition === 1 && record.offset === 2) await blocked;
      handled.push(`${record.partition}:${record.offset}`);
    });
    await until(() => handled.includes('1:1'), 'partition 1 being handled');

    // The coordinator moves partition 1 away while its last record is being handled.
    group.generation = 2;
    group.assignment = [0];
    const heartbeatsBefore = coordinator.calls('POST', '/groups/g/heartbeat').length;
    await until(() => coordinator.calls('POST', '/groups/g/heartbeat').length > heartbeatsBefore + 3, 'heartbeats during handling');
    expect(coordinator.calls('POST', '/groups/g/heartbeat').every((r) => r.body.generation === 1)).toBe(true);
    expect(script.committed!.get(1)).not.toBe(3);

    release();
    await until(() => coordinator.calls('POST', '/groups/g/heartbeat').some((r) => r.body.generation === 2), 'generation 2 reported');
    const commitOfP1 = log.findIndex((r) => r.path === '/commit' && r.body.offsets.some((o: { partition: number; offset: number }) => o.partition === 1 && o.offset === 3));
    const firstReport = log.findIndex((r) => r.path === '/groups/g/heartbeat' && r.body.generation === 2);
    expect(commitOfP1).toBeGreaterThanOrEqual(0);
    expect(commitOfP1).toBeLessThan(firstReport);
    expect(revoked).toEqual([[1]]);
    expect(consumer.assignment()).toEqual([0]);

    // No fetch after the report asks for partition 1.
    script.logs.set(0, 5);
    script.logs.set(1, 6);
    await until(() => handled.includes('0:4'), 'new records of partition 0');
    const fetchesAfter = log.slice(firstReport).filter((r) => r.path === '/fetch');
    expect(fetchesAfter.length).toBeGreaterThan(0);
    for (const fetch of fetchesAfter) expect(fetch.body.partitions.map((p: { partition: number }) => p.partition)).toEqual([0]);
    expect(handled.filter((h) => h.startsWith('1:'))).toEqual(['1:0', '1:1', '1:2']);

    await consumer.close();
    await done;
    expect(coordinator.calls('POST', '/groups/g/leave').length).toBe(1);
    expect(script.committed!.get(0)).toBe(5);
  });

  it('in poll mode, commits a revoked partition before the heartbeat that reports the new generation', async () => {
    // Proves revoke-before-report without a handler: records poll() returned count as consumed, their commit precedes the report.
    const log: StubRequest[] = [];
    const coordinator = await stub('coordinator', log);
    const broker = await stub('broker', log);
    const group: GroupScript = { generation: 1, assignment: [0, 1] };
    fakeCoordinator(coordinator, () => metadataFor('t', [{ id: 1, url: broker.url }], [1, 1]), group);
    const script: BrokerScript = { logs: new Map([[0, 2], [1, 2]]) };
    fakeBroker(broker, script);
    const consumer = client(coordinator).consumer({ group: 'g', topic: 't', fromBeginning: true });
    await pollAtLeast(consumer, 4);
    expect(broker.calls('POST', '/commit').length).toBe(0);

    group.generation = 2;
    group.assignment = [0];
    // Two heartbeats later the member has certainly heard of generation 2, but not applied it: it is not polling.
    const heartbeatsBefore = coordinator.calls('POST', '/groups/g/heartbeat').length;
    await until(() => coordinator.calls('POST', '/groups/g/heartbeat').length >= heartbeatsBefore + 2, 'heartbeats after the rebalance');
    expect(coordinator.calls('POST', '/groups/g/heartbeat').every((r) => r.body.generation === 1)).toBe(true);
    await consumer.poll({ waitMs: 0 });
    await until(() => coordinator.calls('POST', '/groups/g/heartbeat').some((r) => r.body.generation === 2), 'generation 2 reported');
    const commitOfP1 = log.findIndex((r) => r.path === '/commit' && r.body.offsets.some((o: { partition: number }) => o.partition === 1));
    const firstReport = log.findIndex((r) => r.path === '/groups/g/heartbeat' && r.body.generation === 2);
    expect(commitOfP1).toBeGreaterThanOrEqual(0);
    expect(commitOfP1).toBeLessThan(firstReport);
    expect(log[commitOfP1].body).toMatchObject({ generation: 2, offsets: [{ topic: 't', partition: 1, offset: 2 }] });
    expect(consumer.assignment()).toEqual([0]);
  });

  it('close() commits what was handled: records of earlier polls and explicit commits, not the last unacknowledged poll', async () => {
    // Proves at-least-once in poll mode: records the caller never came back from (nor committed) are delivered again.
    const script: BrokerScript = { logs: new Map([[0, 2]]) };
    const { coordinator } = await onePartitionGroup(script);
    const c = client(coordinator);
    const first = c.consumer({ group: 'g', topic: 't', fromBeginning: true });
    expect((await pollAtLeast(first, 2)).map((r) => r.offset)).toEqual([0, 1]);
    script.logs.set(0, 4);
    expect((await pollAtLeast(first, 2)).map((r) => r.offset)).toEqual([2, 3]);
    await first.close();
    expect(script.committed!.get(0)).toBe(2);

    const second = c.consumer({ group: 'g', topic: 't', fromBeginning: true });
    const again = await pollAtLeast(second, 2);
    expect(again.map((r) => r.offset)).toEqual([2, 3]);
    await second.commit(again);
    await second.close();
    expect(script.committed!.get(0)).toBe(4);
  });

  it('on GENERATION_MISMATCH heartbeats and commits again with the current generation', async () => {
    // Proves a commit refused for an old generation is retried after learning the new one.
    const coordinator = await stub('coordinator');
    const broker = await stub('broker');
    const group: GroupScript = { generation: 1, assignment: [0] };
    fakeCoordinator(coordinator, () => metadataFor('t', [{ id: 1, url: broker.url }], [1]), group);
    const script: BrokerScript = { logs: new Map([[0, 4]]) };
    fakeBroker(broker, script);
    const consumer = client(coordinator).consumer({ group: 'g', topic: 't', fromBeginning: true });
    await pollAtLeast(consumer, 4);
    // A rebalance the member has not heard of yet: the broker already knows generation 2.
    group.generation = 2;
    script.minGeneration = 2;
    await consumer.commit();
    expect(script.committed!.get(0)).toBe(4);
    const generations = broker.calls('POST', '/commit').map((r) => r.body.generation);
    expect(generations[0]).toBe(1);
    expect(generations.at(-1)).toBe(2);
  });

  it('resets to the log start on OFFSET_OUT_OF_RANGE', async () => {
    // Proves a committed offset deleted by retention does not stall the consumer.
    const { coordinator } = await onePartitionGroup({ logs: new Map([[0, 8]]), logStartOffset: 5, committed: new Map([[0, 1]]) });
    const consumer = client(coordinator).consumer({ group: 'g', topic: 't' });
    const records = await pollAtLeast(consumer, 3);
    expect(records.map((r) => r.offset)).toEqual([5, 6, 7]);
  });

  it("offsetReset 'latest' jumps to the high watermark when the position is below the log start", async () => {
    // Proves the 'latest' policy: the deleted range and everything retained after it are skipped.
    const script: BrokerScript = { logs: new Map([[0, 8]]), logStartOffset: 5, committed: new Map([[0, 1]]) };
    const { coordinator, broker } = await onePartitionGroup(script);
    const consumer = client(coordinator).consumer({ group: 'g', topic: 't', offsetReset: 'latest' });
    for (let round = 0; !broker.calls('POST', '/fetch').some((r) => r.body.partitions[0].offset === 8); round++) {
      if (round > 200) throw new Error('no fetch at the HW');
      expect(await consumer.poll({ waitMs: 20 })).toEqual([]);
    }
    script.logs.set(0, 10);
    const records = await pollAtLeast(consumer, 2);
    expect(records.map((r) => r.offset)).toEqual([8, 9]);
  });

  it("offsetReset 'error' stops with OFFSET_OUT_OF_RANGE until seek() moves the position", async () => {
    // Proves the 'error' policy: poll() throws (again and again) until the application seeks.
    const { coordinator } = await onePartitionGroup({ logs: new Map([[0, 8]]), logStartOffset: 5, committed: new Map([[0, 1]]) });
    const consumer = client(coordinator).consumer({ group: 'g', topic: 't', offsetReset: 'error' });
    let thrown: unknown;
    for (let round = 0; round < 200 && thrown === undefined; round++) {
      try {
        expect(await consumer.poll({ waitMs: 20 })).toEqual([]);
      } catch (error) {
        thrown = error;
      }
    }
    expect(thrown).toMatchObject({ code: 'OFFSET_OUT_OF_RANGE', details: { logStartOffset: 5 } });
    await expect(consumer.poll({ waitMs: 20 })).rejects.toMatchObject({ code: 'OFFSET_OUT_OF_RANGE' });
    consumer.seek('t', 0, 6);
    const records = await pollAtLeast(consumer, 2);
    expect(records.map((r) => r.offset)).toEqual([6, 7]);
  });

  it('commits the position a seek() moved back to, and a subscription goes on after a seek() past the log end', async () => {
    const { coordinator, broker } = await onePartitionGroup({ logs: new Map([[0, 12]]), committed: new Map([[0, 0]]) });
    const script: BrokerScript = { logs: new Map([[0, 12]]), committed: new Map([[0, 0]]) };
    fakeBroker(broker, script);
    // Like a broker: no commit beyond the log end.
    broker.on('POST', '/commit', (r) => ({
      results: r.body.offsets.map(({ topic, partition, offset }: { topic: string; partition: number; offset: number }) => {
        if (offset > script.logs.get(partition)!) return { topic, partition, error: { code: 'OFFSET_OUT_OF_RANGE', message: 'past the end', retriable: false } };
        script.committed!.set(partition, offset);
        return { topic, partition };
      }),
    }));
    const poller = client(coordinator).consumer({ group: 'g', topic: 't' });
    await pollAtLeast(poller, 10);
    await poller.commit();
    expect(script.committed!.get(0)).toBeGreaterThanOrEqual(10);
    poller.seek('t', 0, 3);
    await poller.commit();
    expect(script.committed!.get(0)).toBe(3);
    await poller.close();

    const subscriber = client(coordinator).consumer({ group: 'g', topic: 't', commitIntervalMs: 0 });
    const errors: unknown[] = [];
    subscriber.on('error', (error) => errors.push(error));
    const handled: number[] = [];
    const done = subscriber.subscribe((record) => {
      handled.push(record.offset);
      if (record.offset === 5) subscriber.seek('t', 0, 1_000);
    });
    // The seek's position is refused as a commit, then moved back to the high watermark by the fetch.
    await until(() => errors.some((error) => (error as { code?: string }).code === 'OFFSET_OUT_OF_RANGE'), 'the refused commit');
    script.logs.set(0, 14);
    await until(() => handled.includes(13), 'records after the seek');
    await subscriber.close();
    await done;
    expect(handled.slice(0, 3)).toEqual([3, 4, 5]);
    expect(handled.slice(-2)).toEqual([12, 13]);
  });

  it('ignores an UNKNOWN_MEMBER heartbeat answer that arrives after the member has rejoined', async () => {
    const coordinator = await stub('coordinator');
    const broker = await stub('broker');
    let generation = 1;
    let known = true;
    let delayedOne = false;
    const membership = (memberId: string) => ({ group: 'g', topic: 't', memberId, generation, assignment: [0], members: 1, sessionTimeoutMs: 10_000, heartbeatMs: 20 });
    coordinator
      .on('GET', '/metadata', () => metadataFor('t', [{ id: 1, url: broker.url }], [1]))
      .on('POST', '/groups/:group/join', (r) => {
        known = true;
        generation++;
        // Like the coordinator: a rejoining member keeps its id.
        return membership(r.body.memberId ?? 'm1');
      })
      .on('POST', '/groups/:group/heartbeat', async (r) => {
        if (known) return membership(r.body.memberId);
        // The first heartbeat after the member was dropped is answered late.
        if (!delayedOne) {
          delayedOne = true;
          await new Promise((resolve) => setTimeout(resolve, 300));
        }
        return errorAnswer('UNKNOWN_MEMBER');
      })
      .on('POST', '/groups/:group/leave', () => answer(204));
    const script: BrokerScript = { logs: new Map([[0, 5]]), committed: new Map([[0, 0]]) };
    fakeBroker(broker, script);
    const consumer = client(coordinator).consumer({ group: 'g', topic: 't' });
    const revoked: number[][] = [];
    consumer.on('revoked', (partitions: number[]) => revoked.push(partitions));
    await pollAtLeast(consumer, 5);
    known = false;
    await until(() => delayedOne, 'the slow heartbeat');
    // A commit refused for its generation heartbeats at once, learns the member was dropped, and it rejoins.
    script.minGeneration = 99;
    consumer.commit().catch(() => undefined);
    for (let round = 0; round < 40; round++) await consumer.poll({ waitMs: 20 });
    expect(coordinator.calls('POST', '/groups/g/join').map((r) => r.body.memberId)).toEqual([undefined, 'm1']);
    expect(revoked).toEqual([[0]]);
    // The refused commit goes through now, and close() does not wait out its retries.
    script.minGeneration = 0;
    await consumer.close();
  });

  it('close() while the first poll joins lets the join finish and leaves the group', async () => {
    const { coordinator } = await onePartitionGroup({ logs: new Map([[0, 5]]) });
    coordinator.on('POST', '/groups/:group/join', async () => {
      await new Promise((resolve) => setTimeout(resolve, 150));
      return { group: 'g', topic: 't', memberId: 'm1', generation: 1, assignment: [0], members: 1, sessionTimeoutMs: 10_000, heartbeatMs: 20 };
    });
    const consumer = client(coordinator).consumer({ group: 'g', topic: 't' });
    const polled = consumer.poll({ waitMs: 1_000 });
    await until(() => coordinator.calls('POST', '/groups/g/join').length === 1, 'the join');
    await consumer.close();
    expect(await polled).toEqual([]);
    expect(coordinator.calls('POST', '/groups/g/leave').map((r) => r.body.memberId)).toEqual(['m1']);
  });

  it('subscribe() with maxAttempts resolves on close() while a handler waits to try again', async () => {
    const { coordinator } = await onePartitionGroup({ logs: new Map([[0, 5]]), committed: new Map([[0, 0]]) });
    const slowRetry = new TesseraClient({ coordinator: coordinator.url, retry: { initialMs: 500, maxMs: 500, jitter: 0 }, requestTimeoutMs: 2_000 });
    closeAfterTest(() => slowRetry.close());
    const consumer = slowRetry.consumer({ group: 'g', topic: 't' });
    let attempts = 0;
    const done = consumer.subscribe(
      () => {
        attempts++;
        throw new Error('not yet');
      },
      { maxAttempts: 3 },
    );
    await until(() => attempts === 1, 'the first attempt');
    await consumer.close();
    await expect(done).resolves.toBeUndefined();
  });

  it('a fetch whose partition the broker refuses is not sent again at once', async () => {
    const coordinator = await stub('coordinator');
    const broker = await stub('broker');
    fakeCoordinator(coordinator, () => metadataFor('t', [{ id: 1, url: broker.url }], [1]), { generation: 1, assignment: [0] });
    fakeBroker(broker, { logs: new Map([[0, 5]]), committed: new Map([[0, 0]]), notPrimary: new Set([0]) });
    const slowRetry = new TesseraClient({ coordinator: coordinator.url, retry: { initialMs: 200, maxMs: 200, jitter: 0 }, requestTimeoutMs: 2_000 });
    closeAfterTest(() => slowRetry.close());
    const consumer = slowRetry.consumer({ group: 'g', topic: 't' });
    const polls = (async () => {
      for (let round = 0; round < 5; round++) await consumer.poll({ waitMs: 100 });
    })();
    await polls;
    // Five polls of 100 ms: with a 200 ms backoff after each refusal, a handful of fetches, not one per turn.
    expect(broker.calls('POST', '/fetch').length).toBeLessThanOrEqual(5);
    await consumer.close();
  });

  it('keeps fetching the other partitions of a broker that refuses one of them', async () => {
    const { coordinator, broker } = await oneBrokerGroup(2, { logs: new Map([[0, 5], [1, 50]]), committed: new Map([[0, 0], [1, 0]]), notPrimary: new Set([0]) });
    // A long backoff: were the whole broker held back by partition 0's refusals, partition 1 would get a fetch a second.
    const slowRetry = new TesseraClient({ coordinator: coordinator.url, retry: { initialMs: 1_000, maxMs: 1_000, jitter: 0 }, requestTimeoutMs: 2_000 });
    closeAfterTest(() => slowRetry.close());
    const consumer = slowRetry.consumer({ group: 'g', topic: 't', maxRecords: 10 });
    const records: ConsumedRecord[] = [];
    for (let round = 0; records.length < 50; round++) {
      if (round > 30) throw new Error(`only ${records.length} records of partition 1 after ${round} polls`);
      records.push(...(await consumer.poll({ waitMs: 50 })));
    }
    expect(records.map((r) => `${r.partition}:${r.offset}`)).toEqual(Array.from({ length: 50 }, (_, i) => `1:${i}`));
    // Partition 0 was asked for again only after its backoff.
    const withPartition0 = broker.calls('POST', '/fetch').filter((call) => call.body.partitions.some((p: { partition: number }) => p.partition === 0));
    expect(withPartition0.length).toBeLessThanOrEqual(2);
    await consumer.close();
  });

  it('fetches a busy partition and an idle one of the same broker together, so the idle one never holds the busy one back', async () => {
    const { coordinator, broker } = await oneBrokerGroup(2, { logs: new Map([[0, 200], [1, 0]]), committed: new Map([[0, 0], [1, 0]]) });
    const consumer = client(coordinator).consumer({ group: 'g', topic: 't', maxRecords: 50 });
    const records: ConsumedRecord[] = [];
    // Polls take fewer records than a fetch brings.
    for (let round = 0; records.length < 200; round++) {
      if (round > 400) throw new Error(`only ${records.length} records`);
      records.push(...(await consumer.poll({ maxRecords: 10, waitMs: 50 })));
    }
    expect(records.map((r) => r.offset)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    for (const fetch of broker.calls('POST', '/fetch')) {
      expect(fetch.body.partitions.map((p: { partition: number }) => p.partition).sort()).toEqual([0, 1]);
    }
  });

  it('seek() drops what was fetched of the partition and reads from the new offset; a seek before assignment applies at it', async () => {
    // Proves seek on an owned partition (prefetched records dropped) and on one not yet owned (instead of the committed offset).
    const { coordinator, broker } = await oneBrokerGroup(2, { logs: new Map([[0, 10], [1, 10]]), committed: new Map([[0, 0], [1, 0]]) });
    const consumer = client(coordinator).consumer({ group: 'g', topic: 't', maxRecords: 2 });
    consumer.seek('t', 1, 7);
    const before: ConsumedRecord[] = [];
    for (let round = 0; !before.some((r) => r.partition === 0); round++) {
      if (round > 200) throw new Error('no record of partition 0');
      before.push(...(await consumer.poll({ waitMs: 50 })));
    }
    consumer.seek('t', 0, 4);
    const after: ConsumedRecord[] = [];
    const of = (records: ConsumedRecord[], p: number) => records.filter((r) => r.partition === p).map((r) => r.offset);
    for (let round = 0; of(after, 0).length < 6 || of([...before, ...after], 1).length < 3; round++) {
      if (round > 200) throw new Error(`only ${after.length} records after the seek`);
      after.push(...(await consumer.poll({ waitMs: 50 })));
    }
    // Partition 1 started at the seek, not at the committed 0.
    expect(of([...before, ...after], 1)).toEqual([7, 8, 9]);
    // Partition 0 read from 0 before the seek, and from 4 after it: nothing prefetched in between came out.
    expect(of(before, 0)).toEqual([0, 1].slice(0, of(before, 0).length));
    expect(of(after, 0)).toEqual([4, 5, 6, 7, 8, 9]);
    expect(() => consumer.seek('other', 0, 1)).toThrow(/reads topic t/);
    expect(() => consumer.seek('t', 0, -1)).toThrow(/non-negative/);
  });

  it('startAt { timestamp } starts a partition without a committed offset at the broker\'s time lookup', async () => {
    // Proves the time start: the consumer asks /list-offsets for the partitions without a commit.
    const { coordinator, broker } = await oneBrokerGroup(2, { logs: new Map([[0, 10], [1, 10]]), committed: new Map([[1, 2]]) });
    broker.on('POST', '/list-offsets', (r) => ({
      partitions: r.body.partitions.map(({ topic, partition, at }: { topic: string; partition: number; at: { timestamp: number } }) => ({
        topic,
        partition,
        offset: at.timestamp === 1234 ? 6 : 0,
        timestamp: 1234,
        logStartOffset: 0,
        highWatermark: 10,
      })),
    }));
    const consumer = client(coordinator).consumer({ group: 'g', topic: 't', startAt: { timestamp: 1234 } });
    const records = await pollAtLeast(consumer, 12);
    expect(firstOffsets(records)).toEqual({ 0: 6, 1: 2 });
    expect(broker.calls('POST', '/list-offsets').flatMap((r) => r.body.partitions.map((p: { partition: number }) => p.partition))).toEqual([0]);
    expect(() => client(coordinator).consumer({ group: 'g', topic: 't', startAt: 'latest', fromBeginning: true })).toThrow(/contradicts/);
  });

  it('rejoins after UNKNOWN_MEMBER and keeps consuming', async () => {
    // Proves a member dropped by the coordinator drops its partitions, joins again and goes on.
    const coordinator = await stub('coordinator');
    const broker = await stub('broker');
    const group: GroupScript = { generation: 1, assignment: [0] };
    fakeCoordinator(coordinator, () => metadataFor('t', [{ id: 1, url: broker.url }], [1]), group);
    const script: BrokerScript = { logs: new Map([[0, 2]]) };
    fakeBroker(broker, script);
    const consumer = client(coordinator).consumer({ group: 'g', topic: 't', fromBeginning: true });
    const revoked: number[][] = [];
    consumer.on('revoked', (p: number[]) => revoked.push(p));
    await pollAtLeast(consumer, 2);
    await consumer.commit();
    group.forget = true;
    group.generation = 3;
    await until(() => coordinator.calls('POST', '/groups/g/heartbeat').length > 0 && group.forget === false, 'the forgetting heartbeat');
    script.logs.set(0, 4);
    const records = await pollAtLeast(consumer, 2);
    expect(records.map((r) => r.offset)).toEqual([2, 3]);
    const joins = coordinator.calls('POST', '/groups/g/join');
    expect(joins.length).toBe(2);
    expect(joins[1].body.memberId).toBe('m1');
    expect(revoked).toEqual([[0]]);
  });

  /** Partition t/0 led by broker 1 until `failOver()`, then by broker 2 at epoch 1; one member owns it. */
  async function partitionOnTwoBrokers() {
    const coordinator = await stub('coordinator');
    const b1 = await stub('broker-1');
    const b2 = await stub('broker-2');
    const brokers = [
      { id: 1, url: b1.url },
      { id: 2, url: b2.url },
    ];
    let failedOver = false;
    fakeCoordinator(coordinator, () => (failedOver ? metadataFor('t', brokers, [2], 2, 1) : metadataFor('t', brokers, [1])), {
      generation: 1,
      assignment: [0],
    });
    return { coordinator, b1, b2, failOver: () => void (failedOver = true) };
  }

  it('follows a partition to its new primary after NOT_PRIMARY', async () => {
    // Proves failover on the fetch path: metadata refresh, then fetch from the new primary at the same offset.
    const { coordinator, b1, b2, failOver } = await partitionOnTwoBrokers();
    const old: BrokerScript = { logs: new Map([[0, 2]]) };
    fakeBroker(b1, old);
    fakeBroker(b2, { logs: new Map([[0, 4]]) });
    const consumer = client(coordinator).consumer({ group: 'g', topic: 't', fromBeginning: true });
    const before = await pollAtLeast(consumer, 2);
    old.notPrimary = new Set([0]);
    failOver();
    const after = await pollAtLeast(consumer, 2);
    expect([...before, ...after].map((r) => r.offset)).toEqual([0, 1, 2, 3]);
    expect(b2.calls('POST', '/fetch')[0].body.partitions[0].offset).toBe(2);
  });

  it('commits through a failover: a dead primary, then the new one from refreshed metadata', async () => {
    // Proves commit() retries unanswered calls with a metadata refresh instead of failing while the coordinator fails over.
    const { coordinator, b1, b2, failOver } = await partitionOnTwoBrokers();
    fakeBroker(b1, { logs: new Map([[0, 3]]) });
    const next: BrokerScript = { logs: new Map([[0, 3]]) };
    fakeBroker(b2, next);
    const consumer = client(coordinator).consumer({ group: 'g', topic: 't', fromBeginning: true });
    await pollAtLeast(consumer, 3);
    await b1.close();
    const metadataCalls = coordinator.calls('GET', '/metadata').length;
    const commit = consumer.commit();
    await until(() => coordinator.calls('GET', '/metadata').length > metadataCalls + 1, 'metadata refreshes');
    failOver();
    await commit;
    expect(next.committed!.get(0)).toBe(3);
  });

  it('subscribe() rejects with a handler error after committing what was handled; the failed record comes again', async () => {
    // Proves ack = commit: a record whose handler failed is not committed and is redelivered to the next member.
    const script: BrokerScript = { logs: new Map([[0, 5]]) };
    const { coordinator } = await onePartitionGroup(script);
    const c = client(coordinator);
    const first = c.consumer({ group: 'g', topic: 't', fromBeginning: true });
    const boom = new Error('handler failed');
    const handled: number[] = [];
    await expect(
      first.subscribe((record) => {
        if (record.offset === 3) throw boom;
        handled.push(record.offset);
      }),
    ).rejects.toBe(boom);
    expect(handled).toEqual([0, 1, 2]);
    expect(script.committed!.get(0)).toBe(3);
    await first.close();

    const second = c.consumer({ group: 'g', topic: 't', fromBeginning: true });
    const again: number[] = [];
    const done = second.subscribe((record) => {
      again.push(record.offset);
    });
    await until(() => again.length >= 2, 'redelivery');
    await second.close();
    await done;
    expect(again).toEqual([3, 4]);
    expect(script.committed!.get(0)).toBe(5);
  });

  it('fetches the next records while a handler runs and while its commit is out, and still commits everything handled', async () => {
    // Proves the latency changes: no commit round trip and no handler sits between two fetches of a partition.
    const script: BrokerScript = { logs: new Map([[0, 3]]) };
    const { coordinator, broker } = await onePartitionGroup(script);
    let releaseCommit!: () => void;
    const commitHeld = new Promise<void>((resolve) => (releaseCommit = resolve));
    let commitsStarted = 0;
    broker.on('POST', '/commit', async (r) => {
      commitsStarted++;
      await commitHeld;
      for (const { partition, offset } of r.body.offsets) script.committed!.set(partition, offset);
      return { results: r.body.offsets.map(({ topic, partition }: { topic: string; partition: number }) => ({ topic, partition })) };
    });
    const consumer = client(coordinator).consumer({ group: 'g', topic: 't', fromBeginning: true, waitMs: 50 });
    const handled: number[] = [];
    let fetchesDuringFirstHandler = -1;
    const done = consumer.subscribe(async (record) => {
      if (record.offset === 0) {
        // The next fetch of the partition is already out while this handler runs.
        const before = broker.calls('POST', '/fetch').length;
        await until(() => broker.calls('POST', '/fetch').length > before, 'a fetch while the handler runs');
        fetchesDuringFirstHandler = broker.calls('POST', '/fetch').length - before;
      }
      handled.push(record.offset);
    });
    await until(() => handled.length === 3 && commitsStarted === 1, 'the first batch handled and its commit sent');
    // With the commit held, new records are still fetched and handled.
    script.logs.set(0, 6);
    await until(() => handled.length === 6, 'the records after the held commit');
    expect(commitsStarted).toBe(1);
    expect(fetchesDuringFirstHandler).toBeGreaterThan(0);
    releaseCommit();
    await consumer.close();
    await done;
    expect(handled).toEqual([0, 1, 2, 3, 4, 5]);
    expect(script.committed!.get(0)).toBe(6);
  });

  it('subscribe() commits in the background at most once per commitIntervalMs; close() commits the rest at once', async () => {
    // Proves the commit cadence: records handled after a background commit wait for the interval (or close), none is left uncommitted.
    const script: BrokerScript = { logs: new Map([[0, 3]]) };
    const { coordinator, broker } = await onePartitionGroup(script);
    const c = client(coordinator);
    const slow = c.consumer({ group: 'g', topic: 't', fromBeginning: true, waitMs: 20, commitIntervalMs: 60_000 });
    const handled: number[] = [];
    const done = slow.subscribe((record) => {
      handled.push(record.offset);
    });
    await until(() => script.committed!.get(0) === 3, 'the first batch committed at once');
    script.logs.set(0, 6);
    await until(() => handled.length === 6, 'the records after the first commit');
    const fetches = broker.calls('POST', '/fetch').length;
    await until(() => broker.calls('POST', '/fetch').length >= fetches + 3, 'three more fetch rounds');
    expect(broker.calls('POST', '/commit').length).toBe(1);
    expect(script.committed!.get(0)).toBe(3);
    // close() neither waits for the interval nor leaves handled records uncommitted.
    await slow.close();
    await done;
    expect(broker.calls('POST', '/commit').length).toBe(2);
    expect(script.committed!.get(0)).toBe(6);

    // With 0, every handled batch is committed without close().
    const eager = c.consumer({ group: 'g', topic: 't', waitMs: 20, commitIntervalMs: 0 });
    const eagerDone = eager.subscribe(() => undefined);
    await until(() => eager.assignment().length === 1, 'the partition assigned');
    script.logs.set(0, 9);
    await until(() => script.committed!.get(0) === 9, 'the new records committed before close');
    await eager.close();
    await eagerDone;

    expect(() => c.consumer({ group: 'g', topic: 't', commitIntervalMs: -1 })).toThrow(/commitIntervalMs must be a non-negative integer, got -1/);
  });
});
