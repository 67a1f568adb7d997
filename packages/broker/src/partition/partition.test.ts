// Proves the primary's write path against a real follower partition (each with its own real
// SQLite store in a temp dir; the replication port hands pushes straight to the follower's
// apply, as the exchange route does): a flush is pushed to the secondary while it is still
// being written locally, and a primary that restarts in the same epoch after dying between a
// push and its own group commit does not write over what only the secondary holds.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TesseraError, decodeRecordBatch, encodeRecordBatch, type PartitionAssignment } from '@tessera/protocol';
import { createLogger } from '@tessera/service';
import { DEFAULT_LIMITS } from '../config.js';
import { applyPush, type ParsedPush } from '../replication/index.js';
import type { ClusterPort, ReplicationPort } from '../replication/ports.js';
import { BrokerStore, storedBatch, type StoredBatch } from '../storage/index.js';
import { SecondarySync } from '../replication/leader/secondary-sync.js';
import { Partition } from './partition.js';

const logger = createLogger('broker', { test: 'partition' }, { level: process.env.TESSERA_TEST_LOG_LEVEL ?? 'silent' });
const ASSIGNMENT: PartitionAssignment = { partition: 0, primary: 1, secondary: 2, epoch: 3, isr: [1, 2] };

let dirs: string[] = [];
let stores: BrokerStore[] = [];
let partitions: Partition[] = [];

beforeEach(() => {
  dirs = [fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-p1-')), fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-p2-'))];
  stores = dirs.map((dir) => BrokerStore.open(dir, 'full'));
  partitions = [];
});

