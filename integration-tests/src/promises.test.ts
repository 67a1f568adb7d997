// Tessera's promises, one fault at a time, each in a scenario small enough to read: a deposed
// primary acknowledges nothing (4), produce and consume go on while the coordinator is down,
// also when a secondary rejoins meanwhile (5), minInsyncReplicas=2 refuses what one replica
// alone would store, a partition with no live in-sync replica goes offline instead of serving
// stale data, and a crashed group member's partitions move to the others without losing
// records (3).
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import type { TesseraClient } from '@tessera/client';
import { JsonHttpClient, sleep } from '@tessera/protocol';
import { type Cluster, startCluster, waitFor } from './harness/cluster.js';
import { History, describeReport } from './harness/history.js';
import { ENTRY_POINTS } from './harness/process.js';
import { rawPost } from './harness/raw-http.js';
import { consumeInto, keys, produceKeyed } from './harness/workload.js';

const BROKER_TIMEOUT_MS = 1_500;
let cluster: Cluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

async function start(name: string, proxies = false): Promise<{ cluster: Cluster; client: TesseraClient }> {
  // The promises hold with every hop secured: TLS, signed internal calls and client authentication.
  cluster = await startCluster({ name, proxies, tls: true, brokerTimeoutMs: BROKER_TIMEOUT_MS, replicaTimeoutMs: 800, groupSessionTimeoutMs: 3_000 });
  return { cluster, client: cluster.client({ requestTimeoutMs: 3_000 }) };
}

async function produceDirect(url: string, topic: string, partition: number, value: string, timeoutMs = 5_000) {
  return rawPost(`${url}/topics/${topic}/partitions/${partition}/records`, { records: [{ value }] }, {
    headers: await cluster!.adminHeaders(),
    tls: cluster!.tls,
    timeoutMs,
  });
}

/** Every value a new group reads from the beginning of `topic` until `expected` distinct values arrived. */
async function readAll(client: TesseraClient, topic: string, group: string, expected: number): Promise<Set<string>> {
  const consumer = client.consumer({ group, topic, fromBeginning: true, waitMs: 200 });
  const values = new Set<string>();
  await waitFor(
    async () => {
      for (const record of await consumer.poll({ maxRecords: 1_000 })) values.add(record.value!.toString());
      return values.size >= expected;
    },
    { what: `${expected} records in ${topic}`, timeoutMs: 30_000 },
  ).finally(() => consumer.close());
  return values;
}

/** The primary's count of partitions whose secondary is out of its ISR (`/metrics`). */
async function underReplicated(url: string): Promise<number> {
  const http = new JsonHttpClient({ timeoutMs: 3_000, tls: cluster!.tls });
  try {
    const text = await http.getText(`${url}/metrics`);
    return Number(/^tessera_broker_under_replicated_partitions (\d+)$/m.exec(text)?.[1] ?? Number.NaN);
  } finally {
    http.close();
  }
}

