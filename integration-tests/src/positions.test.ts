// Proves positions against a real coordinator and two real brokers, through the client and the
// `tessera` CLI as an operator runs it: offsets by position and by time, consume without a group
// from an offset, -N or a time (stopping at the end or following), a group's start at a time and
// seek(), groups reset-offsets in every mode (dry run shown, refused with live members, a stale
// generation fenced), groups list and delete.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConsumedRecord, Consumer, TesseraClient } from '@tessera/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cluster, startCluster, waitFor } from './harness/cluster.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(REPO, 'packages/cli/dist/bin.js');

let cluster: Cluster;
let client: TesseraClient;
/** Two partitions: partition 0 holds 10 records stamped 1000, 2000, … 10000 ms; partition 1 holds 5 stamped 1000 … 5000. */
const TOPIC = 'positions';

beforeAll(async () => {
  cluster = await startCluster({ name: 'positions', brokers: 2, groupSessionTimeoutMs: 3_000 });
  client = cluster.client();
  // The records carry timestamps of 1970 (seconds after the epoch) so times are easy to read;
  // the default 7-day retention would delete them, so this topic keeps everything.
  await client.admin.createTopic({ name: TOPIC, partitions: 2, config: { retentionMs: -1 } });
  const producer = client.producer();
  for (let i = 0; i < 10; i++) await producer.send({ topic: TOPIC, partition: 0, key: `k${i}`, value: `p0-${i}`, timestamp: (i + 1) * 1000 });
  for (let i = 0; i < 5; i++) await producer.send({ topic: TOPIC, partition: 1, key: `k${i}`, value: `p1-${i}`, timestamp: (i + 1) * 1000 });
  await producer.flush();
  await producer.close();
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
});

/** The CLI as the cluster's admin; `stdout()` shows what it printed so far. */
function startCli(args: string[]): { stdout: () => string; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const env = { ...process.env, ...(cluster.admin ? { TESSERA_PRINCIPAL: cluster.admin.principal, TESSERA_SECRET: cluster.admin.secret } : {}) };
  const child = spawn(process.execPath, [BIN, '--coordinator', cluster.coordinatorUrl, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { stdout: () => stdout, done };
}

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return startCli(args).done;
}

/** The (partition, offset, value) of each JSON line a consume printed. */
function printed(stdout: string): Array<[number, number, string]> {
  return stdout
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => {
      const record = JSON.parse(line) as { partition: number; offset: number; value: string };
      return [record.partition, record.offset, record.value];
    });
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

/** Polls until `count` records came. */
async function pollAtLeast(consumer: Consumer, count: number): Promise<ConsumedRecord[]> {
  const records: ConsumedRecord[] = [];
  const deadline = Date.now() + 30_000;
  while (records.length < count) {
    if (Date.now() > deadline) throw new Error(`only ${records.length} of ${count} records`);
    records.push(...(await consumer.poll({ waitMs: 200 })));
  }
  return records;
}

/** The group's committed offsets, partition → offset (null: none), as its partitions' primaries answer. */
async function committed(group: string): Promise<Array<number | null>> {
  return (await client.admin.groupLag(group)).map((p) => p.committed);
}

/** A raw commit on a partition's primary, as a member holding `generation` would make it. */
async function rawCommit(group: string, generation: number, partition: number, offset: number): Promise<{ error?: { code: string } }> {
  const metadata = await client.admin.metadata();
  const assignment = metadata.topics.find((t) => t.name === TOPIC)!.partitions[partition]!;
  const url = metadata.brokers.find((b) => b.id === assignment.primary)!.url;
  const response = await fetch(`${url}/commit`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(await cluster.adminHeaders()) },
    body: JSON.stringify({ group, generation, offsets: [{ topic: TOPIC, partition, offset }] }),
  });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { results: Array<{ error?: { code: string } }> };
  return body.results[0]!;
}

