// The core scenarios of Tessera against a real coordinator and three real brokers on loopback:
// group consumption, a secondary's crash, a cluster restart and a coordinator restart.
import { afterEach, describe, expect, it } from 'vitest';
import { type Cluster, startCluster, waitFor } from './harness/cluster.js';
import { History, describeReport } from './harness/history.js';
import { consumeInto, createTopic, keys, produceKeyed } from './harness/workload.js';

let cluster: Cluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe('a three-broker cluster', () => {
  it.each(['stream', 'http'] as const)('delivers every acknowledged record once per group, in key order, with partitions shared by members (data transport %s)', async (transport) => {
    cluster = await startCluster({ name: `groups-${transport}` });
    const client = cluster.client({ transport });
    const topic = await createTopic(client, 6);

    const history = new History();
    const memberA1 = client.consumer({ group: 'a', topic, fromBeginning: true, waitMs: 500 });
    const memberA2 = client.consumer({ group: 'a', topic, fromBeginning: true, waitMs: 500 });
    const memberB = client.consumer({ group: 'b', topic, fromBeginning: true, waitMs: 500 });
    const consuming = [consumeInto(memberA1, history, 'a'), consumeInto(memberA2, history, 'a'), consumeInto(memberB, history, 'b')];
    // Both members hold their three partitions before anything is produced: six owned in total
    // can also mean the first member holds all six while the second's join is still being
    // applied, and a hand-over during production may deliver records again (at-least-once).
    await waitFor(() => memberA1.assignment().length === 3 && memberA2.assignment().length === 3, {
      what: 'group a to own all six partitions, three per member',
    });

    const producer = client.producer({ lingerMs: 2 });
    const acknowledged = await produceKeyed(producer, history, { topic, keys: keys(24), recordsPerKey: 50 });
    expect(acknowledged).toBe(24 * 50);

    for (const group of ['a', 'b']) {
      await waitFor(() => history.acknowledgedDelivered(group) === acknowledged, { what: `group ${group} to see every record` });
      const report = history.check(group);
      expect(report.lost, describeReport(report)).toEqual([]);
      expect(report.unexpected).toEqual([]);
      expect(report.reordered).toEqual([]);
      expect(report.storedDuplicates).toBe(0);
      expect(report.redelivered).toBe(0);
    }
    // The two members of group a shared the partitions, three each.
    expect(memberA1.assignment().length).toBe(3);
    expect(memberA2.assignment().length).toBe(3);

    await Promise.all([memberA1.close(), memberA2.close(), memberB.close()]);
    await Promise.all(consuming);

    // The records went the way asked: on the brokers' data streams, or as HTTP requests.
    let streamed = 0;
    let posted = 0;
    for (const broker of cluster.brokers.values()) {
      const metrics = await (await fetch(`${broker.url}/metrics`)).text();
      streamed += sumOf(metrics, 'method="STREAM",route="/produce"') + sumOf(metrics, 'method="STREAM",route="/fetch"') + sumOf(metrics, 'method="STREAM",route="/commit"');
      posted += sumOf(metrics, 'method="POST",route="/produce"') + sumOf(metrics, 'method="POST",route="/fetch"') + sumOf(metrics, 'method="POST",route="/commit"');
    }
    expect(transport === 'stream' ? streamed : posted).toBeGreaterThan(0);
    expect(transport === 'stream' ? posted : streamed).toBe(0);
  });

  it('keeps producing without loss after the secondary of a partition is killed, and re-syncs it on restart', async () => {
    cluster = await startCluster({ name: 'secondary-crash' });
    const client = cluster.client();
    const topic = await createTopic(client, 1);
    const before = await client.admin.describeTopic(topic);
    const { primary, secondary } = before.partitions[0];
    expect(primary).not.toBeNull();
    expect(secondary).not.toBeNull();
    expect(before.partitions[0].isr.sort()).toEqual([primary, secondary].sort());

    const history = new History();
    const producer = client.producer({ lingerMs: 1 });
    let killed = false;
    const acknowledged = await produceKeyed(producer, history, {
      topic,
      keys: keys(8),
      recordsPerKey: 150,
      onAcknowledged: async (count) => {
        if (count === 300 && !killed) {
          killed = true;
          await cluster!.broker(secondary!).kill();
        }
      },
    });
    expect(killed).toBe(true);
    expect(acknowledged).toBe(8 * 150);

    const shrunk = await client.admin.describeTopic(topic);
    expect(shrunk.partitions[0].isr).toEqual([primary]);
    expect(shrunk.partitions[0].primary).toBe(primary);

    await cluster.broker(secondary!).start();
    await waitFor(async () => (await client.admin.describeTopic(topic)).partitions[0].isr.length === 2, {
      what: 'the restarted secondary to rejoin the ISR',
    });

    const consumer = client.consumer({ group: 'check', topic, fromBeginning: true, waitMs: 200 });
    const consuming = consumeInto(consumer, history, 'check');
    await waitFor(() => history.acknowledgedDelivered('check') === acknowledged, { what: 'every acknowledged record' });
    await consumer.close();
    await consuming;
    const report = history.check('check');
    expect(report.lost, describeReport(report)).toEqual([]);
    expect(report.reordered).toEqual([]);
    expect(report.unexpected).toEqual([]);
  });

  it('keeps records and committed offsets across a restart of the whole cluster', async () => {
    cluster = await startCluster({ name: 'restart' });
    let client = cluster.client();
    const topic = await createTopic(client, 4);
    const history = new History();
    const acknowledged = await produceKeyed(client.producer(), history, { topic, keys: keys(10), recordsPerKey: 60 });

    // Read part of the topic and commit it.
    const first = client.consumer({ group: 'g', topic, fromBeginning: true, waitMs: 200 });
    const firstSeen = new Set<string>();
    while (firstSeen.size < 250) {
      const records = await first.poll({ maxRecords: 50 });
      for (const record of records) firstSeen.add(record.value!.toString());
      await first.commit(records);
    }
    await first.close();
    const describedBefore = await client.admin.describeTopic(topic);
    await client.close();

    await cluster.stopProcesses();
    await cluster.startProcesses();
    client = cluster.client();

    const after = await client.admin.describeTopic(topic);
    expect(after.partitions.map(({ primary, secondary, epoch }) => ({ primary, secondary, epoch }))).toEqual(
      describedBefore.partitions.map(({ primary, secondary, epoch }) => ({ primary, secondary, epoch })),
    );

    // The group goes on from its committed offsets: nothing it committed comes again.
    const second = client.consumer({ group: 'g', topic, fromBeginning: true, waitMs: 200 });
    const secondSeen = new Set<string>();
    await waitFor(
      async () => {
        for (const record of await second.poll({ maxRecords: 500 })) secondSeen.add(record.value!.toString());
        return firstSeen.size + secondSeen.size >= acknowledged;
      },
      { what: 'the rest of the records after the restart' },
    );
    await second.close();
    const again = [...secondSeen].filter((value) => firstSeen.has(value));
    expect(again).toEqual([]);
    expect(firstSeen.size + secondSeen.size).toBe(acknowledged);

    // A new group still sees every record.
    const fresh = client.consumer({ group: 'fresh', topic, fromBeginning: true, waitMs: 200 });
    const consuming = consumeInto(fresh, history, 'fresh');
    await waitFor(() => history.acknowledgedDelivered('fresh') === acknowledged, { what: 'a new group to see everything' });
    await fresh.close();
    await consuming;
    expect(history.check('fresh').lost).toEqual([]);
  });

  it('serves none of a deleted topic\'s records as those of a topic made again under its name, on a broker that missed the deletion', async () => {
    // Broker 1 is cut off from the coordinator while the topic is deleted and made again: still
    // counted alive, it is placed in the new topic as before. Clients route by the new map while
    // broker 1 still holds the old one and the old topic's replicas.
    cluster = await startCluster({ name: 'remade-topic', brokerTimeoutMs: 15_000, proxies: true });
    const client = cluster.client();
    const topic = await createTopic(client, 3);
    const producer = client.producer({ lingerMs: 2 });
    expect(await produceKeyed(producer, new History(), { topic, keys: keys(12, 'old'), recordsPerKey: 10 })).toBe(120);

    const links = cluster.links!.get(1)!;
    links.toCoordinator.set('cut');
    links.inbound.set('cut');
    await client.admin.deleteTopic(topic);
    await client.admin.createTopic({ name: topic, partitions: 3, replicationFactor: 2 });
    const remade = await client.admin.describeTopic(topic);
    expect(remade.partitions.some((p) => p.primary === 1)).toBe(true);
    expect(remade.partitions.every((p) => p.epoch > 0)).toBe(true);

    const history = new History();
    const consumer = client.consumer({ group: 'fresh', topic, fromBeginning: true, waitMs: 200 });
    const consuming = consumeInto(consumer, history, 'fresh');
    const producing = produceKeyed(client.producer({ lingerMs: 2 }), history, { topic, keys: keys(12, 'new'), recordsPerKey: 5 });
    // Long enough for the consumer and the producer to reach broker 1 (many times) before it hears of the new map.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    links.toCoordinator.set('pass');
    links.inbound.set('pass');

    expect(await producing).toBe(60);
    await waitFor(() => history.acknowledgedDelivered('fresh') === 60, { what: 'every new record delivered' });
    await consumer.close();
    await consuming;
    const report = history.check('fresh');
    expect(report.unexpected, describeReport(report)).toEqual([]);
    expect(report.lost, describeReport(report)).toEqual([]);
  });

  it('deletes a group empty for the group retention with its committed offsets, and keeps a group with a member', async () => {
    cluster = await startCluster({ name: 'group-expiry', serviceEnv: { TESSERA_GROUP_RETENTION_MS: '2000' } });
    const client = cluster.client();
    const topic = await createTopic(client, 2);
    const producer = client.producer({ lingerMs: 2 });
    for (let i = 0; i < 10; i++) await producer.send({ topic, key: `k${i}`, value: `v${i}` });
    await producer.close();
    const pollAll = async (consumer: ReturnType<typeof client.consumer>) => {
      const values: string[] = [];
      await waitFor(async () => {
        for (const record of await consumer.poll({ waitMs: 200 })) values.push(record.value!.toString());
        return values.length >= 10;
      }, { what: 'ten records' });
      return values.sort();
    };

    const gone = client.consumer({ group: 'gone', topic, startAt: 'earliest', waitMs: 200 });
    expect(await pollAll(gone)).toEqual(Array.from({ length: 10 }, (_, i) => `v${i}`).sort());
    await gone.commit();
    await gone.close();
    const kept = client.consumer({ group: 'kept', topic, startAt: 'earliest', waitMs: 200, sessionTimeoutMs: 10_000 });
    await pollAll(kept);
    await kept.commit();
    // kept polls on (its member heartbeats); gone has no member from now on.
    let stop = false;
    const keptPolling = (async () => {
      while (!stop) await kept.poll({ waitMs: 200 });
    })();
    try {
      await waitFor(async () => !(await client.admin.listGroups()).some((g) => g.group === 'gone'), { timeoutMs: 30_000, what: 'group gone to expire' });
      const events = (await client.admin.clusterEvents(100)) as Array<{ type: string; group?: string }>;
      expect(events.filter((e) => e.type === 'group_expired').map((e) => e.group)).toEqual(['gone']);
      expect((await client.admin.listGroups()).map((g) => g.group)).toContain('kept');
    } finally {
      stop = true;
      await keptPolling;
      await kept.close();
    }
    // Its offsets went with it: a member of the same name starts from the beginning again.
    const again = client.consumer({ group: 'gone', topic, startAt: 'earliest', waitMs: 200 });
    expect(await pollAll(again)).toHaveLength(10);
    await again.close();
  });

  it('keeps topics and assignments across a coordinator restart', async () => {
    cluster = await startCluster({ name: 'coordinator-restart' });
    const client = cluster.client();
    const topic = await createTopic(client, 8);
    const before = await client.admin.describeTopic(topic);
    await cluster.coordinator.restart();
    const after = await client.admin.describeTopic(topic);
    expect(after.partitions.map(({ partition, primary, secondary, epoch, isr }) => ({ partition, primary, secondary, epoch, isr }))).toEqual(
      before.partitions.map(({ partition, primary, secondary, epoch, isr }) => ({ partition, primary, secondary, epoch, isr })),
    );
    expect((await client.admin.listTopics()).map((t) => t.name)).toContain(topic);
    const metadata = await client.admin.metadata();
    expect(metadata.brokers.map((broker) => broker.id).sort()).toEqual([1, 2, 3]);
    // Brokers heartbeat again, so the restarted coordinator sees them alive.
    await waitFor(async () => (await client.admin.clusterStatus()).brokers.every((broker) => broker.alive), {
      what: 'every broker alive after the coordinator restart',
    });
  });
});

/** The sum of `tessera_broker_request_duration_seconds_count` over the series whose labels start with `labels`. */
function sumOf(metrics: string, labels: string): number {
  let sum = 0;
  for (const line of metrics.split('\n')) {
    if (line.startsWith(`tessera_broker_request_duration_seconds_count{${labels},`)) sum += Number(line.split(' ').pop());
  }
  return sum;
}
