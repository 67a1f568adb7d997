// Rebalancing, drain and replacement of dead secondaries against real processes, under
// continuous keyed traffic and a consuming group: every move adds a replica, catches it up and
// swaps it in before the old one goes, leadership moves only to an in-sync secondary, and the
// history checker finds no lost, unexpected or reordered record.
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { TesseraClient } from '@tessera/client';
import type { BrokerStatus } from '@tessera/protocol';
import { type Cluster, startCluster, waitFor } from './harness/cluster.js';
import { History, describeReport } from './harness/history.js';
import { KeyedLoad } from './harness/keyed-load.js';
import { consumeInto, createTopic, keys } from './harness/workload.js';

let cluster: Cluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const spread = (values: number[]) => Math.max(...values) - Math.min(...values);

/** Live, not draining brokers hold primaries and replicas within one of each other, and nothing is being added. */
function balanced(brokers: BrokerStatus[], ids: number[]): boolean {
  const chosen = brokers.filter((b) => ids.includes(b.id));
  return (
    chosen.length === ids.length &&
    brokers.every((b) => (b.adding ?? 0) === 0) &&
    spread(chosen.map((b) => b.primaries)) <= 1 &&
    spread(chosen.map((b) => b.replicas)) <= 1
  );
}

/** The newest rebalance_completed comes after the newest rebalance request and move start. */
async function rebalanceSettled(client: TesseraClient): Promise<boolean> {
  const events = (await client.admin.clusterEvents(2_000)) as Array<{ type: string }>;
  const last = (types: string[]) => events.findLastIndex((e) => types.includes(e.type));
  return last(['rebalance_completed']) > last(['rebalance_requested', 'rebalance_move_started']);
}

async function eventTypes(client: TesseraClient): Promise<string[]> {
  return ((await client.admin.clusterEvents(5_000)) as Array<{ type: string }>).map((e) => e.type);
}

/** Runs traffic (16 keys) and a consuming group while `during` runs, then checks the history. */
async function withTraffic(client: TesseraClient, topic: string, during: () => Promise<void>): Promise<void> {
  const history = new History();
  const consumer = client.consumer({ group: 'check', topic, fromBeginning: true, waitMs: 200 });
  const consuming = consumeInto(consumer, history, 'check');
  // Paced, so the logs the moves copy stay a few thousand records.
  const load = new KeyedLoad(history, topic, randomUUID().slice(0, 8));
  load.start(client.producer({ lingerMs: 2 }), keys(16), 5);
  try {
    await waitFor(() => history.acknowledgedDelivered('check') >= 200, { what: 'traffic before the change' });
    await during();
    // Traffic goes on for a while on the final map too.
    const after = history.acknowledgedDelivered('check');
    await waitFor(() => history.acknowledgedDelivered('check') >= after + 200, { what: 'traffic after the change' });
  } finally {
    await load.stop();
  }
  const acknowledged = load.acknowledged;
  await waitFor(() => history.acknowledgedDelivered('check') === acknowledged, { timeoutMs: 30_000, what: 'every acknowledged record delivered' });
  await consumer.close();
  await consuming;
  const report = history.check('check');
  expect(report.lost, describeReport(report)).toEqual([]);
  expect(report.unexpected, describeReport(report)).toEqual([]);
  expect(report.reordered, describeReport(report)).toEqual([]);
}

