// Proves a push subscription's delivery of one partition starts from the log it is given: a
// position taken on an earlier log of the same name (the topic was deleted and created again)
// that lies beyond this log's end does not hold delivery back, nor skip what this log holds; and
// that a delivery stopped in the middle of a stream (a pause, a suspension) lets its attempt in
// flight finish and commits its progress, so the next one neither repeats nor skips a record: the
// commit is tried again while the disk is full for a moment, and when it cannot be stored the
// next loop on this broker goes on from where the stopped one ended; and that no attempt starts
// after a stop that lands during a commit, nor does the idle loop wait for records after it; and
// that once the coordinator stored the deletion mark of a deleted subscription's group, no commit
// of its loop replaces it.
// A real partition (real SQLite store) and a real HTTP receiver on loopback.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DELETED_GROUP_OFFSET, DELETED_SUBSCRIPTION_GENERATION, encodeRecordBatch, TargetPolicy, TesseraError } from '@tessera/protocol';
import { StorageSpace, createLogger } from '@tessera/service';
import { DEFAULT_LIMITS } from '../config.js';
import { Partition } from '../partition/index.js';
import { BrokerStore } from '../storage/index.js';
import type { DeadLetterWriter } from './dead-letter.js';
import { SubscriptionMetrics } from './metrics.js';
import { PartitionDelivery } from './partition-delivery.js';
import { heldSubscription, type HeldSubscriptionOverrides } from '../test-support/subscription.js';
import { SubscriptionRuntime } from './runtime.js';

/** The real setTimeout, for a bound on a wait while the test fakes timers. */
const realSetTimeout = globalThis.setTimeout;

const logger = createLogger('broker', { test: 'partition-delivery' }, { level: process.env.TESSERA_TEST_LOG_LEVEL ?? 'silent' });
const cleanups: Array<() => Promise<void> | void> = [];
let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-delivery-'));
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A receiver on loopback that notes each delivery's offset when the request arrives and answers 204 after `answerAfterMs`. */
async function receiver(answerAfterMs = 0): Promise<{ url: string; received: number[] }> {
  const received: number[] = [];
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      received.push((JSON.parse(body) as { offset: number }).offset);
      setTimeout(() => response.writeHead(204).end(), answerAfterMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, received };
}

/**
 * A disk that is full while `full` is true: the broker's storage guard (a real StorageSpace that
 * keeps more free than any disk has) refuses writes with STORAGE_FULL then, and not otherwise.
 */
function fullDisk(): { full: boolean; checkStorage: (what: string) => void } {
  const guard = new StorageSpace({ dataDir: dir, reserveBytes: 0, minFreeBytes: Number.MAX_SAFE_INTEGER, logger });
  const disk = {
    full: false,
    checkStorage: (what: string) => {
      if (disk.full) guard.checkWritable(what);
    },
  };
  return disk;
}

/** Partition t/0 led by this broker alone, holding one record per value. */
async function ledPartition(values: string[], checkStorage?: (what: string) => void): Promise<{ replica: Partition; store: BrokerStore }> {
  const store = BrokerStore.open(dir, 'full');
  cleanups.push(() => store.close());
  const unreachable = () => Promise.reject(new TesseraError('UNAVAILABLE', 'no coordinator in this test'));
  const replica = new Partition({
    topic: 't',
    partition: 0,
    store: store.log('t', 0),
    cluster: { brokerId: 1, brokerUrl: () => undefined, brokerRef: () => null, changeIsr: unreachable, completeReassignment: unreachable, requestMetadataRefresh: () => undefined, nextIsrSeq: () => 1 },
    client: { push: unreachable },
    logger,
    replicaTimeoutMs: 5_000,
    limits: DEFAULT_LIMITS,
    checkStorage,
  });
  cleanups.push(() => replica.close());
  replica.applyAssignment({ partition: 0, primary: 1, secondary: null, epoch: 0, isr: [1] }, 1, true);
  const batch = encodeRecordBatch(values.map((value, i) => ({ key: null, value: Buffer.from(value), timestamp: 1_000 + i })));
  await replica.produce([{ bytes: batch, recordCount: values.length, lastOffsetDelta: values.length - 1, maxTimestamp: 1_000 + values.length - 1 }]);
  return { replica, store };
}

function runtimeFor(url: string, overrides: HeldSubscriptionOverrides = {}): SubscriptionRuntime {
  const runtime = new SubscriptionRuntime(heldSubscription(url, overrides), new TargetPolicy('loopback'), new SubscriptionMetrics(), {} as DeadLetterWriter);
  cleanups.push(() => runtime.close());
  return runtime;
}