afterEach(async () => {
  for (const partition of partitions) await partition.close();
  for (const store of stores) await store.close();
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

function cluster(brokerId: number): ClusterPort {
  let seq = 0;
  return {
    brokerId,
    brokerUrl: (id) => `http://broker-${id}.invalid`,
    brokerRef: () => null,
    changeIsr: () => Promise.reject(new TesseraError('UNAVAILABLE', 'no coordinator in this test')),
    completeReassignment: () => Promise.reject(new TesseraError('UNAVAILABLE', 'no coordinator in this test')),
    requestMetadataRefresh: () => undefined,
    nextIsrSeq: () => ++seq,
  };
}

/** Pushes go to `follower` the way the replicate route applies them; counts them. */
function pushesTo(follower: () => Partition): ReplicationPort & { pushes: number } {
  const port = {
    pushes: 0,
    push: (_url: string, head: Omit<ParsedPush, 'bytes'>, batches: Buffer[]) => {
      port.pushes++;
      const tail = Buffer.concat(batches);
      const push = { ...head, bytes: tail.length, commits: head.commits ?? [] } as ParsedPush;
      const replica = follower();
      return replica.followerTurn(() => applyPush(replica, push, tail));
    },
  };
  return port;
}

function partition(brokerId: number, store: BrokerStore, client: ReplicationPort): Partition {
  const created = new Partition({
    topic: 't',
    partition: 0,
    store: store.log('t', 0),
    cluster: cluster(brokerId),
    client,
    logger,
    replicaTimeoutMs: 5_000,
    limits: DEFAULT_LIMITS,
  });
  partitions.push(created);
  return created;
}

/** The follower of these tests: broker 2 on the second store, with `assignment` applied. */
function follower(assignment: PartitionAssignment = ASSIGNMENT): Partition {
  const secondary: Partition = partition(2, stores[1], pushesTo(() => secondary));
  secondary.applyAssignment(assignment, 1, true);
  return secondary;
}

/** The primary of these tests: broker 1 on the first store, pushing through `port`. */
function leader(port: ReplicationPort): Partition {
  const primary = partition(1, stores[0], port);
  primary.applyAssignment(ASSIGNMENT, 1, true);
  return primary;
}

function batch(base: number, values: string[], epoch: number): StoredBatch {
  const records = values.map((value, i) => ({ key: Buffer.from('k'), value: Buffer.from(value), timestamp: 1_000 + base + i }));
  return storedBatch(encodeRecordBatch(records, { baseOffset: base, partitionLeaderEpoch: epoch }));
}

function incoming(values: string[]) {
  const encoded = encodeRecordBatch(values.map((value, i) => ({ key: Buffer.from('k'), value: Buffer.from(value), timestamp: 5_000 + i })));
  return [{ bytes: encoded, recordCount: values.length, lastOffsetDelta: values.length - 1, maxTimestamp: 5_000 + values.length - 1 }];
}

function valuesOf(store: BrokerStore, from: number, to: number): string[] {
  return store
    .log('t', 0)
    .readBatches(from, to, 1 << 20)
    .flatMap((b) => decodeRecordBatch(b.bytes).records)
    .filter((r) => r.offset >= from && r.offset < to)
    .map((r) => `${r.offset}:${r.value?.toString()}`);
}

const range = (from: number, count: number, prefix: string) => Array.from({ length: count }, (_, i) => `${prefix}${from + i}`);

describe('Partition (primary write path)', () => {
  it('acknowledges a produce once both replicas hold it, with the same bytes at the same offsets', async () => {
    const [primaryStore, secondaryStore] = stores;
    const secondary = follower();
    const primary = leader(pushesTo(() => secondary));

    const results = await Promise.all([primary.produce(incoming(['a', 'b'])), primary.produce(incoming(['c']))]);
    expect(results.map((r) => [r.baseOffset, r.lastOffset, r.epoch])).toEqual([
      [0, 1, 3],
      [2, 2, 3],
    ]);
    expect(primary.hw).toBe(3);
    expect(valuesOf(secondaryStore, 0, 3)).toEqual(['0:a', '1:b', '2:c']);
    expect(valuesOf(primaryStore, 0, 3)).toEqual(valuesOf(secondaryStore, 0, 3));
  });

  it('does not write over records that only the secondary holds after a restart in the same epoch', async () => {
    // A primary of epoch 3 pushed offsets 10-19 and died before its own group commit: the
    // secondary holds them, the restarted primary's log ends at 10, and it is still primary of
    // epoch 3 (the coordinator did not notice). Its next produce must get offsets from 10 on
    // the secondary too, not sit beside the secondary's unacknowledged 10-19.
    const [primaryStore, secondaryStore] = stores;
    const common = batch(0, range(0, 10, 'a'), 3);
    await primaryStore.log('t', 0).append([common], [], 10);
    await secondaryStore.log('t', 0).append([common, batch(10, range(10, 10, 'lost'), 3)], [], 10);

    const secondary = follower();
    const port = pushesTo(() => secondary);
    const primary = leader(port);

    const result = await primary.produce(incoming(['n0', 'n1', 'n2', 'n3', 'n4']));
    expect(result.baseOffset).toBe(10);
    expect(secondary.store.leo).toBe(15);
    const expected = [...range(0, 10, 'a'), 'n0', 'n1', 'n2', 'n3', 'n4'].map((value, offset) => `${offset}:${value}`);
    expect(valuesOf(secondaryStore, 0, 15)).toEqual(expected);
    expect(valuesOf(primaryStore, 0, 15)).toEqual(expected);
    expect(primary.hw).toBe(15);
  });
});

describe('a follower reset past its end', () => {
  it('is not truncated below what it holds when its log and the primary\'s agree', async () => {
    // The follower was away while retention moved the primary's log start to 15, so it was
    // reset there (its epoch history starts at 15), and it caught up to 25. The primary then
    // restarts in the same epoch with 25-29 not yet replicated; its first push, sent where it
    // guesses the follower ends, is answered with a mismatch that says where it does.
    const [primaryStore, secondaryStore] = stores;
    const batches = [batch(0, range(0, 10, 'a'), 1), batch(10, range(10, 5, 'b'), 3), batch(15, range(15, 5, 'c'), 3), batch(20, range(20, 5, 'd'), 3)];
    const primaryLog = primaryStore.log('t', 0);
    await primaryLog.append([...batches, batch(25, range(25, 5, 'e'), 3)], [], 25);
    await primaryLog.advanceLogStart(15, 25);
    const followerLog = secondaryStore.log('t', 0);
    await followerLog.resetTo(15);
    await followerLog.append(batches.slice(2), [], 25);

    const secondary = follower();
    const port = pushesTo(() => secondary);
    const truncations: number[] = [];
    const recording: ReplicationPort = {
      push: (url, head, batches, timeoutMs) => {
        if (head.truncateTo !== undefined) truncations.push(head.truncateTo);
        return port.push(url, head, batches, timeoutMs);
      },
    };
    const primary = leader(recording);

    const result = await primary.produce(incoming(['f']));
    expect(result.baseOffset).toBe(30);
    expect(truncations).toEqual([]);
    expect(valuesOf(secondaryStore, 15, 31)).toEqual(valuesOf(primaryStore, 15, 31));
    expect(valuesOf(secondaryStore, 15, 31)).toHaveLength(16);
  });
});

describe('purge', () => {
  it('is answered only once the in-sync secondary holds the new log start', async () => {
    // Answered earlier, a failover to the secondary before its next push would bring back the
    // records the purge was answered as having removed.
    const secondary = follower();
    const port = pushesTo(() => secondary);
    let holding = false;
    let arrived!: () => void;
    const pushArrived = new Promise<void>((resolve) => (arrived = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const gate: ReplicationPort = {
      push: async (url, head, batches, timeoutMs) => {
        if (holding) {
          arrived();
          await released;
        }
        return port.push(url, head, batches, timeoutMs);
      },
    };
    const primary = leader(gate);
    await primary.produce(incoming(range(0, 10, 'a')));

    holding = true;
    let answered = false;
    const purge = primary.purge().then((result) => {
      answered = true;
      return result;
    });
    await pushArrived;
    // Long enough for the primary's own write of the log start to be durable many times over.
    await sleep(200);
    expect(answered).toBe(false);
    expect(secondary.store.logStartOffset).toBe(0);

    release();
    expect(await purge).toEqual({ logStartOffset: 10, highWatermark: 10 });
    expect(secondary.store.logStartOffset).toBe(10);
    });

  it('is not answered as done when its primary is deposed while it moves the log start', async () => {
    const secondary = follower();
    const primary = leader(pushesTo(() => secondary));
    await primary.produce(incoming(range(0, 10, 'a')));

    const purge = primary.purge();
    // A failover while the log start is being written: the new primary has the old log start.
    primary.applyAssignment({ partition: 0, primary: 2, secondary: 1, epoch: 4, isr: [2] }, 1, true);
    await expect(purge).rejects.toMatchObject({ code: 'NOT_PRIMARY' });
  });
});

describe('a follower without records that starts beyond the primary\'s log', () => {
  // A replica reset past its end by retention holds no records and no epoch history, so when its
  // topic is deleted and made again while its broker is down, nothing tells it from a replica of
  // the new topic: it starts at an offset the new primary's log has not reached.

  it('starts again, empty, at the primary\'s log start and follows it', async () => {
    const [primaryStore, secondaryStore] = stores;
    await primaryStore.log('t', 0).append([batch(0, range(0, 10, 'a'), 3)], [], 10);
    await secondaryStore.log('t', 0).resetTo(40);

    const secondary = follower();
    const primary = leader(pushesTo(() => secondary));

    const result = await primary.produce(incoming(['b']));
    expect(result.baseOffset).toBe(10);
    expect(primary.hw).toBe(11);
    expect(secondary.store.logStartOffset).toBe(0);
    expect(secondary.store.leo).toBe(11);
    expect(valuesOf(secondaryStore, 0, 11)).toEqual([...range(0, 10, 'a'), 'b'].map((value, offset) => `${offset}:${value}`));
    expect(valuesOf(secondaryStore, 0, 11)).toEqual(valuesOf(primaryStore, 0, 11));
  });

  it('is refused, changing nothing, while its old batches below its log start are still stored', async () => {
    const [, secondaryStore] = stores;
    const followerLog = secondaryStore.log('t', 0);
    await followerLog.append([batch(0, range(0, 20, 'old'), 1)], [], 20);
    await followerLog.resetTo(40);
    const secondary = follower();

    const sent = batch(0, range(0, 10, 'new'), 3);
    const push: ParsedPush = {
      topic: 't',
      partition: 0,
      epoch: 3,
      primaryId: 1,
      baseOffset: 0,
      truncateTo: 0,
      truncateSeen: { leo: 40 },
      hw: 10,
      logStartOffset: 0,
      bytes: sent.bytes.length,
      commits: [],
    };
    const apply = () => secondary.followerTurn(() => applyPush(secondary, push, sent.bytes));

    const log = secondary.store;
    await expect(apply()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect([log.logStartOffset, log.leo]).toEqual([40, 40]);

    while ((await log.deleteBelowLogStart(1_000)).more);
    await expect(apply()).resolves.toMatchObject({ leo: 10 });
    expect([log.logStartOffset, log.leo]).toEqual([0, 10]);
    expect(valuesOf(secondaryStore, 0, 10)).toEqual(range(0, 10, 'new').map((value, offset) => `${offset}:${value}`));
  });
});

describe('the ISR and the flush loop', () => {
  it('counts a joining secondary until the coordinator answers, whatever a map fetched meanwhile says', async () => {
    // The primary asks the coordinator to put the caught-up secondary back. A map fetched while
    // the request is out, and answered before the coordinator applied it, still shows the
    // primary alone; the request's answer is then lost although the coordinator applied it.
    const [primaryStore, secondaryStore] = stores;
    const secondary = partition(2, secondaryStore, pushesTo(() => secondary));
    const alone: PartitionAssignment = { ...ASSIGNMENT, isr: [1] };
    secondary.applyAssignment(alone, 1, true);
    let seq = 0;
    const expansions: Array<{ resolve(assignment: PartitionAssignment): void; reject(error: unknown): void }> = [];
    const refreshes: string[] = [];
    const coordinator: ClusterPort = {
      ...cluster(1),
      changeIsr: () => new Promise((resolve, reject) => expansions.push({ resolve, reject })),
      nextIsrSeq: () => ++seq,
      requestMetadataRefresh: (reason) => refreshes.push(reason),
    };
    const primary = new Partition({ topic: 't', partition: 0, store: primaryStore.log('t', 0), cluster: coordinator, client: pushesTo(() => secondary), logger, replicaTimeoutMs: 5_000, limits: DEFAULT_LIMITS });
    partitions.push(primary);
    primary.applyAssignment(alone, 1, true);
    while (expansions.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));

    // A map fetch starts now (the broker's coordinator link notes the seq) and is applied as reconcile does.
    const fetchSeq = seq;
    const acked = primary.produce(incoming(['x'])).then(() => secondary.store.leo);
    primary.applyAssignment(alone, 1, primary.isrSeq <= fetchSeq);
    expect(refreshes).toEqual([]);
    expansions[0]!.reject(new TesseraError('UNAVAILABLE', 'the answer was lost'));
    // Asked again until answered: the first request may still be applied.
    while (expansions.length === 1) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(refreshes).toEqual([]);
    expansions[1]!.resolve({ ...ASSIGNMENT });
    // Acknowledged only once the secondary holds the record.
    expect(await acked).toBe(1);
    // The map skipped meanwhile is fetched again, now that the answer is in.
    while (primary.isrKind !== 'committed') await new Promise((resolve) => setTimeout(resolve, 5));
    expect(refreshes).toEqual(['ISR expansion of t/0 answered']);
    expect(primary.isr).toEqual([1, 2]);
  });

  it('acknowledges produces while the coordinator does not answer an ISR expansion, and asks no shrink on top of it', async () => {
    // The secondary catches up while the coordinator is unreachable: it counts from then on, so
    // produces are pushed to it and acknowledged without waiting for the coordinator's answer.
    const [primaryStore, secondaryStore] = stores;
    const secondary = partition(2, secondaryStore, pushesTo(() => secondary));
    const alone: PartitionAssignment = { ...ASSIGNMENT, isr: [1] };
    secondary.applyAssignment(alone, 1, true);
    const asked: number[][] = [];
    let coordinatorUp = false;
    const coordinator: ClusterPort = {
      ...cluster(1),
      // Down: unreachable. Up: applies what it is asked.
      changeIsr: (request) => {
        asked.push([...request.isr]);
        return new Promise((resolve, reject) =>
          setImmediate(() =>
            coordinatorUp ? resolve({ ...ASSIGNMENT, isr: [...request.isr] }) : reject(new TesseraError('UNAVAILABLE', 'coordinator unreachable')),
          ),
        );
      },
    };
    let secondaryDown = false;
    const toSecondary = pushesTo(() => secondary);
    const client: ReplicationPort = {
      push: (url, head, batches) => (secondaryDown ? Promise.reject(new TesseraError('UNAVAILABLE', 'secondary down')) : toSecondary.push(url, head, batches)),
    };
    const primary = new Partition({ topic: 't', partition: 0, store: primaryStore.log('t', 0), cluster: coordinator, client, logger, replicaTimeoutMs: 100, limits: DEFAULT_LIMITS });
    partitions.push(primary);
    primary.applyAssignment(alone, 1, true);
    while (asked.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(primary.isrKind).toBe('pending-expand');

    const first = await primary.produce(incoming(['x']));
    expect(first.lastOffset).toBe(0);
    expect(valuesOf(secondaryStore, 0, 1)).toEqual(['0:x']);

    // The secondary fails now: no shrink is asked while the expansion is unanswered, so nothing is acknowledged alone.
    secondaryDown = true;
    let acknowledged = false;
    const second = primary.produce(incoming(['y'])).then((result) => {
      acknowledged = true;
      return result;
    });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(acknowledged).toBe(false);
    expect(asked.every((isr) => isr.length === 2)).toBe(true);

    // The coordinator answers the expansion; the shrink is asked after it and the produce goes on alone.
    coordinatorUp = true;
    expect((await second).lastOffset).toBe(1);
    expect(primary.isr).toEqual([1]);
    const firstShrink = asked.findIndex((isr) => isr.length === 1);
    expect(asked.slice(0, firstShrink).every((isr) => isr.length === 2)).toBe(true);
  });

  it('keeps maps from applying their ISR while a newer epoch\'s expansion is out, whatever an older one\'s end does', async () => {
    // Primary at epoch 3 asks for an expansion the coordinator never answers; it becomes primary
    // again at epoch 5 and asks again. The epoch-3 request must neither go out again nor, ending,
    // let a map fetched now take the secondary out of the count while the epoch-5 one is out.
    const [primaryStore, secondaryStore] = stores;
    const secondary = partition(2, secondaryStore, pushesTo(() => secondary));
    const alone: PartitionAssignment = { ...ASSIGNMENT, isr: [1] };
    secondary.applyAssignment(alone, 1, true);
    const asked: number[] = [];
    let answerEpoch5: ((assignment: PartitionAssignment) => void) | undefined;
    const coordinator: ClusterPort = {
      ...cluster(1),
      changeIsr: (request) => {
        asked.push(request.epoch);
        if (request.epoch === 5) return new Promise((resolve) => (answerEpoch5 = resolve));
        return new Promise((_resolve, reject) => setImmediate(() => reject(new TesseraError('UNAVAILABLE', 'coordinator unreachable'))));
      },
    };
    const primary = new Partition({ topic: 't', partition: 0, store: primaryStore.log('t', 0), cluster: coordinator, client: pushesTo(() => secondary), logger, replicaTimeoutMs: 5_000, limits: DEFAULT_LIMITS });
    partitions.push(primary);
    primary.applyAssignment(alone, 1, true);
    // The third attempt failed at once; the next comes after a backoff of about 400 ms.
    while (asked.length < 3) await new Promise((resolve) => setTimeout(resolve, 5));
    await new Promise((resolve) => setTimeout(resolve, 30));

    const again: PartitionAssignment = { ...alone, epoch: 5 };
    secondary.applyAssignment(again, 1, true);
    primary.applyAssignment(again, 1, true);
    const askedAtEpoch3 = asked.filter((epoch) => epoch === 3).length;
    while (answerEpoch5 === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
    // Past the epoch-3 loop's longest backoff.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(asked.filter((epoch) => epoch === 3).length).toBe(askedAtEpoch3);
    expect(primary.isrKind).toBe('pending-expand');
    expect(primary.isrSeq).toBe(Number.POSITIVE_INFINITY);

    answerEpoch5({ ...ASSIGNMENT, epoch: 5 });
    while (primary.isrKind !== 'committed') await new Promise((resolve) => setTimeout(resolve, 5));
    expect(primary.isr).toEqual([1, 2]);
    expect(primary.isrSeq).toBeLessThan(Number.POSITIVE_INFINITY);
  });

  it('waits between ISR shrinks that the coordinator does not answer', async () => {
    const [store] = stores;
    let shrinks = 0;
    const refused = () => Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const coordinator: ClusterPort = {
      ...cluster(1),
      changeIsr: () => {
        shrinks++;
        return new Promise((_resolve, reject) => setImmediate(() => reject(refused())));
      },
    };
    const deadSecondary: ReplicationPort = { push: () => new Promise((_resolve, reject) => setImmediate(() => reject(refused()))) };
    const primary = new Partition({ topic: 't', partition: 0, store: store.log('t', 0), cluster: coordinator, client: deadSecondary, logger, replicaTimeoutMs: 100, limits: DEFAULT_LIMITS });
    partitions.push(primary);
    primary.applyAssignment(ASSIGNMENT, 1, true);
    void primary.produce(incoming(['x'])).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    // A few asks a second (after each failed turn's backoff), not one per event-loop turn.
    expect(shrinks).toBeGreaterThan(0);
    expect(shrinks).toBeLessThan(100);
  });

  it('refuses a commit of an older generation queued in the flush after a newer one, before that one is stored', async () => {
    // Flushes are pipelined two deep: the second is prepared while the first's group commit is
    // still under way. A reset at generation 6 (the coordinator's) goes in the first, a stale
    // member's commit at generation 5 in the second.
    const [store] = stores;
    const primary = new Partition({
      topic: 't',
      partition: 0,
      store: store.log('t', 0),
      cluster: cluster(1),
      client: pushesTo(() => primary),
      logger,
      replicaTimeoutMs: 5_000,
      limits: { ...DEFAULT_LIMITS, maxFlushRecords: 1 },
    });
    partitions.push(primary);
    primary.applyAssignment({ ...ASSIGNMENT, secondary: null, isr: [1] }, 1, true);
    await primary.commit({ group: 'g', offset: 0, generation: 5 });
    const first = primary.produce(incoming(['a']));
    const reset = primary.commit({ group: 'g', offset: 1, generation: 6 });
    const second = primary.produce(incoming(['b']));
    const stale = primary.commit({ group: 'g', offset: 2, generation: 5 }).catch((error: unknown) => error);
    await Promise.all([first, reset, second]);
    expect(await stale).toMatchObject({ code: 'GENERATION_MISMATCH' });
    expect(store.log('t', 0).groupOffset('g')).toEqual({ group: 'g', offset: 1, generation: 6 });
  });

  it('applies no push that waited for its turn while the replica was being closed', async () => {
    const [, store] = stores;
    const follower = partition(2, store, pushesTo(() => follower));
    follower.applyAssignment(ASSIGNMENT, 1, true);
    let release: (() => void) | undefined;
    const running = follower.followerTurn(() => new Promise<void>((resolve) => (release = resolve)));
    while (release === undefined) await new Promise((resolve) => setTimeout(resolve, 1));
    const tail = batch(0, ['a', 'b'], 3).bytes;
    const push = { topic: 't', partition: 0, epoch: 3, primaryId: 1, baseOffset: 0, hw: 0, commits: [], bytes: tail.length } as ParsedPush;
    const waiting = follower.followerTurn(() => applyPush(follower, push, tail)).catch((error: unknown) => error);
    const closing = follower.close();
    release();
    await Promise.all([running, closing]);
    expect(await waiting).toMatchObject({ code: 'PARTITION_NOT_FOUND' });
    // Nothing was written after the close: the log can be deleted safely.
    expect(store.log('t', 0).leo).toBe(0);
  });

  it('does not become primary again by a map of the epoch it was deposed in', async () => {
    // The secondary answers that it knows a newer epoch: a failover happened. A map fetched
    // before it, still naming this broker primary of epoch 3, arrives afterwards.
    const [store] = stores;
    const newerEpoch: ReplicationPort = { push: () => Promise.reject(new TesseraError('STALE_EPOCH', 'epoch 4 here', { epoch: 4 })) };
    const primary = partition(1, store, newerEpoch);
    primary.applyAssignment(ASSIGNMENT, 1, true);
    await expect(primary.produce(incoming(['a']))).rejects.toMatchObject({ code: 'NOT_PRIMARY' });
    expect(primary.role).toBe('secondary');
    primary.applyAssignment(ASSIGNMENT, 1, true);
    expect(primary.role).toBe('secondary');
    await expect(Promise.resolve().then(() => primary.produce(incoming(['b'])))).rejects.toMatchObject({ code: 'NOT_PRIMARY' });
    // The map of the new epoch is followed.
    primary.applyAssignment({ ...ASSIGNMENT, primary: 2, secondary: 1, epoch: 4 }, 1, true);
    expect(primary.epoch).toBe(4);
  });

  it('flushes a produce that arrives while the flush loop is ending', async () => {
    const [store] = stores;
    const primary = partition(1, store, pushesTo(() => primary));
    primary.applyAssignment({ ...ASSIGNMENT, secondary: null, isr: [1] }, 1, true);
    await primary.produce(incoming(['a']));
    // Another request's produce runs in the microtask right after the loop found the queue empty.
    const queue = (primary as unknown as { queue: { isEmpty: boolean } }).queue;
    const isEmpty = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(queue), 'isEmpty')!.get!;
    let late: Promise<unknown> | undefined;
    let emptyChecks = 0;
    Object.defineProperty(queue, 'isEmpty', {
      get() {
        const empty = isEmpty.call(queue) as boolean;
        if (empty && late === undefined && ++emptyChecks === 2) queueMicrotask(() => (late = primary.produce(incoming(['late']))));
        return empty;
      },
    });
    await primary.produce(incoming(['b']));
    while (late === undefined) await new Promise((resolve) => setTimeout(resolve, 1));
    await expect(late).resolves.toMatchObject({ baseOffset: 2 });
  });
});

describe('a push held up on the way', () => {
  it('is refused once a later push of the same primary applied, so committed offsets do not go back', async () => {
    // The primary stops waiting for a push (its exchange timed out) and sends the next one,
    // perhaps over another connection; the first arrives after it. Its commit is older.
    const secondary = follower();
    const port = pushesTo(() => secondary);
    const sent: Array<{ head: Omit<ParsedPush, 'bytes'>; tail: Buffer }> = [];
    const recording: ReplicationPort = {
      push: (url, head, batches, timeoutMs) => {
        sent.push({ head: head as Omit<ParsedPush, 'bytes'>, tail: Buffer.concat(batches) });
        return port.push(url, head, batches, timeoutMs);
      },
    };
    const primary = leader(recording);
    await primary.produce(incoming(['a', 'b', 'c']));
    await primary.commit({ group: 'g', offset: 1, generation: 1 });
    const held = sent.findLast((push) => push.head.commits?.some((commit) => commit.offset === 1));
    await primary.commit({ group: 'g', offset: 3, generation: 1 });
    expect(secondary.store.groupOffset('g')?.offset).toBe(3);
    expect(held).toBeDefined();
    expect(held!.head.baseOffset).toBe(secondary.store.leo);

    const late = { ...held!.head, bytes: held!.tail.length, commits: held!.head.commits ?? [] } as ParsedPush;
    const refused = await secondary.followerTurn(() => applyPush(secondary, late, held!.tail)).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(TesseraError);
    expect((refused as TesseraError).code).toBe('OFFSET_MISMATCH');
    expect(secondary.store.groupOffset('g')?.offset).toBe(3);
    expect(secondary.hw).toBe(3);

    // A primary of an earlier release sends no order: its pushes apply as they come.
    const { order: _order, ...unordered } = late;
    await secondary.followerTurn(() => applyPush(secondary, unordered as ParsedPush, held!.tail));
    expect(secondary.store.groupOffset('g')?.offset).toBe(1);
  });
});

describe('SecondarySync (a flush that a catch-up overtook)', () => {
  it('finishes the flush when the follower is already past its end', async () => {
    // The secondary left the ISR while flush B (10-14) waited for the partition's lock and
    // flush C (15-19) was already durable; the catch-up, under the lock, pushed up to the
    // durable LEO (20) and put the secondary back. B's replication then finds the follower
    // past B's end: it is done, not waiting forever for the follower to be exactly at 15.
    const [primaryStore, secondaryStore] = stores;
    const [a, b, c] = [batch(0, range(0, 10, 'a'), 3), batch(10, range(10, 5, 'b'), 3), batch(15, range(15, 5, 'c'), 3)];
    await primaryStore.log('t', 0).append([a, b, c], [], 20);
    await secondaryStore.log('t', 0).append([a], [], 10);
    const secondary = follower();
    const port = pushesTo(() => secondary);
    const capped: ReplicationPort = {
      push: (...args) => (port.pushes >= 5 ? Promise.reject(new Error('pushUntil keeps pushing')) : port.push(...args)),
    };
    const sync = new SecondarySync({
      topic: 't',
      partition: 0,
      epoch: 3,
      secondaryId: 2,
      log: primaryStore.log('t', 0),
      cluster: cluster(1),
      client: capped,
      timeoutMs: 5_000,
      logger,
      nextOrder: () => ({ run: 1, seq: port.pushes + 1 }),
    });

    // The catch-up's turns: the first push finds where the follower ends (10), the next sends 10-19.
    while ((await sync.pushOnce(20, 10, undefined, 1 << 20)) !== 'appended' || sync.secondaryLeo !== 20);
    const catchUpPushes = port.pushes;
    await sync.pushUntil(15, 10, { baseOffset: 10, batches: [b], commits: [] }, 1 << 20);

    expect(sync.secondaryLeo).toBe(20);
    expect(port.pushes - catchUpPushes).toBe(1);
    expect(valuesOf(secondaryStore, 0, 20)).toEqual(valuesOf(primaryStore, 0, 20));
  });
});