describe('offsets by position', () => {
  it('answers earliest, latest and the first offset at or after a time, per partition', async () => {
    const earliest = await client.admin.listOffsets(TOPIC, 'earliest');
    expect(earliest.map((p) => [p.partition, p.offset])).toEqual([[0, 0], [1, 0]]);
    const latest = await client.admin.listOffsets(TOPIC, 'latest');
    expect(latest.map((p) => [p.partition, p.offset, p.highWatermark])).toEqual([[0, 10, 10], [1, 5, 5]]);
    const atTime = await client.admin.listOffsets(TOPIC, { timestamp: 3_500 });
    expect(atTime.map((p) => [p.partition, p.offset, p.timestamp])).toEqual([[0, 3, 4_000], [1, 3, 4_000]]);
    const exact = await client.admin.listOffsets(TOPIC, { timestamp: 7_000 }, [0]);
    expect(exact.map((p) => [p.partition, p.offset, p.timestamp])).toEqual([[0, 6, 7_000]]);
    // Later than every record: the HW, where a consumer starting then would begin.
    const future = await client.admin.listOffsets(TOPIC, { timestamp: 99_000 });
    expect(future.map((p) => [p.partition, p.offset, p.timestamp])).toEqual([[0, 10, null], [1, 5, null]]);
    await expect(client.admin.listOffsets(TOPIC, 'latest', [7])).rejects.toMatchObject({ code: 'PARTITION_NOT_FOUND' });
  });

  it('answers curl users on GET /topics/:topic/partitions/:partition/offsets?at=... at the primary, and refuses bad input', async () => {
    const metadata = await client.admin.metadata();
    const assignment = metadata.topics.find((t) => t.name === TOPIC)!.partitions[0]!;
    const urlOf = (id: number | null) => metadata.brokers.find((b) => b.id === id)!.url;
    const headers = await cluster.adminHeaders();
    const get = async (url: string, at: string) => {
      const response = await fetch(`${url}/topics/${TOPIC}/partitions/0/offsets?at=${encodeURIComponent(at)}`, { headers });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> & { error?: { code: string } } };
    };
    const primary = urlOf(assignment.primary);
    expect(await get(primary, '3500')).toEqual({
      status: 200,
      body: { topic: TOPIC, partition: 0, offset: 3, timestamp: 4_000, logStartOffset: 0, highWatermark: 10 },
    });
    expect((await get(primary, 'earliest')).body.offset).toBe(0);
    const bad = await get(primary, 'yesterday');
    expect([bad.status, bad.body.error?.code]).toEqual([400, 'INVALID_REQUEST']);
    const elsewhere = await get(urlOf(assignment.secondary), 'latest');
    expect([elsewhere.status, elsewhere.body.error?.code]).toEqual([421, 'NOT_PRIMARY']);
    const anonymous = await fetch(`${primary}/topics/${TOPIC}/partitions/0/offsets?at=latest`);
    expect(anonymous.status).toBe(401);
  });
});