describe('Tessera promises', () => {
  it('a deposed primary cannot acknowledge a write, and what it wrote alone disappears (4)', async () => {
    const { cluster, client } = await start('deposed', true);
    await client.admin.createTopic({ name: 'fenced', partitions: 1 });
    const before = (await client.admin.describeTopic('fenced')).partitions[0];
    const oldPrimary = before.primary!;
    const producer = client.producer({ lingerMs: 0 });
    for (let i = 0; i < 20; i++) await producer.send({ topic: 'fenced', key: 'k', value: `before-${i}` });

    // Cut the primary off from the coordinator and freeze it long enough to be failed over.
    cluster.links!.get(oldPrimary)!.toCoordinator.set('cut');
    await cluster.broker(oldPrimary).pause();
    await waitFor(async () => (await client.admin.describeTopic('fenced')).partitions[0].primary !== oldPrimary, {
      what: 'the secondary to be promoted',
    });
    const after = (await client.admin.describeTopic('fenced')).partitions[0];
    expect(after.epoch).toBeGreaterThan(before.epoch);
    expect(after.primary).toBe(before.secondary);
    // The ISR is the new primary, plus the newly assigned secondary once it has caught up.
    expect(after.isr[0]).toBe(after.primary);
    expect(after.isr).not.toContain(oldPrimary);
    for (let i = 0; i < 20; i++) await producer.send({ topic: 'fenced', key: 'k', value: `after-${i}` });

    // Thawed but still cut off from the coordinator, the old primary believes it leads: it must not acknowledge.
    await cluster.broker(oldPrimary).resume();
    const attempt = await produceDirect(cluster.broker(oldPrimary).url, 'fenced', 0, 'from-deposed');
    expect(attempt.status).not.toBe(200);

    cluster.links!.get(oldPrimary)!.toCoordinator.set('pass');
    await waitFor(async () => (await client.admin.describeTopic('fenced')).partitions[0].isr.length === 2, {
      what: 'the old primary to rejoin as an in-sync secondary',
    });
    const values = await readAll(client, 'fenced', 'audit', 40);
    expect(values.has('from-deposed')).toBe(false);
    for (let i = 0; i < 20; i++) {
      expect(values.has(`before-${i}`)).toBe(true);
      expect(values.has(`after-${i}`)).toBe(true);
    }
    const events = (await client.admin.clusterEvents(1_000)) as Array<{ type: string }>;
    expect(events.some((event) => event.type === 'failover')).toBe(true);
  });

  it('keeps producing and consuming while the coordinator is down (5)', async () => {
    const { cluster, client } = await start('coordinator-down');
    await client.admin.createTopic({ name: 'steady', partitions: 3 });
    const history = new History();
    const consumer = client.consumer({ group: 'g', topic: 'steady', fromBeginning: true, waitMs: 200 });
    const consuming = consumeInto(consumer, history, 'g');
    const producer = client.producer({ lingerMs: 1 });
    const first = await produceKeyed(producer, history, { topic: 'steady', keys: keys(6), recordsPerKey: 20 });
    await waitFor(() => history.acknowledgedDelivered('g') === first, { what: 'the first records' });

    await cluster.coordinator.kill();
    const second = await produceKeyed(producer, history, { topic: 'steady', keys: keys(6, 'down'), recordsPerKey: 20 });
    expect(second).toBe(120);
    await waitFor(() => history.acknowledgedDelivered('g') === first + second, {
      what: 'records produced while the coordinator is down to be consumed',
    });

    await cluster.coordinator.start();
    const third = await produceKeyed(producer, history, { topic: 'steady', keys: keys(6, 'back'), recordsPerKey: 20 });
    await waitFor(() => history.acknowledgedDelivered('g') === first + second + third, { what: 'every record' });
    await consumer.close();
    await consuming;
    const report = history.check('g');
    expect(report.lost, describeReport(report)).toEqual([]);
    expect(report.reordered).toEqual([]);
  });

  it('acknowledges while a secondary catches up and rejoins with the coordinator down (5)', async () => {
    const { cluster, client } = await start('rejoin-coordinator-down', true);
    await client.admin.createTopic({ name: 'rejoin', partitions: 1 });
    const { primary, secondary } = (await client.admin.describeTopic('rejoin')).partitions[0];
    const producer = client.producer({ lingerMs: 0 });
    const sent: string[] = [];
    const send = async (value: string) => {
      await producer.send({ topic: 'rejoin', key: 'k', value });
      sent.push(value);
    };
    for (let i = 0; i < 10; i++) await send(`before-${i}`);

    // The secondary falls out of the ISR while the coordinator is up, then the coordinator dies.
    const secondaryLink = cluster.links!.get(secondary!)!.inbound;
    secondaryLink.set('cut');
    for (let i = 0; i < 10; i++) await send(`alone-${i}`);
    await waitFor(async () => (await client.admin.describeTopic('rejoin')).partitions[0].isr.length === 1, { what: 'the ISR to shrink' });
    await cluster.coordinator.kill();

    // Reachable again, the secondary is caught up and counted by the primary (its under-replicated
    // gauge falls to 0), whose request to put it back in the ISR nobody answers.
    secondaryLink.set('pass');
    const primaryUrl = cluster.broker(primary!).url;
    await waitFor(async () => (await underReplicated(primaryUrl)) === 0, { what: 'the secondary to be caught up' });
    for (let i = 0; i < 10; i++) await send(`rejoined-${i}`);
    expect(sent).toHaveLength(30);

    await cluster.coordinator.start();
    await waitFor(async () => (await client.admin.describeTopic('rejoin')).partitions[0].isr.length === 2, { what: 'the ISR to expand' });
    const values = await readAll(client, 'rejoin', 'audit', 30);
    expect([...values].sort()).toEqual([...sent].sort());
  });

  it('refuses with NOT_ENOUGH_REPLICAS what only one replica would hold when minInsyncReplicas is 2', async () => {
    const { cluster, client } = await start('min-isr');
    await client.admin.createTopic({ name: 'strict', partitions: 1, config: { minInsyncReplicas: 2 } });
    const { primary, secondary } = (await client.admin.describeTopic('strict')).partitions[0];
    const primaryUrl = cluster.broker(primary!).url;
    expect((await produceDirect(primaryUrl, 'strict', 0, 'both')).status).toBe(200);

    await cluster.broker(secondary!).kill();
    // The first write after the kill waits out the replica timeout; the ISR then shrinks.
    const during = await produceDirect(primaryUrl, 'strict', 0, 'alone-1');
    expect(during.status).not.toBe(200);
    await waitFor(async () => (await client.admin.describeTopic('strict')).partitions[0].isr.length === 1, { what: 'the ISR to shrink' });
    const refused = await produceDirect(primaryUrl, 'strict', 0, 'alone-2');
    expect(refused.status).toBe(503);
    expect(refused.body.error).toMatchObject({ code: 'NOT_ENOUGH_REPLICAS', retriable: true });

    await cluster.broker(secondary!).start();
    await waitFor(async () => (await client.admin.describeTopic('strict')).partitions[0].isr.length === 2, { what: 'the ISR to grow back' });
    expect((await produceDirect(primaryUrl, 'strict', 0, 'both-again')).status).toBe(200);
  });

  it('takes a partition offline when no in-sync replica is alive, and brings it back from its last ISR', async () => {
    const { cluster, client } = await start('offline');
    await client.admin.createTopic({ name: 'fragile', partitions: 1 });
    const { primary, secondary } = (await client.admin.describeTopic('fragile')).partitions[0];
    const producer = client.producer({ lingerMs: 0, deliveryTimeoutMs: 10_000 });
    for (let i = 0; i < 10; i++) await producer.send({ topic: 'fragile', value: `early-${i}` });

    // The secondary dies first and the ISR shrinks to the primary; then the primary dies too.
    await cluster.broker(secondary!).kill();
    for (let i = 0; i < 10; i++) await producer.send({ topic: 'fragile', value: `late-${i}` });
    expect((await client.admin.describeTopic('fragile')).partitions[0].isr).toEqual([primary]);
    await cluster.broker(primary!).kill();
    await waitFor(async () => (await client.admin.clusterStatus()).offline === 1, { what: 'the partition to go offline' });

    // The stale secondary comes back: it must not be made primary, since it lacks acknowledged records.
    await cluster.broker(secondary!).start();
    await sleep(BROKER_TIMEOUT_MS);
    const stale = (await client.admin.describeTopic('fragile')).partitions[0];
    expect(stale.status).toBe('offline');
    expect(stale.primary).not.toBe(secondary);

    await cluster.broker(primary!).start();
    await waitFor(async () => (await client.admin.describeTopic('fragile')).partitions[0].status === 'online', {
      what: 'the partition to come back with its last in-sync replica',
    });
    const values = await readAll(client, 'fragile', 'audit', 20);
    for (let i = 0; i < 10; i++) {
      expect(values.has(`early-${i}`)).toBe(true);
      expect(values.has(`late-${i}`)).toBe(true);
    }
  });

  it('moves a crashed group member’s partitions to the others and refuses commits from an older generation (3)', async () => {
    const { cluster, client } = await start('member-crash');
    await client.admin.createTopic({ name: 'work', partitions: 4 });
    const history = new History();
    const acknowledged = await produceKeyed(client.producer(), history, { topic: 'work', keys: keys(8), recordsPerKey: 25 });

    // A real consumer process (the CLI) joins first and is then SIGKILLed: it never leaves the group.
    const crashing = spawn(
      process.execPath,
      [ENTRY_POINTS.cli, 'consume', 'work', '--group', 'workers', '--from-beginning', '--coordinator', cluster.coordinatorUrl, '--max-messages', '1000000'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          TESSERA_PRINCIPAL: cluster.admin?.principal ?? '',
          TESSERA_SECRET: cluster.admin?.secret ?? '',
          ...(cluster.caFile ? { TESSERA_CA_FILE: cluster.caFile } : {}),
        },
      },
    );
    // The CLI member starts at the oldest record like the survivor (without --from-beginning
    // it would start at the end and may commit that before it is killed, which rightly skips
    // the older records for the whole group). What it printed it processed: its commits may
    // move those partitions past them, so they count as delivered to the group.
    let printed = '';
    crashing.stdout.on('data', (chunk: Buffer) => {
      printed += chunk.toString('utf8');
      const lines = printed.split('\n');
      printed = lines.pop() ?? '';
      for (const line of lines.filter((l) => l.trim() !== '')) {
        const record = JSON.parse(line) as { value: string; partition: number; offset: number; encoding?: 'base64' };
        history.delivered('workers', Buffer.from(record.value, record.encoding ?? 'utf8'), record.partition, record.offset);
      }
    });
    crashing.stderr.resume();
    await waitFor(async () => (await client.admin.describeGroup('workers')).members.length === 1, { what: 'the CLI consumer to join' });
    const survivor = client.consumer({ group: 'workers', topic: 'work', fromBeginning: true, waitMs: 200, sessionTimeoutMs: 3_000 });
    const consuming = consumeInto(survivor, history, 'workers');
    await waitFor(async () => (await client.admin.describeGroup('workers')).members.length === 2, { what: 'two members' });
    const generationWithTwo = (await client.admin.describeGroup('workers')).generation;
    crashing.kill('SIGKILL');

    await waitFor(() => survivor.assignment().length === 4, { what: 'the survivor to own every partition', timeoutMs: 30_000 });
    await waitFor(() => history.acknowledgedDelivered('workers') === acknowledged, { what: 'every record' });
    await survivor.close();
    await consuming;
    expect(history.check('workers').lost).toEqual([]);

    const metadata = await client.admin.metadata();
    const primary = metadata.brokers.find((b) => b.id === metadata.topics.find((t) => t.name === 'work')!.partitions[0].primary)!;
    const stale = await rawPost(
      `${primary.url}/commit`,
      { group: 'workers', generation: generationWithTwo - 1, offsets: [{ topic: 'work', partition: 0, offset: 1 }] },
      { headers: await cluster!.adminHeaders(), tls: cluster!.tls },
    );
    const body = stale.body as { results: Array<{ error?: { code: string } }> };
    expect(body.results[0].error?.code).toBe('GENERATION_MISMATCH');
    void cluster;
  });
});
