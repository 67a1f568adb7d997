// Proves a full disk is an operating condition: a coordinator and two brokers whose data
// directories are on a small tmpfs keep running when it fills, refuse new writes with
// STORAGE_FULL (507, retriable; the CLI says "storage full"), still delete a topic, resume
// writing by themselves once space returns, and lose nothing they acknowledged.
// Mounting a tmpfs needs root; without it (or with the containers launcher) the test is skipped
// and says why.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cluster, launcher, startCluster, waitFor } from './harness/cluster.js';
import { type CliResult, runCliAsAdmin } from './harness/cli.js';
import { rawPost } from './harness/raw-http.js';

const MiB = 1024 * 1024;
const TMPFS_BYTES = 48 * MiB;
/** Each service keeps a 2 MiB reserve and refuses new writes below 8 MiB free. */
const RESERVE_BYTES = 2 * MiB;
const MIN_FREE_BYTES = 8 * MiB;

let mountPoint: string | undefined;
let skipReason: string | undefined;
let cluster: Cluster | undefined;

beforeAll(() => {
  if (launcher !== 'processes') {
    skipReason = 'the containers launcher keeps data inside the containers; a tmpfs of the test cannot hold it';
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-disk-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_BYTES}`, 'tmpfs', dir], { stdio: 'pipe' });
    mountPoint = dir;
  } catch (error) {
    fs.rmSync(dir, { recursive: true, force: true });
    skipReason = `cannot mount a tmpfs (needs root): ${String((error as { stderr?: Buffer }).stderr ?? (error as Error).message).trim()}`;
  }
  if (skipReason !== undefined) console.log(`disk-full scenario skipped: ${skipReason}`);
});

afterAll(async () => {
  await cluster?.stop();
  if (mountPoint !== undefined) {
    execFileSync('umount', [mountPoint]);
    fs.rmSync(mountPoint, { recursive: true, force: true });
  }
});

function cli(args: string[]): Promise<CliResult> {
  return runCliAsAdmin(cluster!, args);
}

/** Writes zeros into `file` until the filesystem answers ENOSPC; returns the bytes written. */
function fillUp(file: string): number {
  const fd = fs.openSync(file, 'a');
  const chunk = Buffer.alloc(256 * 1024);
  let written = 0;
  try {
    for (;;) {
      try {
        written += fs.writeSync(fd, chunk);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw error;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return written;
}

describe('a full disk', () => {
  it('refuses writes with STORAGE_FULL, keeps every service up, lets a topic be deleted, and resumes by itself', async (context) => {
    if (skipReason !== undefined) {
      context.skip(skipReason);
      return;
    }
    cluster = await startCluster({
      name: 'disk-full',
      brokers: 2,
      serviceDataRoot: mountPoint,
      serviceEnv: { TESSERA_STORAGE_RESERVE_BYTES: String(RESERVE_BYTES), TESSERA_STORAGE_MIN_FREE_BYTES: String(MIN_FREE_BYTES) },
    });
    const c = cluster;
    const client = c.client({ requestTimeoutMs: 5_000 });
    await client.admin.createTopic({ name: 'keep', partitions: 1 });
    await client.admin.createTopic({ name: 'bulk', partitions: 1 });
    const producer = client.producer({ lingerMs: 0 });
    const acknowledged: string[] = [];
    for (let i = 0; i < 20; i++) {
      await producer.send({ topic: 'keep', key: 'k', value: `before-${i}` });
      acknowledged.push(`before-${i}`);
    }
    // 8 MiB of records on each broker, which deleting the topic gives back.
    const big = 'b'.repeat(100 * 1024);
    for (let i = 0; i < 80; i++) await producer.send({ topic: 'bulk', key: String(i), value: big });

    const filler = path.join(mountPoint!, 'filler');
    const filled = fillUp(filler);
    expect(filled).toBeGreaterThan(0);
    const keepPrimary = (await client.admin.describeTopic('keep')).partitions[0].primary!;
    const produceDirect = async (value: string) =>
      rawPost(`${c.broker(keepPrimary).url}/topics/keep/partitions/0/records`, { records: [{ value }] }, { headers: await c.adminHeaders() });

    // New writes are refused with a stable, retriable code before anything is stored. Space is
    // measured at most every 100 ms, so a produce right after the disk filled may still be
    // accepted: it is acknowledged, so it must be there at the end like any other.
    await waitFor(
      async () => {
        const answer = await produceDirect('refused');
        if (answer.status === 200) acknowledged.push('refused');
        return answer.status === 507;
      },
      { what: 'produce to answer 507', timeoutMs: 10_000 },
    );
    const refused = await produceDirect('refused');
    expect(refused.body.error).toMatchObject({ code: 'STORAGE_FULL', retriable: true });
    const created = await cli(['topics', 'create', 'more', '--partitions', '1']);
    expect(created.code).toBe(1);
    expect(created.stderr).toMatch(/^tessera: storage full: /);

    // Every service is still up.
    for (const service of [c.coordinator, ...c.brokers.values()]) {
      expect(service.running, service.name).toBe(true);
      expect((await fetch(`${service.url}/health`)).status, service.name).toBe(200);
    }

    // Deleting a topic works on the full disk, and the space it frees lets the brokers write again by themselves.
    const deleted = await cli(['topics', 'delete', 'bulk']);
    expect(deleted.stderr).toBe('');
    expect(deleted.code).toBe(0);
    await waitFor(async () => (await produceDirect('after-delete')).status === 200, { what: 'produce to be accepted again', timeoutMs: 20_000 });
    acknowledged.push('after-delete');
    // The coordinator's own database got nothing back: it still refuses new topics until the filler goes.
    expect((await cli(['topics', 'create', 'more', '--partitions', '1'])).stderr).toMatch(/storage full/);
    fs.rmSync(filler);
    await waitFor(async () => (await cli(['topics', 'create', 'more', '--partitions', '1'])).code === 0, {
      what: 'topic creation to be accepted again',
      timeoutMs: 20_000,
    });
    for (let i = 0; i < 5; i++) {
      await producer.send({ topic: 'keep', key: 'k', value: `after-${i}` });
      acknowledged.push(`after-${i}`);
    }

    // Nothing acknowledged was lost, in order.
    const consumer = client.consumer({ group: 'check', topic: 'keep', fromBeginning: true, waitMs: 200 });
    const seen: string[] = [];
    await waitFor(
      async () => {
        for (const record of await consumer.poll({ maxRecords: 100 })) seen.push(record.value!.toString());
        return seen.length >= acknowledged.length;
      },
      { what: 'every acknowledged record', timeoutMs: 20_000 },
    ).finally(() => consumer.close());
    expect(seen).toEqual(acknowledged);
    expect((await client.admin.listTopics()).map((t) => t.name).sort()).toEqual(['keep', 'more']);
  });
});