describe('rebalancing', () => {
  it('moves replicas and leadership to a joining broker until counts differ by at most one, losing nothing', async () => {
    cluster = await startCluster({ name: 'rebalance-join', maxConcurrentMoves: 2 });
    const client = cluster.client();
    const topic = await createTopic(client, 12);

    await withTraffic(client, topic, async () => {
      await cluster!.addBroker(4);
      await waitFor(async () => balanced(await client.admin.listBrokers(), [1, 2, 3, 4]) && (await rebalanceSettled(client)), {
        timeoutMs: 90_000,
        intervalMs: 250,
        what: 'the map balanced over four brokers',
      });
    });

    const brokers = await client.admin.listBrokers();
    const four = brokers.find((b) => b.id === 4)!;
    expect(four.replicas).toBe(6);
    expect(four.primaries).toBe(3);
    const types = await eventTypes(client);
    expect(types).toContain('rebalance_move_started');
    expect(types).toContain('replica_reassigned');
    expect(types).toContain('leadership_transferred');
    expect(types).toContain('rebalance_move_completed');
    // Every partition is back to two in-sync replicas.
    const described = await client.admin.describeTopic(topic);
    for (const p of described.partitions) expect(p.isr.length, JSON.stringify(p)).toBe(2);
  });

  it('resumes moves after a coordinator restart in the middle of a rebalance', async () => {
    cluster = await startCluster({ name: 'rebalance-restart', maxConcurrentMoves: 1 });
    const client = cluster.client();
    const topic = await createTopic(client, 12);

    await withTraffic(client, topic, async () => {
      await cluster!.addBroker(4);
      await waitFor(async () => (await eventTypes(client)).includes('replica_adding'), { what: 'a move under way' });
      await cluster!.coordinator.restart();
      await waitFor(async () => balanced(await client.admin.listBrokers(), [1, 2, 3, 4]) && (await rebalanceSettled(client)), {
        timeoutMs: 90_000,
        intervalMs: 250,
        what: 'the map balanced over four brokers after the restart',
      });
    });
    const types = await eventTypes(client);
    expect(types.indexOf('coordinator_started', types.indexOf('replica_adding'))).toBeGreaterThan(0);
    expect(types.lastIndexOf('rebalance_move_completed')).toBeGreaterThan(types.lastIndexOf('coordinator_started'));
  });

  it('drains a broker during traffic until it holds nothing, losing nothing', async () => {
    cluster = await startCluster({ name: 'rebalance-drain', brokers: 4, maxConcurrentMoves: 2 });
    const client = cluster.client();
    const topic = await createTopic(client, 12);

    await withTraffic(client, topic, async () => {
      const status = await client.admin.drainBroker(1);
      expect(status.draining).toBe(true);
      await waitFor(
        async () => {
          const brokers = await client.admin.listBrokers();
          const one = brokers.find((b) => b.id === 1)!;
          return one.primaries === 0 && one.replicas === 0 && balanced(brokers, [2, 3, 4]) && (await rebalanceSettled(client));
        },
        { timeoutMs: 90_000, intervalMs: 250, what: 'broker 1 drained' },
      );
    });

    const one = (await client.admin.listBrokers()).find((b) => b.id === 1)!;
    expect(one).toMatchObject({ state: 'alive', draining: true, primaries: 0, replicas: 0 });
    const described = await client.admin.describeTopic(topic);
    for (const p of described.partitions) {
      expect([p.primary, p.secondary]).not.toContain(1);
      expect(p.isr.length, JSON.stringify(p)).toBe(2);
    }
  });

  it('replaces a secondary that stays dead for replace-dead-after-ms', async () => {
    cluster = await startCluster({ name: 'rebalance-replace', brokerTimeoutMs: 1_500, replaceDeadAfterMs: 1_500 });
    const client = cluster.client();
    const topic = await createTopic(client, 6);

    await withTraffic(client, topic, async () => {
      await cluster!.broker(3).kill();
      // Failover handles the partitions broker 3 led; the replacement those it followed.
      await waitFor(
        async () => {
          const described = await client.admin.describeTopic(topic);
          return described.partitions.every((p) => p.primary !== 3 && p.secondary !== 3 && p.secondary !== null && p.isr.length === 2);
        },
        { timeoutMs: 60_000, intervalMs: 250, what: 'every partition on two live in-sync replicas' },
      );
    });

    const events = (await client.admin.clusterEvents(5_000)) as Array<{ type: string; reason?: string }>;
    expect(events.some((e) => e.type === 'rebalance_move_started' && e.reason === 'replace')).toBe(true);
    expect(events.some((e) => e.type === 'replica_reassigned')).toBe(true);
  });

  it('balances leadership by itself after every broker was stopped and the brokers return one by one', async () => {
    // As after `docker compose down` and `up`, but worse: the coordinator restarts first and the
    // brokers come back far apart, so failover and recovery pile primaries onto the first ones.
    cluster = await startCluster({ name: 'rebalance-leadership', brokerTimeoutMs: 1_500, leadershipBalanceDelayMs: 1_000 });
    const client = cluster.client();
    const topic = await createTopic(client, 6);
    const producer = client.producer({ lingerMs: 2 });
    await Promise.all(keys(30).map((key) => producer.send({ topic, key, value: `before ${key}` })));
    await producer.flush();
    await cluster.stopProcesses();

    await cluster.coordinator.start();
    for (const id of [3, 2, 1]) {
      await cluster.broker(id).start();
      // The others are declared dead meanwhile: broker 3 takes over what it can, broker 2 the offline rest.
      if (id !== 1) await new Promise((resolve) => setTimeout(resolve, 2_500));
    }
    const primaries = async () => (await client.admin.listBrokers()).map((b) => b.primaries);
    await waitFor(async () => spread(await primaries()) <= 1, { timeoutMs: 60_000, intervalMs: 250, what: 'primaries within one of each other' });

    const events = (await client.admin.clusterEvents(5_000)) as Array<{ type: string; reason?: string }>;
    const restarted = events.findLastIndex((e) => e.type === 'coordinator_started');
    const since = events.slice(restarted).map((e) => e.type);
    expect(since).toContain('broker_down');
    expect(since).toContain('leadership_balance_started');
    expect(events.slice(restarted).some((e) => e.type === 'rebalance_move_started' && e.reason === 'leadership')).toBe(true);
    const metrics = await (await fetch(`${cluster.coordinatorUrl}/metrics`)).text();
    expect(metrics).toMatch(/^tessera_coordinator_leadership_balance_transfers_total [1-9]/m);
    // Every partition on two in-sync replicas again, and every record still readable.
    await waitFor(async () => (await client.admin.describeTopic(topic)).partitions.every((p) => p.isr.length === 2), {
      timeoutMs: 30_000,
      what: 'every partition in sync',
    });
    const consumer = client.consumer({ group: 'after', topic, fromBeginning: true, waitMs: 200 });
    const seen = new Set<string>();
    await waitFor(async () => {
      for (const record of await consumer.poll()) seen.add(record.key?.toString() ?? '');
      return seen.size === 30;
    }, { timeoutMs: 30_000, what: 'every record read back' });
    await consumer.close();
  });
});