describe('tessera consume without a group', () => {
  it('reads a partition from an offset, from -N, from a time (epoch ms and ISO) and stops at the end', async () => {
    const fromOffset = await cli(['consume', TOPIC, '--partition', '0', '--offset', '4', '--exit-at-end']);
    expect(fromOffset.code, fromOffset.stderr).toBe(0);
    expect(printed(fromOffset.stdout)).toEqual(range(4, 10).map((o) => [0, o, `p0-${o}`]));
    expect(fromOffset.stderr).toContain('read 6 records from "positions" partition 0 up to the end');

    const lastThree = await cli(['consume', TOPIC, '--partition', '0', '--offset', '-3', '--exit-at-end']);
    expect(printed(lastThree.stdout).map(([, o]) => o)).toEqual([7, 8, 9]);

    const atMs = await cli(['consume', TOPIC, '-p', '1', '-o', '@3500', '-e']);
    expect(printed(atMs.stdout)).toEqual([[1, 3, 'p1-3'], [1, 4, 'p1-4']]);

    const atIso = await cli(['consume', TOPIC, '--partition', '0', '--offset', '@1970-01-01T00:00:08Z', '--exit-at-end']);
    expect(printed(atIso.stdout).map(([, o]) => o)).toEqual([7, 8, 9]);

    // Every partition from the beginning; nothing is committed anywhere.
    const all = await cli(['consume', TOPIC, '--offset', 'earliest', '--exit-at-end']);
    expect(all.code, all.stderr).toBe(0);
    expect(printed(all.stdout).sort((a, b) => a[0] - b[0] || a[1] - b[1])).toEqual([
      ...range(0, 10).map((o): [number, number, string] => [0, o, `p0-${o}`]),
      ...range(0, 5).map((o): [number, number, string] => [1, o, `p1-${o}`]),
    ]);

    const atEnd = await cli(['consume', TOPIC, '--offset', 'latest', '--exit-at-end']);
    expect(atEnd.code).toBe(0);
    expect(atEnd.stdout).toBe('');
    // An offset beyond the log starts at its end.
    const beyond = await cli(['consume', TOPIC, '-p', '1', '-o', '500', '-e']);
    expect(beyond.stdout).toBe('');
  });

  it('follows a partition and prints what is produced after it started', async () => {
    // follow-b is produced only once follow-a was printed, so the command was reading by then.
    const following = startCli(['consume', TOPIC, '--partition', '1', '--offset', '5', '--max-messages', '2']);
    const producer = client.producer();
    await producer.send({ topic: TOPIC, partition: 1, value: 'follow-a', timestamp: 20_000 });
    await waitFor(() => following.stdout().includes('follow-a'), { timeoutMs: 30_000, what: 'follow-a printed' });
    expect(following.stdout()).not.toContain('follow-b');
    await producer.send({ topic: TOPIC, partition: 1, value: 'follow-b', timestamp: 21_000 });
    await producer.close();
    const result = await following.done;
    expect(result.code, result.stderr).toBe(0);
    expect(printed(result.stdout)).toEqual([[1, 5, 'follow-a'], [1, 6, 'follow-b']]);
  });

  it('refuses bad positions and a group with a position in one line', async () => {
    const bad = await cli(['consume', TOPIC, '--offset', 'yesterday']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    const mixed = await cli(['consume', TOPIC, '--group', 'g', '--offset', '3']);
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toContain('leave out --group');
  });
});

describe('consumer positions', () => {
  it('a new group starts at a time; seek() moves a partition and drops what was fetched', async () => {
    const consumer = client.consumer({ group: 'starts-at-time', topic: TOPIC, startAt: { timestamp: 9_000 }, waitMs: 200 });
    // Partition 0 from offset 8 (stamped 9000); partition 1 from offset 5 (follow-a, stamped 20000).
    const records = await pollAtLeast(consumer, 4);
    const of = (list: ConsumedRecord[], p: number) => list.filter((r) => r.partition === p).map((r) => r.offset);
    expect(of(records, 0)).toEqual([8, 9]);
    expect(of(records, 1)).toEqual([5, 6]);
    consumer.seek(TOPIC, 0, 2);
    const again = await pollAtLeast(consumer, 8);
    expect(of(again, 0)).toEqual(range(2, 10));
    await consumer.commit();
    await consumer.close();
    expect(await committed('starts-at-time')).toEqual([10, 7]);
  });

  it('a position beyond the end goes back to the high watermark instead of stalling', async () => {
    const consumer = client.consumer({ group: 'beyond-end', topic: TOPIC, startAt: 'earliest', offsetReset: 'error', waitMs: 200 });
    const outOfRange: unknown[] = [];
    consumer.on('error', (error: { code?: string }) => {
      if (error.code === 'OFFSET_OUT_OF_RANGE') outOfRange.push(error);
    });
    await pollAtLeast(consumer, 1);
    consumer.seek(TOPIC, 1, 1_000);
    // The broker refuses 1000 (beyond the log end) and the consumer goes back to the HW, 7; then a record comes.
    await waitFor(async () => {
      await consumer.poll({ waitMs: 100 });
      return outOfRange.length > 0;
    }, { what: 'the fetch beyond the end to be refused' });
    const producer = client.producer();
    await producer.send({ topic: TOPIC, partition: 1, value: 'after-seek', timestamp: 22_000 });
    await producer.close();
    const deadline = Date.now() + 30_000;
    let found: ConsumedRecord | undefined;
    while (found === undefined && Date.now() < deadline) found = (await consumer.poll({ waitMs: 200 })).find((r) => r.value?.toString() === 'after-seek');
    expect(found?.offset).toBe(7);
    // The position followed the fetch: close() commits 7 (record 7 was returned by the last poll, not yet handled), not 1000.
    await consumer.close();
    expect((await committed('beyond-end'))[1]).toBe(7);
  });
});

describe('tessera groups reset-offsets, list, delete', () => {
  const GROUP = 'reset-me';

  it('resets in every mode, shows a dry run without storing it, and the next member starts there', async () => {
    // A group that does not exist yet is created, empty, by its first reset.
    await client.admin.resetGroupOffsets(GROUP, { topic: TOPIC, partitions: [0], target: { to: 'offset', offset: 6 }, execute: true });
    await client.admin.resetGroupOffsets(GROUP, { topic: TOPIC, partitions: [1], target: { to: 'offset', offset: 3 }, execute: true });
    expect(await committed(GROUP)).toEqual([6, 3]);

    const dry = await cli(['groups', 'reset-offsets', GROUP, '--topic', TOPIC, '--to-earliest', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout.split('\n').map((line) => line.trim().split(/\s+/))).toEqual([
      ['PARTITION', 'CURRENT', 'OFFSET', 'NEW', 'OFFSET'],
      ['0', '6', '0'],
      ['1', '3', '0'],
      [''],
    ]);
    expect(dry.stderr).toContain('dry run: nothing stored');
    expect(await committed(GROUP)).toEqual([6, 3]);

    const table = async (args: string[]) => {
      const result = await cli(['groups', 'reset-offsets', GROUP, '--topic', TOPIC, ...args]);
      expect(result.code, result.stderr).toBe(0);
      return result.stdout
        .split('\n')
        .slice(1)
        .filter((line) => line.length > 0)
        .map((line) => line.trim().split(/\s+/).map(Number));
    };
    // The high watermarks now: partition 0 has 10 records, partition 1 has 8.
    expect(await table(['--to-latest', '--execute'])).toEqual([[0, 6, 10], [1, 3, 8]]);
    expect(await committed(GROUP)).toEqual([10, 8]);
    expect(await table(['--to-offset', '4', '--partition', '0', '--execute'])).toEqual([[0, 10, 4]]);
    expect(await committed(GROUP)).toEqual([4, 8]);
    // Clamped to the high watermark.
    expect(await table(['--to-offset', '700', '--dry-run'])).toEqual([[0, 4, 10], [1, 8, 8]]);
    expect(await table(['--shift-by', '-2', '--execute'])).toEqual([[0, 4, 2], [1, 8, 6]]);
    expect(await table(['--shift-by', '-50', '--dry-run'])).toEqual([[0, 2, 0], [1, 6, 0]]);
    expect(await table(['--to-datetime', '1970-01-01T00:00:03.500Z', '--execute'])).toEqual([[0, 2, 3], [1, 6, 3]]);
    expect(await committed(GROUP)).toEqual([3, 3]);
    expect(await table(['--to-earliest', '--execute'])).toEqual([[0, 3, 0], [1, 3, 0]]);
    expect(await table(['--to-offset', '5', '--execute'])).toEqual([[0, 0, 5], [1, 0, 5]]);

    // The group's next member starts where the reset put it.
    const next = client.consumer({ group: GROUP, topic: TOPIC, waitMs: 200 });
    const read = await pollAtLeast(next, 8);
    expect(read.filter((r) => r.partition === 0).map((r) => r.offset)).toEqual(range(5, 10));
    expect(read.filter((r) => r.partition === 1).map((r) => r.offset)).toEqual([5, 6, 7]);
    await next.close();
  });

  it('is refused while the group has a live member, and a commit of an older generation cannot overwrite a reset', async () => {
    const member = client.consumer({ group: GROUP, topic: TOPIC, waitMs: 200 });
    await waitFor(async () => {
      await member.poll({ waitMs: 100 });
      return member.assignment().length === 2;
    }, { what: 'the member to hold both partitions' });
    const refused = await cli(['groups', 'reset-offsets', GROUP, '--topic', TOPIC, '--to-earliest', '--execute']);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/has 1 live member/);
    const deleteRefused = await cli(['groups', 'delete', GROUP]);
    expect(deleteRefused.code).toBe(1);
    expect(deleteRefused.stderr).toMatch(/has 1 live member/);

    const before = (await client.admin.listGroups()).find((g) => g.group === GROUP)!.generation;
    await member.close();
    const reset = await client.admin.resetGroupOffsets(GROUP, { topic: TOPIC, target: { to: 'offset', offset: 1 }, execute: true });
    expect(reset.generation).toBeGreaterThan(before);
    // A member of the generation before the reset (dropped, but still running) commits: refused.
    const stale = await rawCommit(GROUP, before, 0, 9);
    expect(stale.error?.code).toBe('GENERATION_MISMATCH');
    expect(await committed(GROUP)).toEqual([1, 1]);
  });

  it('lists groups and deletes one with its committed offsets', async () => {
    const list = await cli(['groups', 'list', '--json']);
    expect(list.code, list.stderr).toBe(0);
    const listed = (JSON.parse(list.stdout) as { groups: Array<{ group: string; members: number; emptySinceMs: number | null }> }).groups;
    expect(listed.map((g) => g.group)).toEqual(expect.arrayContaining([GROUP, 'starts-at-time']));
    // Its members are gone: the group shows since when it is empty (it expires after the group retention).
    const empty = listed.find((g) => g.group === GROUP)!;
    expect(empty.members).toBe(0);
    expect(empty.emptySinceMs).toBeGreaterThan(Date.now() - 600_000);
    const table = await cli(['groups', 'list']);
    expect(table.stdout.split('\n')[0]).toMatch(/EMPTY SINCE/);
    expect(table.stdout).toContain(new Date(empty.emptySinceMs!).toISOString());

    const deleted = await cli(['groups', 'delete', GROUP]);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(deleted.stderr).toContain(`deleted group "${GROUP}"`);
    const after = (await client.admin.listGroups()).map((g) => g.group);
    expect(after).not.toContain(GROUP);
    const missing = await cli(['groups', 'delete', GROUP]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`group "${GROUP}" not found`);

    // A group of the same name starts over: no committed offsets, so it starts at its startAt, and commits work.
    const fresh = client.consumer({ group: GROUP, topic: TOPIC, startAt: 'earliest', waitMs: 200 });
    const records = await pollAtLeast(fresh, 18);
    expect(records.filter((r) => r.partition === 0).map((r) => r.offset)).toEqual(range(0, 10));
    await fresh.commit();
    await fresh.close();
    expect(await committed(GROUP)).toEqual([10, 8]);
  });
});
