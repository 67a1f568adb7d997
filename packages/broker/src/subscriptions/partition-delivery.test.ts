// Proves a push subscription's delivery of one partition starts from the log it is given: a
// position taken on an earlier log of the same name (the topic was deleted and created again)
// that lies beyond this log's end does not hold delivery back, nor skip what this log holds.
// A real partition (real SQLite store) and a real HTTP receiver on loopback.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeRecordBatch, TargetPolicy, TesseraError } from '@tessera/protocol';
import { createLogger } from '@tessera/service';
import { DEFAULT_LIMITS } from '../config.js';
import { Partition } from '../partition/index.js';
import { BrokerStore } from '../storage/index.js';
import type { DeadLetterWriter } from './dead-letter.js';
import { SubscriptionMetrics } from './metrics.js';
import { PartitionDelivery } from './partition-delivery.js';
import { heldSubscription } from '../test-support/subscription.js';
import { SubscriptionRuntime } from './runtime.js';

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

describe('PartitionDelivery', () => {
  it('delivers a log from its start when the remembered position lies beyond its end', async () => {
    const received: number[] = [];
    const server = http.createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        received.push((JSON.parse(body) as { offset: number }).offset);
        response.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));

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
    });
    cleanups.push(() => replica.close());
    replica.applyAssignment({ partition: 0, primary: 1, secondary: null, epoch: 0, isr: [1] }, 1, true);
    const batch = encodeRecordBatch(['a', 'b', 'c'].map((value, i) => ({ key: null, value: Buffer.from(value), timestamp: 1_000 + i })));
    await replica.produce([{ bytes: batch, recordCount: 3, lastOffsetDelta: 2, maxTimestamp: 1_002 }]);

    // Taken when the topic of the same name had 1,000 records.
    const subscription = heldSubscription(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { maxInFlight: 1, startOffsets: { '0': 1_000 } });
    const runtime = new SubscriptionRuntime(subscription, new TargetPolicy('loopback'), new SubscriptionMetrics(), {} as DeadLetterWriter);
    cleanups.push(() => runtime.close());
    const delivery = new PartitionDelivery(runtime, replica, logger);
    cleanups.push(() => delivery.stop());
    await expect.poll(() => received, { timeout: 5_000 }).toEqual([0, 1, 2]);
    expect(delivery.finished).toBe(false);
    await expect.poll(() => store.log('t', 0).groupOffset('subscription.s.0')?.offset, { timeout: 5_000 }).toBe(3);
  });
});
