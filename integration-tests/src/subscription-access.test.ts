// Proves a push subscription delivers only while the principal that created it may read its
// topic, on a real cluster (coordinator and brokers as processes, authentication on) with a real
// receiver on loopback: removing the principal's ACL in the middle of a stream suspends the
// subscription at once on the coordinator (shown by describe and a cluster event) and stops its
// deliveries on the brokers within the revocation bound; granting the ACL again reinstates it,
// and every record of the topic then arrives exactly once and in order (nothing sent twice or
// skipped because of the suspension); deleting the principal suspends it again, and an admin can
// still list and delete it.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TesseraClient } from '@tessera/client';
import { sleep } from '@tessera/protocol';
import { runCliAsAdmin } from './harness/cli.js';
import { type Cluster, launcher, startCluster, waitFor } from './harness/cluster.js';
import { Receiver } from './harness/receiver.js';
import { createTopic } from './harness/workload.js';

const HEARTBEAT_MS = 200;
/** The broker's deadline for one coordinator call (BrokerLimits.coordinatorTimeoutMs). */
const COORDINATOR_TIMEOUT_MS = 2_000;
/** The receiver's answer time: deliveries fall behind the producer, so a suspension lands mid-stream. */
const ANSWER_MS = 30;
/**
 * The documented bound: a broker fetches the subscriptions at its next heartbeat (one coordinator
 * call) and lets the attempt in flight finish. Scheduling on a loaded test machine adds to it, so
 * the check allows one second more.
 */
const SUSPENSION_BOUND_MS = HEARTBEAT_MS + COORDINATOR_TIMEOUT_MS + ANSWER_MS + 1_000;

/** The services may call loopback receivers (the default allows public addresses only). */
const serviceEnv = { TESSERA_SUBSCRIPTION_ALLOWED_TARGETS: 'loopback' };

// The receiver listens on this machine's loopback, which containers cannot reach.
if (launcher !== 'processes') console.log(`subscription-access.test.ts: skipped with the ${launcher} launcher (receiver on the test's loopback)`);

describe.skipIf(launcher !== 'processes')("push subscriptions and their creator's access", () => {
  let cluster: Cluster;
  let admin: TesseraClient;
  const receivers: Receiver[] = [];

  beforeAll(async () => {
    cluster = await startCluster({ name: 'subscription-access', heartbeatMs: HEARTBEAT_MS, serviceEnv });
    admin = cluster.client({ requestTimeoutMs: 5_000 });
  });
  afterEach(async () => {
    await Promise.all(receivers.splice(0).map((r) => r.stop()));
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('stops delivering when the creator loses consume on the topic, and resumes where it stopped when it gets it back', async () => {
    const topic = await createTopic(admin, 2);
    const reader = `reader-${topic}`;
    const secret = (await admin.admin.createPrincipal(reader)).secret;
    const consume = { principal: reader, resource: 'topic', name: topic, operation: 'consume' } as const;
    await admin.admin.addAcl(consume);
    const asReader = cluster.client({ credentials: { principal: reader, secret }, requestTimeoutMs: 5_000 });
    const hook = await new Receiver(async () => {
      await sleep(ANSWER_MS);
      return 200;
    }).start();
    receivers.push(hook);
    const name = `access-${topic}`;
    const created = await asReader.subscriptions.create({ name, topic, url: hook.url, backoffInitialMs: 20, backoffMaxMs: 200 });
    expect(created).toMatchObject({ createdBy: reader, state: 'active', suspended: null });

    // A steady producer: faster than the receiver answers, so each partition's delivery is busy.
    let producing = true;
    let acknowledged = 0;
    const producer = admin.producer();
    const production = (async () => {
      for (let i = 0; producing; i++) {
        await producer.send({ topic, key: `k-${i % 6}`, value: String(i) });
        acknowledged++;
        await sleep(5);
      }
    })();

    try {
      await waitFor(() => hook.received.length >= 40, { timeoutMs: 30_000, what: '40 deliveries before the revocation' });
      const revokedAtMs = Date.now();
      await admin.admin.removeAcl(consume);

      // The coordinator suspends it as it applies the change: describe and the events say so and why.
      const suspended = await admin.subscriptions.describe(name);
      expect(suspended.state).toBe('active');
      expect(suspended.suspended).toEqual({ reason: `principal ${reader} is not allowed to consume from topic ${topic}`, sinceMs: expect.any(Number) });
      expect((await admin.admin.clusterEvents()).filter((e) => e.type === 'subscription_suspended' && e.name === name)).toMatchObject([
        { createdBy: reader, topic, reason: suspended.suspended!.reason },
      ]);
      // So does the CLI.
      const described = await runCliAsAdmin(cluster, ['subscriptions', 'describe', name]);
      expect(described.stdout).toMatch(new RegExp(`suspended: +since \\S+: ${suspended.suspended!.reason}`));
      const listed = await runCliAsAdmin(cluster, ['subscriptions', 'list']);
      expect(listed.stdout.split('\n').find((line) => line.startsWith(name))).toContain('active, suspended');

      // The brokers stop within the bound, and nothing more is sent while it lasts.
      await sleep(SUSPENSION_BOUND_MS);
      const sentBefore = hook.received.length;
      const lastSentMs = hook.received.at(-1)!.atMs;
      expect(lastSentMs - revokedAtMs, 'last delivery after the revocation').toBeLessThanOrEqual(SUSPENSION_BOUND_MS);
      await sleep(1_500);
      expect(hook.received.length, 'deliveries while suspended').toBe(sentBefore);
      expect(acknowledged, 'records produced while suspended').toBeGreaterThan(sentBefore);

      // Granted again: reinstated, and delivery goes on from where it stopped.
      await admin.admin.addAcl(consume);
      expect((await admin.subscriptions.describe(name)).suspended).toBeNull();
      expect((await admin.admin.clusterEvents()).some((e) => e.type === 'subscription_reinstated' && e.name === name)).toBe(true);
      producing = false;
      await production;
      await waitFor(() => hook.received.length >= acknowledged, { timeoutMs: 60_000, what: `all ${acknowledged} records at the receiver` });
      await sleep(1_000);
      // Every offset of each partition once, in order: none sent twice, none skipped.
      const ends = (await admin.admin.describeTopic(topic)).partitions.map((p) => p.highWatermark ?? 0);
      expect(ends.reduce((sum, end) => sum + end, 0)).toBe(acknowledged);
      for (const [partition, end] of ends.entries()) {
        const offsets = hook.received.filter((r) => r.body.partition === partition).map((r) => r.body.offset);
        expect(offsets, `partition ${partition}`).toEqual(Array.from({ length: end }, (_, offset) => offset));
      }

      // The principal deleted: suspended again, although its ACLs stay.
      await admin.admin.deletePrincipal(reader);
      expect((await admin.subscriptions.describe(name)).suspended?.reason).toBe(`principal ${reader} does not exist`);
      // Produced once the brokers have stopped (within the bound), so never sent.
      await sleep(SUSPENSION_BOUND_MS);
      await producer.send({ topic, key: 'k-0', value: 'after the deletion' });
      await sleep(1_500);
      expect(hook.values()).not.toContain('after the deletion');
      // An admin still lists and deletes it.
      expect((await admin.subscriptions.list()).find((s) => s.name === name)?.suspended?.reason).toBe(`principal ${reader} does not exist`);
      await admin.subscriptions.delete(name);
      expect((await admin.subscriptions.list()).some((s) => s.name === name)).toBe(false);
    } finally {
      producing = false;
      await production;
    }
  });
});
