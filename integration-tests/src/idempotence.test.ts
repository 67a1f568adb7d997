// The idempotent producer with real processes: a primary dies after a batch is stored on both
// replicas and before it answers (the broker failpoint `produce-before-answer=exit`, enabled for
// that one broker through TESSERA_FAILPOINTS), the client retries the same batch to the promoted
// secondary, and gets the offsets of the first storing while the log holds the record once.
// Also: POST /producers hands out ids that stay unique across a coordinator restart.
import { afterEach, describe, expect, it } from 'vitest';
import type { TesseraClient } from '@tessera/client';
import { type Cluster, startCluster, waitFor } from './harness/cluster.js';
import { rawPost } from './harness/raw-http.js';

let cluster: Cluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

/** Every record of one partition from offset 0 to the log end, as [offset, value]. */
async function readPartition(client: TesseraClient, topic: string, partition: number, group: string, until: string): Promise<Array<[number, string]>> {
  const consumer = client.consumer({ group, topic, fromBeginning: true, waitMs: 200 });
  const records: Array<[number, string]> = [];
  await waitFor(
    async () => {
      for (const record of await consumer.poll({ maxRecords: 1_000 })) {
        if (record.partition === partition) records.push([record.offset, record.value!.toString()]);
      }
      return records.some(([, value]) => value === until);
    },
    { what: `record ${until} in ${topic}/${partition}`, timeoutMs: 30_000 },
  ).finally(() => consumer.close());
  return records;
}

describe('idempotent producer', () => {
  it('a primary killed between storing a batch and answering it: the retry gets the original offsets, and the log holds the record once', async () => {
    cluster = await startCluster({
      name: 'idempotence-failover',
      brokers: 2,
      brokerTimeoutMs: 1_500,
      replicaTimeoutMs: 800,
      brokerEnv: { 1: { TESSERA_FAILPOINTS: 'produce-before-answer=exit' } },
    });
    const client = cluster.client({ requestTimeoutMs: 3_000 });
    await client.admin.createTopic({ name: 'once', partitions: 2, replicationFactor: 2 });
    const partition = (await client.admin.describeTopic('once')).partitions.find((p) => p.primary === 1)?.partition;
    expect(partition, 'placement gives broker 1 one of the two primaries').toBeDefined();

    const producer = client.producer({ deliveryTimeoutMs: 30_000 });
    const sent = await producer.send({ topic: 'once', partition, value: 'exactly-once' });
    // The failpoint fired: broker 1 stored the batch on both replicas, then died without answering.
    expect(cluster.broker(1).running).toBe(false);
    const after = await producer.send({ topic: 'once', partition, value: 'after' });
    expect((await client.admin.describeTopic('once')).partitions[partition!]!.primary).toBe(2);

    // The record was stored once, at offset 0, which is what the retry was told.
    expect(sent).toEqual({ topic: 'once', partition, offset: 0 });
    expect(after.offset).toBe(1);
    expect(await readPartition(client, 'once', partition!, 'reader', 'after')).toEqual([
      [0, 'exactly-once'],
      [1, 'after'],
    ]);
    // And broker 2 answered the retry from its producer state (replicated with the batch), not by storing it.
    const metrics = await (await fetch(`${cluster.broker(2).url}/metrics`)).text();
    expect(metrics).toMatch(/^tessera_broker_produce_duplicate_batches_total 1$/m);
  });

  it('hands out producer ids that are never repeated, across a coordinator restart too', async () => {
    cluster = await startCluster({ name: 'idempotence-ids', brokers: 1 });
    const headers = await cluster.adminHeaders();
    const ask = async () => {
      const answer = await rawPost(`${cluster!.coordinatorUrl}/producers`, {}, { headers });
      expect(answer.status).toBe(200);
      return answer.body as { producerId: number; producerEpoch: number };
    };
    const before = [await ask(), await ask()];
    expect(before[0]!.producerEpoch).toBe(0);
    expect(before[1]!.producerId).toBeGreaterThan(before[0]!.producerId);
    await cluster.coordinator.restart();
    const afterRestart = await ask();
    expect(afterRestart.producerId).toBeGreaterThan(before[1]!.producerId);
    // Without a token it is refused like every client route.
    expect((await rawPost(`${cluster.coordinatorUrl}/producers`, {})).status).toBe(401);
  });
});