describe('PartitionDelivery', () => {
  it('delivers a log from its start when the remembered position lies beyond its end', async () => {
    const { url, received } = await receiver();
    const { replica, store } = await ledPartition(['a', 'b', 'c']);
    // Taken when the topic of the same name had 1,000 records.
    const runtime = runtimeFor(url, { maxInFlight: 1, startOffsets: { '0': 1_000 } });
    const delivery = new PartitionDelivery(runtime, replica, logger);
    cleanups.push(() => delivery.stop('abort'));
    await expect.poll(() => received, { timeout: 5_000 }).toEqual([0, 1, 2]);
    expect(delivery.finished).toBe(false);
    await expect.poll(() => store.log('t', 0).groupOffset('subscription.s.0')?.offset, { timeout: 5_000 }).toBe(3);
  });

  it('finishes the attempt in flight and commits when stopped mid-stream, so the next delivery goes on from there', async () => {
    // Each answer takes 50 ms, so the stop below lands while an attempt waits for its answer,
    // and before the loop's periodic commit (every second) stored the records delivered so far.
    const { url, received } = await receiver(50);
    const values = Array.from({ length: 20 }, (_, i) => `v${i}`);
    const { replica, store } = await ledPartition(values);
    const runtime = runtimeFor(url, { maxInFlight: 1 });
    const first = new PartitionDelivery(runtime, replica, logger);
    await expect.poll(() => received.length, { timeout: 5_000, interval: 5 }).toBeGreaterThanOrEqual(5);
    await first.stop('finish');
    const stoppedAt = received.length;
    expect(stoppedAt).toBeLessThan(values.length);
    // Everything the receiver was sent, the attempt in flight at the stop included, is committed.
    expect(store.log('t', 0).groupOffset('subscription.s.0')?.offset).toBe(stoppedAt);

    const second = new PartitionDelivery(runtime, replica, logger);
    cleanups.push(() => second.stop('abort'));
    await expect.poll(() => received.length, { timeout: 5_000 }).toBe(values.length);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(received).toEqual(values.map((_, offset) => offset));
  });

  it('tries the commit of a stopped loop again while it fails for a passing reason', async () => {
    const { url, received } = await receiver(50);
    const disk = fullDisk();
    const values = Array.from({ length: 20 }, (_, i) => `v${i}`);
    const { replica, store } = await ledPartition(values, disk.checkStorage);
    const first = new PartitionDelivery(runtimeFor(url, { maxInFlight: 1 }), replica, logger);
    cleanups.push(() => first.stop('abort'));
    await expect.poll(() => received.length, { timeout: 5_000, interval: 5 }).toBeGreaterThanOrEqual(5);
    // The disk is full when the loop stops, and has room again 300 ms later.
    disk.full = true;
    setTimeout(() => (disk.full = false), 300);
    await first.stop('finish');
    expect(store.log('t', 0).groupOffset('subscription.s.0')?.offset).toBe(received.length);
    expect(first.progressStored).toBe(true);
  });

  it('goes on from where a stopped loop ended when its commit could not be stored, neither repeating nor skipping', async () => {
    const { url, received } = await receiver(50);
    const disk = fullDisk();
    const values = Array.from({ length: 20 }, (_, i) => `v${i}`);
    const { replica, store } = await ledPartition(values, disk.checkStorage);
    const runtime = runtimeFor(url, { maxInFlight: 1 });
    const first = new PartitionDelivery(runtime, replica, logger);
    await expect.poll(() => received.length, { timeout: 5_000, interval: 5 }).toBeGreaterThanOrEqual(5);
    // Full for the whole stop: no commit of this loop is stored, what it delivered is only known here.
    disk.full = true;
    await first.stop('finish');
    const stoppedAt = received.length;
    expect(first.progressStored).toBe(false);
    expect(first.nextOffset).toBe(stoppedAt);
    expect(store.log('t', 0).groupOffset('subscription.s.0')?.offset ?? 0).toBeLessThan(stoppedAt);
    disk.full = false;

    // As SubscriptionDeliveries starts the next loop on this broker: from where the last one ended.
    const second = new PartitionDelivery(runtime, replica, logger, first.nextOffset);
    cleanups.push(() => second.stop('abort'));
    await expect.poll(() => received.length, { timeout: 5_000 }).toBe(values.length);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(received).toEqual(values.map((_, offset) => offset));
    await expect.poll(() => store.log('t', 0).groupOffset('subscription.s.0')?.offset, { timeout: 5_000 }).toBe(values.length);
  });

  it('starts no attempt after a stop that lands during its periodic commit', async () => {
    // Answers take 20 ms, so 200 records outlast the first periodic commit (after a second of
    // delivering); the stop is made from inside that commit (the partition's storage check).
    const { url, received } = await receiver(20);
    const values = Array.from({ length: 200 }, (_, i) => `v${i}`);
    let onCommit = (): void => undefined;
    const { replica, store } = await ledPartition(values, (what) => {
      if (what.startsWith('commit')) onCommit();
    });
    const delivery = new PartitionDelivery(runtimeFor(url, { maxInFlight: 1 }), replica, logger);
    cleanups.push(() => delivery.stop('abort'));
    let stoppedAfter = -1;
    let stopped: Promise<void> | undefined;
    onCommit = () => {
      if (stopped !== undefined) return;
      stoppedAfter = received.length;
      stopped = delivery.stop('finish');
    };
    await expect.poll(() => stopped !== undefined, { timeout: 10_000 }).toBe(true);
    await stopped;
    expect(stoppedAfter).toBeGreaterThan(0);
    expect(stoppedAfter).toBeLessThan(values.length);
    // Nothing was sent after the stop: the receiver got only what it had when the commit began.
    expect(received).toEqual(values.slice(0, stoppedAfter).map((_, offset) => offset));
    // Nor was one begun: no attempt of the next record is reported.
    expect(delivery.report().attempts).toBe(0);
    expect(delivery.nextOffset).toBe(stoppedAfter);
    expect(store.log('t', 0).groupOffset('subscription.s.0')?.offset).toBe(stoppedAfter);
  });

  it('ends without waiting for records when stopped during its idle commit', async () => {
    // The commit after the one record fails (the disk is full for a moment), so the idle loop
    // commits again before it waits for records; the stop is made from inside that commit. From
    // then on timers are faked and never run: the loop has to end without its idle wait's timer.
    const { url, received } = await receiver();
    let commits = 0;
    let onIdleCommit = (): void => undefined;
    const { replica, store } = await ledPartition(['a'], (what) => {
      if (!what.startsWith('commit')) return;
      commits++;
      if (commits === 1) throw new TesseraError('STORAGE_FULL', 'the disk is full for a moment');
      if (commits === 2) onIdleCommit();
    });
    const delivery = new PartitionDelivery(runtimeFor(url, { maxInFlight: 1 }), replica, logger);
    cleanups.push(() => delivery.stop('abort'));
    let stopped: Promise<void> | undefined;
    onIdleCommit = () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      stopped = delivery.stop('finish');
    };
    try {
      await expect.poll(() => stopped !== undefined, { timeout: 5_000 }).toBe(true);
      // The bound only turns a loop that never ends into a failure; the loop needs no time to end.
      const outcome = await Promise.race([
        stopped!.then(() => 'ended'),
        new Promise((resolve) => realSetTimeout(() => resolve('still waiting'), 5_000)),
      ]);
      expect(outcome).toBe('ended');
    } finally {
      // Lets a loop that still waits end, so the cleanup does not wait for it.
      vi.runOnlyPendingTimers();
      vi.useRealTimers();
    }
    expect(delivery.finished).toBe(true);
    expect(commits).toBe(2);
    expect(received).toEqual([0]);
    expect(store.log('t', 0).groupOffset('subscription.s.0')?.offset).toBe(1);
  });

  it('delivers nothing when its group was marked deleted before it started, rather than everything again', async () => {
    // A broker that has not heard of the delete yet starts a loop (it took the partition over).
    const { url, received } = await receiver();
    const { replica } = await ledPartition(['a', 'b', 'c']);
    await replica.commit({ group: 'subscription.s.0', offset: 2, generation: 0 }, { fencedByDeletion: true });
    await replica.commit({ group: 'subscription.s.0', offset: DELETED_GROUP_OFFSET, generation: DELETED_SUBSCRIPTION_GENERATION });
    const delivery = new PartitionDelivery(runtimeFor(url, { maxInFlight: 1 }), replica, logger);
    cleanups.push(() => delivery.stop('abort'));
    await expect.poll(() => delivery.finished, { timeout: 5_000 }).toBe(true);
    expect(received).toEqual([]);
    expect(delivery.groupDeleted).toBe(true);
  });

  it("commits nothing over its group's deletion mark: a loop that delivered on after the coordinator marked the group deleted stores no position", async () => {
    const { url, received } = await receiver(50);
    const values = Array.from({ length: 20 }, (_, i) => `v${i}`);
    const { replica, store } = await ledPartition(values);
    const delivery = new PartitionDelivery(runtimeFor(url, { maxInFlight: 1 }), replica, logger);
    cleanups.push(() => delivery.stop('abort'));
    await expect.poll(() => received.length, { timeout: 5_000, interval: 5 }).toBeGreaterThanOrEqual(3);
    // The subscription is deleted: the coordinator stores the mark as `POST /internal/group-offsets` does, while this
    // broker has not heard of the delete yet. The loop delivers on, then stops and commits what it delivered.
    await replica.commit({ group: 'subscription.s.0', offset: DELETED_GROUP_OFFSET, generation: DELETED_SUBSCRIPTION_GENERATION });
    const marked = received.length;
    await expect.poll(() => received.length, { timeout: 5_000, interval: 5 }).toBeGreaterThanOrEqual(marked + 2);
    await delivery.stop('finish');
    // Its commit was refused, and the mark stays: no position, so no lag, for a group nobody consumes any more.
    expect(store.log('t', 0).groupOffsets()).toEqual([{ group: 'subscription.s.0', offset: DELETED_GROUP_OFFSET, generation: DELETED_SUBSCRIPTION_GENERATION }]);
    expect(store.log('t', 0).groupOffset('subscription.s.0')).toBeUndefined();
    expect(delivery.groupDeleted).toBe(true);
  });
});
