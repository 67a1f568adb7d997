// Proves retention and purge on a live topic with real processes: the log start moves past
// whole batches by size and by time (never past what is acknowledged), a consumer group behind
// it goes on from the new log start and loses nothing it could still read (the default reset
// policy; a reader with 'error' stops naming the log start, one with 'latest' skips to the HW), a fetch below it is
// OFFSET_OUT_OF_RANGE naming the log start, both replicas agree on it (also after a failover
// and a restart of the whole cluster), and a purge empties a topic while its offsets numbering
// and its groups stay. A secondary reset past its end that then misses the deletion of its topic
// follows the topic made again under its name. The operator commands are run as a user runs
// them (`tessera topics alter|purge`).
import { afterEach, describe, expect, it } from 'vitest';
import type { TesseraClient } from '@tessera/client';
import { type Cluster, startCluster, waitFor } from './harness/cluster.js';
import { type CliResult, runCliAsAdmin } from './harness/cli.js';
import { rawPost } from './harness/raw-http.js';

/** Brokers run a retention pass this often (the default, 30 s, would make the test wait). */
const RETENTION_CHECK_MS = 200;

let cluster: Cluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

async function start(
  name: string,
  brokers = 3,
  { brokerTimeoutMs = 1_500, retentionCheckMs = RETENTION_CHECK_MS }: { brokerTimeoutMs?: number; retentionCheckMs?: number } = {},
): Promise<{ cluster: Cluster; client: TesseraClient }> {
  cluster = await startCluster({
    name,
    brokers,
    brokerTimeoutMs,
    replicaTimeoutMs: 800,
    groupSessionTimeoutMs: 3_000,
    serviceEnv: { TESSERA_RETENTION_CHECK_MS: String(retentionCheckMs) },
  });
  return { cluster, client: cluster.client({ requestTimeoutMs: 3_000 }) };
}

function cli(args: string[]): Promise<CliResult> {
  return runCliAsAdmin(cluster!, args);
}

