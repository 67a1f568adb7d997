// Proves that creating a 1,000-partition topic on three brokers starves nobody: while every
// broker opens and syncs its ~667 new replicas, no broker stops heartbeating long enough to be
// declared dead, and the partitions of a topic that was already serving keep their primary and
// epoch (nothing failed over, nothing went offline). Checked on the coordinator's events and
// partition states, not on timings; then every new partition takes and serves a record.
import { afterEach, describe, expect, it } from 'vitest';
import type { TopicDescription } from '@tessera/protocol';
import { type Cluster, startCluster, waitFor } from './harness/cluster.js';
import { createTopic } from './harness/workload.js';

let cluster: Cluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const placement = (topic: TopicDescription) => topic.partitions.map((p) => ({ partition: p.partition, primary: p.primary, epoch: p.epoch }));

describe('a topic with 1,000 partitions', () => {
  it('is created without any broker being declared dead or any other partition going offline', { timeout: 240_000 }, async () => {
    cluster = await startCluster({ name: 'many-partitions' });
    const client = cluster.client();
    const serving = await createTopic(client, 6);
    await waitFor(async () => (await client.admin.describeTopic(serving)).partitions.every((p) => p.status === 'online'), {
      what: 'the serving topic online',
    });
    const before = placement(await client.admin.describeTopic(serving));
    const eventsBefore = (await client.admin.clusterEvents(10_000)).length;

    const name = `big-${Math.random().toString(36).slice(2, 8)}`;
    await client.admin.createTopic({ name, partitions: 1_000, replicationFactor: 2 });
    // Every new partition online with both replicas in sync: each primary has opened its
    // replica and heard from its secondary.
    await waitFor(
      async () => {
        const big = await client.admin.describeTopic(name);
        return big.partitions.length === 1_000 && big.partitions.every((p) => p.status === 'online' && p.isr.length === 2);
      },
      { what: 'all 1,000 partitions online and in sync', timeoutMs: 180_000, intervalMs: 500 },
    );

    const events = ((await client.admin.clusterEvents(10_000)) as Array<{ type: string; isr?: number[]; previousIsr?: number[] }>).slice(eventsBefore);
    const shrunk = (e: (typeof events)[number]) => e.type === 'isr_change' && (e.isr?.length ?? 0) < (e.previousIsr?.length ?? 0);
    const bad = events.filter((e) => ['broker_down', 'failover', 'partition_offline'].includes(e.type) || shrunk(e));
    expect(bad).toEqual([]);
    expect(placement(await client.admin.describeTopic(serving))).toEqual(before);
    const status = await client.admin.listBrokers();
    expect(status.map((b) => b.state)).toEqual(['alive', 'alive', 'alive']);

    // Every new partition serves: one record to each, through the client.
    const producer = client.producer({ lingerMs: 5 });
    await Promise.all(Array.from({ length: 1_000 }, (_, partition) => producer.send({ topic: name, partition, value: `p${partition}` })));
    // The coordinator learns each HW from the primaries' heartbeats.
    await waitFor(async () => (await client.admin.describeTopic(name)).partitions.every((p) => p.highWatermark === 1), {
      what: 'every new partition at HW 1',
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    await producer.close();
  });
});