/** One gauge of a broker's /metrics for one partition, undefined when the broker does not report it. */
async function gauge(brokerUrl: string, name: string, topic: string, partition = 0): Promise<number | undefined> {
  const text = await (await fetch(`${brokerUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`topic="${topic}"`) && l.includes(`partition="${partition}"`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** The log start of a partition on each broker holding it. */
async function logStarts(c: Cluster, client: TesseraClient, topic: string, partition = 0): Promise<Record<number, number | undefined>> {
  const p = (await client.admin.describeTopic(topic)).partitions[partition];
  const starts: Record<number, number | undefined> = {};
  for (const id of [p.primary, p.secondary]) {
    if (id !== null && c.broker(id).running) starts[id] = await gauge(c.broker(id).url, 'tessera_broker_replica_log_start_offset', topic, partition);
  }
  return starts;
}

/** Waits until both replicas of partition 0 report `expected` as their log start. */
async function bothStartAt(c: Cluster, client: TesseraClient, topic: string, expected: number): Promise<void> {
  await waitFor(
    async () => {
      const starts = Object.values(await logStarts(c, client, topic));
      return starts.length === 2 && starts.every((s) => s === expected);
    },
    { what: `both replicas of ${topic}/0 to start at ${expected}`, timeoutMs: 20_000 },
  );
}

/** A fetch at `offset` straight to the partition's primary (JSON, as curl would). */
async function fetchAt(c: Cluster, client: TesseraClient, topic: string, offset: number): Promise<any> {
  const primary = (await client.admin.describeTopic(topic)).partitions[0].primary!;
  const answer = await rawPost(`${c.broker(primary).url}/fetch`, { partitions: [{ topic, partition: 0, offset }], waitMs: 0 }, { headers: await c.adminHeaders() });
  expect(answer.status).toBe(200);
  return answer.body.partitions[0];
}

/** Every record a group reads until it reaches `endOffset` (offsets and values). */
/** A new consumer of `group` reads the first `count` records of `topic`, commits them and stops: its offsets. */
async function readFirst(client: TesseraClient, topic: string, group: string, count: number): Promise<number[]> {
  const consumer = client.consumer({ group, topic, fromBeginning: true, waitMs: 200 });
  const offsets: number[] = [];
  try {
    while (offsets.length < count) {
      const records = (await consumer.poll({ maxRecords: count - offsets.length })).slice(0, count - offsets.length);
      await consumer.commit(records);
      offsets.push(...records.map((r) => r.offset));
    }
  } finally {
    await consumer.close();
  }
  return offsets;
}

async function readGroup(client: TesseraClient, topic: string, group: string, endOffset: number): Promise<Array<{ offset: number; value: string }>> {
  const consumer = client.consumer({ group, topic, fromBeginning: true, waitMs: 200 });
  const seen: Array<{ offset: number; value: string }> = [];
  try {
    await waitFor(
      async () => {
        const records = await consumer.poll({ maxRecords: 500 });
        for (const record of records) seen.push({ offset: record.offset, value: record.value!.toString() });
        await consumer.commit(records);
        return seen.length > 0 && seen[seen.length - 1].offset >= endOffset - 1;
      },
      { what: `group ${group} to read ${topic} up to ${endOffset}`, timeoutMs: 30_000 },
    );
  } finally {
    await consumer.close();
  }
  return seen;
}

describe('retention and purge', () => {
  it('retention by size moves the log start on both replicas; a group behind it resumes there; failover and restart keep it', async () => {
    const { cluster, client } = await start('retention-size');
    await client.admin.createTopic({ name: 'sized', partitions: 1 });
    const producer = client.producer({ lingerMs: 0 });
    const value = 'x'.repeat(1_000);
    // One send at a time: one batch per record, so retention can drop them one by one.
    for (let i = 0; i < 40; i++) await producer.send({ topic: 'sized', key: 'k', value: `${i}:${value}` });

    // A group reads the first 5 records and commits, then stops: it is behind what retention will keep.
    expect(await readFirst(client, 'sized', 'slow', 5)).toEqual([0, 1, 2, 3, 4]);

    // The cluster default keeps everything (7 days, no size limit); describe shows it.
    const before = await client.admin.describeTopic('sized');
    expect(before.config).toMatchObject({ retentionMs: 7 * 24 * 3600 * 1000, retentionBytes: -1 });
    await bothStartAt(cluster, client, 'sized', 0);

    const retentionBytes = 10_000;
    const altered = await cli(['topics', 'alter', 'sized', '--retention-bytes', String(retentionBytes)]);
    expect(altered.stderr).toBe('');
    expect(altered.code).toBe(0);
    expect(altered.stdout).toContain('retentionBytes 10000');
    expect((await client.admin.describeTopic('sized')).config.retentionBytes).toBe(retentionBytes);

    // Whole batches of about 1 KB each: 9 of them fit in 10,000 bytes, so the log starts at 31.
    await waitFor(async () => ((await logStarts(cluster, client, 'sized'))[before.partitions[0].primary!] ?? 0) > 5, {
      what: 'retention to move the log start',
    });
    const primary = before.partitions[0].primary!;
    const logStart = (await logStarts(cluster, client, 'sized'))[primary]!;
    await bothStartAt(cluster, client, 'sized', logStart);
    // What is kept fits the limit, and one more batch would not have.
    await waitFor(async () => ((await gauge(cluster.broker(primary).url, 'tessera_broker_replica_log_size_bytes', 'sized')) ?? Infinity) <= retentionBytes, {
      what: 'batches below the log start to be deleted',
    });
    const keptBytes = (await gauge(cluster.broker(primary).url, 'tessera_broker_replica_log_size_bytes', 'sized'))!;
    const batchBytes = keptBytes / (40 - logStart);
    expect(keptBytes + batchBytes).toBeGreaterThan(retentionBytes);
    expect(logStart).toBe(40 - Math.floor(retentionBytes / batchBytes));

    // Below the log start is out of range and says where the log starts now.
    const below = await fetchAt(cluster, client, 'sized', 0);
    expect(below.error).toMatchObject({ code: 'OFFSET_OUT_OF_RANGE', logStartOffset: logStart });
    expect(below.logStartOffset).toBe(logStart);

    // The group behind the log start goes on from it: everything still readable, in order, nothing skipped.
    const resumed = await readGroup(client, 'sized', 'slow', 40);
    expect(resumed.map((r) => r.offset)).toEqual(Array.from({ length: 40 - logStart }, (_, i) => logStart + i));
    expect(resumed.map((r) => r.value.split(':')[0])).toEqual(resumed.map((r) => String(r.offset)));

    // Failover: the secondary, now primary, has the same log start and refuses below it the same way.
    await cluster.broker(primary).kill();
    await waitFor(async () => (await client.admin.describeTopic('sized')).partitions[0].primary !== primary, { what: 'failover' });
    const afterFailover = await fetchAt(cluster, client, 'sized', logStart - 1);
    expect(afterFailover.error).toMatchObject({ code: 'OFFSET_OUT_OF_RANGE', logStartOffset: logStart });
    const atStart = await fetchAt(cluster, client, 'sized', logStart);
    expect(atStart.error).toBeUndefined();
    expect(atStart.records[0]).toMatchObject({ offset: logStart });
    await cluster.broker(primary).start();

    // A restart of the whole cluster keeps the log start on both replicas.
    await bothStartAt(cluster, client, 'sized', logStart);
    await cluster.stopProcesses();
    await cluster.startProcesses();
    const restarted = cluster.client({ requestTimeoutMs: 3_000 });
    await bothStartAt(cluster, restarted, 'sized', logStart);
    // And the next record gets the next offset.
    const next = await restarted.producer().send({ topic: 'sized', key: 'k', value: 'after-restart' });
    expect(next.offset).toBe(40);

    // The other reset policies of a reader (or consumer) positioned below the log start:
    // 'error' stops with OFFSET_OUT_OF_RANGE naming the log start; 'latest' skips to the HW
    // and reads only what comes after. ('earliest', the default, is the group above.)
    const strict = restarted.reader({ topic: 'sized', positions: [{ partition: 0, offset: 0 }], offsetReset: 'error', waitMs: 200 });
    let refused: { code?: string; details?: { logStartOffset?: number } } | undefined;
    try {
      await waitFor(
        async () => {
          try {
            await strict.poll();
          } catch (error) {
            refused = error as typeof refused;
          }
          return refused !== undefined;
        },
        { what: "the 'error' policy to refuse a position below the log start" },
      );
    } finally {
      await strict.close();
    }
    expect(refused?.code).toBe('OFFSET_OUT_OF_RANGE');
    expect(refused?.details?.logStartOffset).toBe(logStart);
    const skipping = restarted.reader({ topic: 'sized', positions: [{ partition: 0, offset: 0 }], offsetReset: 'latest', waitMs: 200 });
    try {
      await waitFor(async () => (await skipping.poll()).length === 0 && skipping.position(0) === 41, {
        what: "the 'latest' policy to move to the HW",
      });
      const after = await restarted.producer().send({ topic: 'sized', key: 'k', value: 'after-latest' });
      const read: Array<[number, string | undefined]> = [];
      await waitFor(
        async () => {
          for (const record of await skipping.poll()) read.push([record.offset, record.value?.toString()]);
          return read.length > 0;
        },
        { what: "the 'latest' reader to read the next record" },
      );
      expect(read).toEqual([[after.offset, 'after-latest']]);
    } finally {
      await skipping.close();
    }
  });

  it('a secondary that was away while retention passed its log end starts empty at the log start, catches up, and serves it after a failover', async () => {
    const { cluster, client } = await start('retention-rejoin', 2);
    await client.admin.createTopic({ name: 'lagging', partitions: 1 });
    const producer = client.producer({ lingerMs: 0 });
    for (let i = 0; i < 10; i++) await producer.send({ topic: 'lagging', key: 'k', value: `early-${i}` });
    const { primary, secondary } = (await client.admin.describeTopic('lagging')).partitions[0];
    await cluster.broker(secondary!).kill();
    // Acknowledged by the primary alone once the ISR has shrunk; one batch per record.
    const value = 'x'.repeat(1_000);
    for (let i = 10; i < 50; i++) await producer.send({ topic: 'lagging', key: 'k', value: `${i}:${value}` });
    await client.admin.alterTopic('lagging', { retentionBytes: 10_000 });
    await waitFor(async () => ((await logStarts(cluster, client, 'lagging'))[primary!] ?? 0) > 10, { what: 'the log start to pass the secondary' });
    const logStart = (await logStarts(cluster, client, 'lagging'))[primary!]!;

    await cluster.broker(secondary!).start();
    await waitFor(async () => (await client.admin.describeTopic('lagging')).partitions[0].isr.length === 2, { what: 'the secondary back in the ISR' });
    await bothStartAt(cluster, client, 'lagging', logStart);

    await cluster.broker(primary!).kill();
    await waitFor(async () => (await client.admin.describeTopic('lagging')).partitions[0].primary === secondary, { what: 'failover to the secondary' });
    expect((await fetchAt(cluster, client, 'lagging', logStart - 1)).error).toMatchObject({ code: 'OFFSET_OUT_OF_RANGE', logStartOffset: logStart });
    const read = await readGroup(client, 'lagging', 'after-failover', 50);
    expect(read.map((r) => r.offset)).toEqual(Array.from({ length: 50 - logStart }, (_, i) => logStart + i));
    expect(read.map((r) => r.value.split(':')[0])).toEqual(read.map((r) => String(r.offset)));
    expect((await producer.send({ topic: 'lagging', key: 'k', value: 'next' })).offset).toBe(50);
  });

  it.each([
    ['deleted', RETENTION_CHECK_MS],
    ['still stored', 5_000],
  ] as const)(
    'a secondary reset past its end, stopped while its topic is deleted and made again, starts again empty at the new primary\'s log start and holds only the new topic\'s records (its old batches %s when it comes back)',
    async (oldBatches, retentionCheckMs) => {
      // The secondary misses a purge and is reset past its end (no records, no epoch history),
      // then misses the deletion of its topic: nothing tells its replica from one of the topic
      // made again, whose primary has not reached its log start. It must follow from that
      // primary's log start, and only once the batches of its old log are deleted (its own
      // retention pass: right away in the first case, 5 s after it starts in the second). Nor
      // may it keep the old topic's group offsets or producer state. A broker stays alive in the
      // coordinator's eyes for 3 s after its last heartbeat, so the secondary, stopped just
      // before, is placed in the topic made again (two brokers: the same two replicas as before).
      const { cluster, client } = await start(`remade-after-reset-${oldBatches.replace(' ', '-')}`, 2, { brokerTimeoutMs: 3_000, retentionCheckMs });
      await client.admin.createTopic({ name: 'remade', partitions: 1, replicationFactor: 2 });
      const before = (await client.admin.describeTopic('remade')).partitions[0];
      const primary = before.primary!;
      const secondary = before.secondary!;
      expect(before.isr.sort()).toEqual([primary, secondary].sort());
      const producer = client.producer({ lingerMs: 0 });
      for (let i = 0; i < 10; i++) await producer.send({ topic: 'remade', key: 'k', value: `old-${i}` });
      // A group reads the first 3 records and commits: both replicas store its offset.
      expect(await readFirst(client, 'remade', 'workers', 3)).toEqual([0, 1, 2]);

      // Away while the primary goes on alone and the topic is purged: it comes back reset to 30.
      await cluster.broker(secondary).stop();
      for (let i = 10; i < 30; i++) await producer.send({ topic: 'remade', key: 'k', value: `old-${i}` });
      expect((await client.admin.purgeTopic('remade')).partitions).toEqual([{ partition: 0, logStartOffset: 30, highWatermark: 30 }]);
      await cluster.broker(secondary).start();
      await waitFor(async () => (await client.admin.describeTopic('remade')).partitions[0].isr.length === 2, { what: 'the secondary back in the ISR' });
      await bothStartAt(cluster, client, 'remade', 30);
      const storedBytes = () => gauge(cluster.broker(secondary).url, 'tessera_broker_replica_log_size_bytes', 'remade');
      if (oldBatches === 'deleted') {
        await waitFor(async () => (await storedBytes()) === 0, { what: "the secondary's old batches to be deleted" });
      } else {
        // Its first retention pass comes 5 s after it started; it rejoined well before.
        expect(await storedBytes()).toBeGreaterThan(0);
      }

      // Away again while the topic is deleted and made again; the new one gets 5 records.
      await cluster.broker(secondary).stop();
      await client.admin.deleteTopic('remade');
      await client.admin.createTopic({ name: 'remade', partitions: 1, replicationFactor: 2 });
      const remade = (await client.admin.describeTopic('remade')).partitions[0];
      expect({ primary: remade.primary, secondary: remade.secondary }).toEqual({ primary, secondary });
      expect(remade.epoch).toBeGreaterThan(before.epoch);
      // Acknowledged by the primary alone once the ISR has shrunk.
      for (let i = 0; i < 5; i++) expect((await producer.send({ topic: 'remade', key: 'k', value: `new-${i}` })).offset).toBe(i);

      await cluster.broker(secondary).start();
      await waitFor(async () => (await client.admin.describeTopic('remade')).partitions[0].isr.length === 2, {
        what: 'the secondary in the ISR of the topic made again',
        timeoutMs: 20_000,
      });
      await bothStartAt(cluster, client, 'remade', 0);

      // It holds the new topic's records and none of the old one's: read it after a failover.
      await cluster.broker(primary).stop();
      await waitFor(async () => (await client.admin.describeTopic('remade')).partitions[0].primary === secondary, { what: 'failover to the secondary' });
      const newRecords = Array.from({ length: 5 }, (_, i) => ({ offset: i, value: `new-${i}` }));
      expect(await readGroup(client, 'remade', 'after-failover', 5)).toEqual(newRecords);
      // The group's offset in the deleted topic is gone with it: it reads the new topic from its start.
      expect(await readGroup(client, 'remade', 'workers', 5)).toEqual(newRecords);
      // Its producer state is the new topic's: the producer's next record is in order there.
      expect((await producer.send({ topic: 'remade', key: 'k', value: 'next' })).offset).toBe(5);
    },
  );

  it('retention by time drops the batches whose newest record is older than retentionMs, and only those', async () => {
    const { cluster, client } = await start('retention-time');
    const hourMs = 3_600_000;
    await client.admin.createTopic({ name: 'aged', partitions: 1, config: { retentionMs: hourMs } });
    expect((await client.admin.describeTopic('aged')).config).toMatchObject({ retentionMs: hourMs, retentionBytes: -1 });
    const producer = client.producer({ lingerMs: 0 });
    const now = Date.now();
    for (let i = 0; i < 10; i++) await producer.send({ topic: 'aged', key: 'k', value: `old-${i}`, timestamp: now - 2 * hourMs });
    for (let i = 0; i < 10; i++) await producer.send({ topic: 'aged', key: 'k', value: `new-${i}`, timestamp: now });
    await bothStartAt(cluster, client, 'aged', 10);
    const values = (await readGroup(client, 'aged', 'reader', 20)).map((r) => r.value);
    expect(values).toEqual(Array.from({ length: 10 }, (_, i) => `new-${i}`));
    expect((await fetchAt(cluster, client, 'aged', 9)).error).toMatchObject({ code: 'OFFSET_OUT_OF_RANGE', logStartOffset: 10 });

    // Shortening it through the API lets the rest go too (the brokers apply the new map at once).
    const answer = await client.admin.alterTopic('aged', { retentionMs: 1 });
    expect(answer.config.retentionMs).toBe(1);
    await bothStartAt(cluster, client, 'aged', 20);
  });

  it('purge empties the topic on both replicas and keeps the topic, its offsets numbering and its groups', async () => {
    const { cluster, client } = await start('purge');
    await client.admin.createTopic({ name: 'jobs', partitions: 1 });
    const producer = client.producer({ lingerMs: 0 });
    for (let i = 0; i < 30; i++) await producer.send({ topic: 'jobs', key: 'k', value: `before-${i}` });
    expect((await readGroup(client, 'jobs', 'workers', 30)).length).toBe(30);

    const purged = await cli(['topics', 'purge', 'jobs']);
    expect(purged.stderr).toBe('');
    expect(purged.code).toBe(0);
    expect(purged.stdout).toBe('purged topic "jobs": partitions start at 0:30\n');
    await bothStartAt(cluster, client, 'jobs', 30);
    const described = await cli(['topics', 'describe', 'jobs', '--json']);
    expect(described.code, described.stderr).toBe(0);
    expect(JSON.parse(described.stdout).partitions[0]).toMatchObject({ partition: 0, logStartOffset: 30 });
    const table = (await cli(['topics', 'describe', 'jobs'])).stdout.split('\n');
    const header = table.findIndex((line) => line.startsWith('PARTITION'));
    expect(table[header]).toMatch(/ISR\s+START\s+HW/);
    expect(table[header + 1].trim().split(/\s+/)[5]).toBe('30');
    const empty = await fetchAt(cluster, client, 'jobs', 30);
    expect(empty).toMatchObject({ highWatermark: 30, logStartOffset: 30, records: [] });
    await waitFor(async () => (await gauge(cluster.broker((await client.admin.describeTopic('jobs')).partitions[0].primary!).url, 'tessera_broker_replica_log_size_bytes', 'jobs')) === 0, {
      what: 'the purged batches to be deleted',
    });

    // The next records go on from offset 30, the group from its committed offset, a new group from the log start.
    for (let i = 0; i < 5; i++) expect((await producer.send({ topic: 'jobs', key: 'k', value: `after-${i}` })).offset).toBe(30 + i);
    expect((await readGroup(client, 'jobs', 'workers', 35)).map((r) => r.value)).toEqual(Array.from({ length: 5 }, (_, i) => `after-${i}`));
    expect((await readGroup(client, 'jobs', 'newcomers', 35)).map((r) => r.offset)).toEqual([30, 31, 32, 33, 34]);
    expect((await client.admin.listTopics()).map((t) => t.name)).toContain('jobs');

    // Purging a topic that does not exist is one clear line and a non-zero exit.
    const missing = await cli(['topics', 'purge', 'nope']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr.trim()).toBe('tessera: topic "nope" not found');
  });
});
