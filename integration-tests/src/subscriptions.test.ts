// Push subscriptions against a real coordinator, real brokers and real HTTP receivers on
// loopback started by the test: retries, dead letters, signatures, isolation of a slow receiver,
// refused targets, a coordinator restart, and at-least-once in key order through a broker
// SIGKILL and a rebalance (checked with the history checker).
import { spawn } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TesseraClient } from '@tessera/client';
import { DEAD_LETTER_HEADERS, TesseraError, sleep, type DeliveryBody } from '@tessera/protocol';
import { type Cluster, launcher, startCluster, waitFor } from './harness/cluster.js';
import { History, describeReport } from './harness/history.js';
import { REPO, runCliAsAdmin } from './harness/cli.js';
import { KeyedLoad } from './harness/keyed-load.js';
import { Receiver } from './harness/receiver.js';
import { freePort } from '@tessera/protocol/test-support/ports';
import { createTopic, keys } from './harness/workload.js';

/** The services may call loopback receivers (the default allows public addresses only). */
const serviceEnv = { TESSERA_SUBSCRIPTION_ALLOWED_TARGETS: 'loopback' };

/** The README's verification recipe, as a receiver would write it. */
function verifyAsDocumented(secret: string, rawBody: string, header: string): boolean {
  const [t, v1] = header.split(',').map((part) => part.slice(part.indexOf('=') + 1));
  if (!t || !v1 || Math.abs(Date.now() - Number(t)) > 5 * 60_000) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${rawBody}`).digest();
  const given = Buffer.from(v1, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

const receivers: Receiver[] = [];
async function receiver(answer?: (delivery: DeliveryBody) => number | Promise<number>): Promise<Receiver> {
  const r = await new Receiver(answer).start();
  receivers.push(r);
  return r;
}
afterEach(async () => {
  await Promise.all(receivers.splice(0).map((r) => r.stop()));
});

// The receivers listen on this machine's loopback, which containers cannot reach, and loopback
// targets are allowed through serviceEnv, which only the processes launcher sets.
if (launcher !== 'processes') console.log(`subscriptions.test.ts: skipped with the ${launcher} launcher (receivers on the test's loopback)`);

describe.skipIf(launcher !== 'processes')('push subscriptions', () => {
  let cluster: Cluster;
  let client: TesseraClient;

  beforeAll(async () => {
    cluster = await startCluster({ name: 'subscriptions', serviceEnv });
    client = cluster.client();
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('retries a failing receiver with backoff and delivers on attempt N+1, signed so the documented recipe verifies it', async () => {
    const topic = await createTopic(client, 2);
    const failFirst = 3;
    const attemptsByOffset = new Map<string, number>();
    const hook = await receiver((delivery) => {
      const id = `${delivery.partition}/${delivery.offset}`;
      const seen = (attemptsByOffset.get(id) ?? 0) + 1;
      attemptsByOffset.set(id, seen);
      return seen <= failFirst ? 503 : 200;
    });
    const created = await client.subscriptions.create({ name: `retry-${topic}`, topic, url: hook.url, backoffInitialMs: 20, backoffMaxMs: 200 });
    expect(created.secret).toMatch(/^whsec_/);
    const producer = client.producer();
    await producer.send({ topic, key: 'k', value: 'hello', headers: { h: 'v' } });

    await waitFor(() => hook.received.some((r) => r.body.attempt === failFirst + 1), { what: 'the successful attempt' });
    const attempts = hook.received.filter((r) => r.body.value === 'hello');
    expect(attempts.map((r) => r.body.attempt)).toEqual([1, 2, 3, 4]);
    const last = attempts[3]!;
    expect(last.body).toMatchObject({ subscription: created.name, topic, key: 'k', value: 'hello', headers: { h: 'v' } });
    expect(typeof last.body.timestamp).toBe('number');
    for (const r of attempts) expect(verifyAsDocumented(created.secret, r.raw, r.signature)).toBe(true);
    // A changed body, or another secret, does not verify.
    expect(verifyAsDocumented(created.secret, last.raw.replace('hello', 'hellO'), last.signature)).toBe(false);
    expect(verifyAsDocumented('whsec_other', last.raw, last.signature)).toBe(false);

    // Nothing more is sent once the receiver answered 2xx, and the describe shows the progress.
    await waitFor(async () => (await client.subscriptions.describe(created.name)).partitions.reduce((n, p) => n + p.delivered, 0) === 1, {
      what: 'the delivery reported',
    });
    await sleep(300);
    expect(hook.received.filter((r) => r.body.value === 'hello')).toHaveLength(4);
    const described = await client.subscriptions.describe(created.name);
    expect(described.lag).toBe(0);
    await client.subscriptions.delete(created.name);
    await expect(client.subscriptions.describe(created.name)).rejects.toMatchObject({ code: 'SUBSCRIPTION_NOT_FOUND' });
  });

  it("verifies with the README's receiver, run as it is written", async () => {
    const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Push subscriptions'));
    const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
    expect(code, 'a js block in the README section "Push subscriptions"').toBeDefined();
    const file = path.join(cluster.dataDir, 'readme-receiver.mjs');
    writeFileSync(file, code!);
    const topic = await createTopic(client, 1);
    const port = await freePort();
    const name = `readme-${topic}`;
    // The secret is known only once the subscription exists; the receiver starts after it, and the first attempts are retried meanwhile.
    const created = await client.subscriptions.create({ name, topic, url: `http://127.0.0.1:${port}/`, backoffInitialMs: 50, backoffMaxMs: 200 });
    const child = spawn(process.execPath, [file], { env: { ...process.env, TESSERA_WEBHOOK_SECRET: created.secret, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    try {
      await client.producer().send({ topic, key: 'readme', value: 'verified-by-the-readme, é ✓' });
      await waitFor(() => stdout.includes('verified-by-the-readme, é ✓'), { what: 'the README receiver to accept the delivery' });
      await waitFor(async () => (await client.subscriptions.describe(name)).partitions[0]?.delivered === 1, { what: 'the 2xx counted' });
      // A request signed with another secret is refused by the same receiver.
      const body = JSON.stringify({ value: 'forged' });
      const t = Date.now();
      const forged = await fetch(`http://127.0.0.1:${port}/`, {
        method: 'POST',
        body,
        headers: { 'tessera-signature': `t=${t},v1=${createHmac('sha256', 'whsec_wrong').update(`${t}.${body}`).digest('hex')}` },
      });
      expect(forged.status).toBe(401);
      expect((await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body })).status).toBe(401);
    } finally {
      child.kill('SIGTERM');
      await client.subscriptions.delete(name);
    }
  });

  it("is verified by the compose demo's receiver (docker/demo-webhook.mjs), which refuses deliveries until its secret is saved", async () => {
    const topic = await createTopic(client, 1);
    const port = await freePort();
    const name = `demo-${topic}`;
    const secretFile = path.join(cluster.dataDir, `demo-webhook-secret-${topic}`);
    const child = spawn(process.execPath, [path.join(REPO, 'docker/demo-webhook.mjs')], {
      env: { ...process.env, DEMO_WEBHOOK_SECRET_FILE: secretFile, DEMO_WEBHOOK_PORT: String(port), DEMO_WEBHOOK_HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    try {
      await waitFor(() => stdout.includes('listening'), { what: 'the demo receiver to listen' });
      const created = await client.subscriptions.create({ name, topic, url: `http://127.0.0.1:${port}/hook`, backoffInitialMs: 50, backoffMaxMs: 200 });
      await client.producer().send({ topic, key: 'k', value: 'to the demo receiver' });
      // No secret yet: refused with 401 and retried.
      await waitFor(async () => (await client.subscriptions.describe(name)).partitions[0]?.lastStatus === 401, { what: 'a 401 before the secret is saved' });
      writeFileSync(secretFile, created.secret + '\n');
      await waitFor(async () => (await client.subscriptions.describe(name)).partitions[0]?.delivered === 1, { what: 'the delivery accepted once the secret is there' });
    } finally {
      child.kill('SIGTERM');
      await client.subscriptions.delete(name);
    }
  });

  it('sends a record that always fails to the dead-letter topic with the reason, and moves on', async () => {
    const topic = await createTopic(client, 1);
    const deadLetters = await createTopic(client, 1);
    const hook = await receiver((delivery) => (delivery.value === 'poison' ? 500 : 200));
    const name = `dlq-${topic}`;
    await client.subscriptions.create({ name, topic, url: hook.url, maxAttempts: 3, deadLetterTopic: deadLetters, backoffInitialMs: 10, backoffMaxMs: 50 });
    const producer = client.producer();
    for (const value of ['before', 'poison', 'after']) await producer.send({ topic, key: 'same-key', value });

    await waitFor(() => hook.received.some((r) => r.body.value === 'after'), { what: 'the record after the poison one' });
    const order = hook.received.map((r) => `${r.body.value}#${r.body.attempt}`);
    expect(order).toEqual(['before#1', 'poison#1', 'poison#2', 'poison#3', 'after#1']);

    const consumer = client.consumer({ group: `read-${deadLetters}`, topic: deadLetters, fromBeginning: true, waitMs: 200 });
    const deadRecords: Awaited<ReturnType<typeof consumer.poll>> = [];
    await waitFor(async () => {
      deadRecords.push(...(await consumer.poll({ maxRecords: 10, waitMs: 200 })));
      return deadRecords.length > 0;
    }, { what: 'the dead letter' });
    await consumer.close();
    expect(deadRecords).toHaveLength(1);
    const [dead] = deadRecords;
    expect(dead).toBeDefined();
    expect(dead!.value?.toString()).toBe('poison');
    expect(dead!.key?.toString()).toBe('same-key');
    const headers = Object.fromEntries(Object.entries(dead!.headers).map(([k, v]) => [k, v.toString()]));
    expect(headers).toMatchObject({
      [DEAD_LETTER_HEADERS.topic]: topic,
      [DEAD_LETTER_HEADERS.partition]: '0',
      [DEAD_LETTER_HEADERS.offset]: '1',
      [DEAD_LETTER_HEADERS.attempts]: '3',
      [DEAD_LETTER_HEADERS.lastStatus]: '500',
      [DEAD_LETTER_HEADERS.subscription]: name,
    });
    expect(headers[DEAD_LETTER_HEADERS.error]).toContain('500');
    await waitFor(async () => (await client.subscriptions.describe(name)).partitions[0]?.deadLettered === 1, { what: 'the dead letter reported' });
  });

  it('is managed with the CLI, and `tessera dlq replay` sends dead letters back to their topic once the receiver is fixed', async () => {
    const topic = await createTopic(client, 2);
    const deadLetters = await createTopic(client, 1);
    let fixed = false;
    const hook = await receiver((delivery) => (delivery.value === 'poison' && !fixed ? 500 : 200));
    const name = `cli-${topic}`;
    const created = await runCliAsAdmin(cluster, [
      'subscriptions', 'create', name, '--topic', topic, '--url', hook.url, '--max-attempts', '2',
      '--dead-letter-topic', deadLetters, '--backoff-ms', '10,50', '--json',
    ]);
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ name, topic, maxAttempts: 2, deadLetterTopic: deadLetters, backoffInitialMs: 10, backoffMaxMs: 50 });
    const producer = client.producer();
    await producer.send({ topic, key: 'p', value: 'poison', headers: { trace: 't-1' } });
    await waitFor(async () => (await client.subscriptions.describe(name)).partitions.some((p) => p.deadLettered === 1), { what: 'the dead letter' });

    const described = await runCliAsAdmin(cluster, ['subscriptions', 'describe', name, '--json']);
    expect(described.code, described.stderr).toBe(0);
    expect(JSON.parse(described.stdout).partitions.reduce((n: number, p: { deadLettered: number }) => n + p.deadLettered, 0)).toBe(1);
    const listed = await runCliAsAdmin(cluster, ['subscriptions', 'list']);
    expect(listed.stdout).toContain(name);
    const bad = await runCliAsAdmin(cluster, ['subscriptions', 'create', 'bad', '--topic', topic, '--url', 'http://10.1.1.1/']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/not an allowed target/);

    fixed = true;
    const replayed = await runCliAsAdmin(cluster, ['dlq', 'replay', deadLetters, '-g', `replay-${deadLetters}`, '--idle-timeout-ms', '1000']);
    expect(replayed.code, replayed.stderr).toBe(0);
    const lines = replayed.stdout.trim().split('\n').map((line) => JSON.parse(line) as { to: { topic: string } });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.to.topic).toBe(topic);
    // Same key, so same partition: the original is offset 0 there and the replayed copy offset 1.
    await waitFor(() => hook.received.some((r) => r.body.value === 'poison' && r.body.offset === 1), { what: 'the replayed record delivered' });
    const delivered = hook.received.find((r) => r.body.value === 'poison' && r.body.offset === 1)!;
    // The replayed record is the original (key, value, own headers) without the dead-letter headers.
    expect(delivered.body.key).toBe('p');
    expect(delivered.body.headers).toEqual({ trace: 't-1' });
    // A second replay of the same group finds nothing new.
    const again = await runCliAsAdmin(cluster, ['dlq', 'replay', deadLetters, '-g', `replay-${deadLetters}`, '--idle-timeout-ms', '500']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toBe('');
    await runCliAsAdmin(cluster, ['subscriptions', 'delete', name]);
    expect((await client.subscriptions.list()).map((s) => s.name)).not.toContain(name);
  });

  it('gives a pull consumer the same dead letters: subscribe(handler, { maxAttempts, deadLetterTopic })', async () => {
    const topic = await createTopic(client, 1);
    const deadLetters = await createTopic(client, 1);
    const calls: string[] = [];
    const consumer = client.consumer({ group: `pull-${topic}`, topic, fromBeginning: true, waitMs: 200 });
    const running = consumer.subscribe(
      (record) => {
        const value = record.value?.toString() ?? '';
        calls.push(value);
        if (value === 'bad') throw new Error('cannot handle bad');
      },
      { maxAttempts: 3, deadLetterTopic: deadLetters },
    );
    const producer = client.producer();
    for (const value of ['good-1', 'bad', 'good-2']) await producer.send({ topic, key: 'k', value });
    await waitFor(() => calls.includes('good-2'), { what: 'the record after the bad one' });
    expect(calls).toEqual(['good-1', 'bad', 'bad', 'bad', 'good-2']);
    await consumer.close();
    await running;

    const reader = client.consumer({ group: `read-${deadLetters}`, topic: deadLetters, fromBeginning: true, waitMs: 200 });
    const dead: Awaited<ReturnType<typeof reader.poll>> = [];
    await waitFor(async () => {
      dead.push(...(await reader.poll({ waitMs: 200 })));
      return dead.length > 0;
    }, { what: 'the dead letter' });
    await reader.close();
    expect(dead).toHaveLength(1);
    expect(dead[0]!.value?.toString()).toBe('bad');
    const headers = Object.fromEntries(Object.entries(dead[0]!.headers).map(([k, v]) => [k, v.toString()]));
    expect(headers).toMatchObject({
      [DEAD_LETTER_HEADERS.topic]: topic,
      [DEAD_LETTER_HEADERS.offset]: '1',
      [DEAD_LETTER_HEADERS.attempts]: '3',
      [DEAD_LETTER_HEADERS.error]: 'cannot handle bad',
      [DEAD_LETTER_HEADERS.group]: `pull-${topic}`,
    });
  });

  it('delivers only the records whose key starts with --filter-key-prefix, and moves past the others', async () => {
    const topic = await createTopic(client, 2);
    const hook = await receiver();
    await client.subscriptions.create({ name: `eu-${topic}`, topic, url: hook.url, filterKeyPrefix: 'eu-' });
    const producer = client.producer();
    const sent = ['eu-1', 'us-1', 'eu-2', 'apac-1', 'eu-3', 'e', 'EU-4'];
    for (const key of sent) await producer.send({ topic, key, value: `v-${key}` });
    await producer.send({ topic, value: 'no key' });
    await waitFor(() => hook.received.length >= 3, { what: 'the eu- records' });
    // The other records were looked at and passed: the subscription's position covers all eight.
    await waitFor(
      async () => {
        const described = await client.subscriptions.describe(`eu-${topic}`);
        return described.lag === 0 && described.partitions.reduce((n, p) => n + (p.offset ?? 0), 0) === sent.length + 1;
      },
      { what: 'the filtered records passed' },
    );
    expect(hook.received.map((r) => r.body.key).sort()).toEqual(['eu-1', 'eu-2', 'eu-3']);
    expect(hook.values().sort()).toEqual(['v-eu-1', 'v-eu-2', 'v-eu-3']);
  });

  it('keeps delivering to a fast receiver while another subscription waits on one that times out', async () => {
    const topic = await createTopic(client, 2);
    let slowCalls = 0;
    const slow = await receiver(async () => {
      slowCalls++;
      await sleep(60_000);
      return 200;
    });
    const fast = await receiver();
    await client.subscriptions.create({ name: `slow-${topic}`, topic, url: slow.url, timeoutMs: 500, backoffInitialMs: 100, backoffMaxMs: 500, maxInFlight: 1 });
    await client.subscriptions.create({ name: `fast-${topic}`, topic, url: fast.url });
    const producer = client.producer();
    const values = Array.from({ length: 40 }, (_, i) => `v${i}`);
    for (const value of values) await producer.send({ topic, key: value, value });

    await waitFor(() => new Set(fast.values()).size === values.length, { what: 'every record at the fast receiver' });
    expect(new Set(fast.values())).toEqual(new Set(values));
    // The slow one was tried (and timed out), but has none of the records acknowledged.
    expect(slowCalls).toBeGreaterThan(0);
    // Brokers report a subscription's position with their heartbeats, so the status can be one heartbeat old.
    await waitFor(async () => (await client.subscriptions.describe(`slow-${topic}`)).partitions.some((p) => /timeout|Timeout|aborted/i.test(p.lastError ?? '')), {
      what: 'the timeout reported',
    });
    await waitFor(async () => (await client.subscriptions.describe(`slow-${topic}`)).lag === values.length, {
      what: 'the slow subscription lagging by the records it could not deliver',
    });
  });

  it('refuses targets the cluster must not call, and bad settings, with a clear error', async () => {
    const topic = await createTopic(client, 1);
    for (const url of ['http://10.0.0.1/hook', 'http://169.254.169.254/latest/meta-data', 'http://192.168.1.1/', 'http://[fd00::1]/']) {
      const error = await client.subscriptions.create({ name: `refused-${topic}`, topic, url }).catch((e: unknown) => e);
      expect(error, url).toBeInstanceOf(TesseraError);
      expect((error as TesseraError).code).toBe('INVALID_REQUEST');
      expect((error as TesseraError).message).toMatch(/not an allowed target/);
    }
    await expect(client.subscriptions.create({ name: `ftp-${topic}`, topic, url: 'ftp://127.0.0.1/x' })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    await expect(client.subscriptions.create({ name: `x-${topic}`, topic: 'no-such-topic', url: 'http://127.0.0.1:1/' })).rejects.toMatchObject({
      code: 'TOPIC_NOT_FOUND',
    });
    // maxAttempts without a dead-letter topic would drop records: refused before anything is sent.
    await expect(client.subscriptions.create({ name: `m-${topic}`, topic, url: 'http://127.0.0.1:1/', maxAttempts: 3 })).rejects.toMatchObject({
      code: 'INVALID_REQUEST',
    });
    expect((await client.subscriptions.list()).filter((s) => s.topic === topic)).toEqual([]);

    // The same through plain HTTP, as an attacker would send it: a 4xx with the error body, nothing stored.
    const headers = { ...(await cluster.adminHeaders()), 'content-type': 'application/json' };
    for (const body of ['{"name":"x","topic":"' + topic + '","url":"http://127.0.0.1:1/","maxInFlight":100000}', '{"name":"../x","topic":"t","url":"u"}', 'not json', '{}']) {
      const response = await fetch(`${cluster.coordinatorUrl}/subscriptions`, { method: 'POST', headers, body });
      expect(response.status, body).toBe(400);
      expect(await response.json(), body).toMatchObject({ error: { code: 'INVALID_REQUEST', retriable: false } });
    }
    const missing = await fetch(`${cluster.coordinatorUrl}/subscriptions/no-such-subscription`, { headers });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { code: 'SUBSCRIPTION_NOT_FOUND' } });
    expect((await client.subscriptions.list()).filter((s) => s.topic === topic)).toEqual([]);

    // A taken name is refused as taken, before its target is even looked at; the first subscription stays as it was.
    const first = await client.subscriptions.create({ name: `dup-${topic}`, topic, url: 'http://127.0.0.1:1/first' });
    for (const url of ['http://127.0.0.1:1/second', 'http://10.0.0.1/hook']) {
      await expect(client.subscriptions.create({ name: `dup-${topic}`, topic, url }), url).rejects.toMatchObject({ code: 'SUBSCRIPTION_EXISTS' });
    }
    expect((await client.subscriptions.list()).filter((s) => s.topic === topic)).toMatchObject([{ name: first.name, url: 'http://127.0.0.1:1/first' }]);
    await client.subscriptions.delete(first.name);
  });

  it('lets only principals allowed to consume the topic (and produce to the dead-letter topic) create and change a subscription', async () => {
    const topic = await createTopic(client, 1);
    const deadLetters = await createTopic(client, 1);
    const reader = `reader-${topic}`;
    const outsider = `outsider-${topic}`;
    const readerSecret = (await client.admin.createPrincipal(reader)).secret;
    const outsiderSecret = (await client.admin.createPrincipal(outsider)).secret;
    await client.admin.addAcl({ principal: reader, resource: 'topic', name: topic, operation: 'consume' });
    const asReader = cluster.client({ credentials: { principal: reader, secret: readerSecret } });
    const asOutsider = cluster.client({ credentials: { principal: outsider, secret: outsiderSecret } });
    const url = 'http://127.0.0.1:9/hook';

    await expect(asOutsider.subscriptions.create({ name: `o-${topic}`, topic, url })).rejects.toMatchObject({ code: 'FORBIDDEN' });
    // The brokers would write the dead letters on the creator's behalf: that needs produce there.
    await expect(
      asReader.subscriptions.create({ name: `r-${topic}`, topic, url, maxAttempts: 2, deadLetterTopic: deadLetters }),
    ).rejects.toMatchObject({ code: 'FORBIDDEN' });
    const created = await asReader.subscriptions.create({ name: `r-${topic}`, topic, url });
    expect(created.createdBy).toBe(reader);
    await expect(asOutsider.subscriptions.pause(created.name)).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(asOutsider.subscriptions.delete(created.name)).rejects.toMatchObject({ code: 'FORBIDDEN' });
    expect((await asReader.subscriptions.pause(created.name)).state).toBe('paused');
    await asReader.subscriptions.delete(created.name);
    // Without a token at all: 401 before anything else.
    expect((await fetch(`${cluster.coordinatorUrl}/subscriptions`, { method: 'POST', body: '{}' })).status).toBe(401);
  });

  it('pauses, resumes, and survives a coordinator restart', async () => {
    const topic = await createTopic(client, 1);
    const hook = await receiver();
    const name = `restart-${topic}`;
    await client.subscriptions.create({ name, topic, url: hook.url });
    const producer = client.producer();
    await producer.send({ topic, key: 'a', value: 'one' });
    await waitFor(() => hook.values().includes('one'), { what: 'the first record' });

    await client.subscriptions.pause(name);
    await sleep(1_000);
    await producer.send({ topic, key: 'a', value: 'while-paused' });
    await sleep(1_000);
    expect(hook.values()).not.toContain('while-paused');
    await client.subscriptions.resume(name);
    await waitFor(() => hook.values().includes('while-paused'), { what: 'the record produced while paused' });

    await cluster.coordinator.restart();
    await producer.send({ topic, key: 'a', value: 'after-restart' });
    await waitFor(() => hook.values().includes('after-restart'), { what: 'the record after the coordinator restart' });
    expect((await client.subscriptions.describe(name)).state).toBe('active');
    expect(hook.values()).toEqual(['one', 'while-paused', 'after-restart']);
  });
});

describe.skipIf(launcher !== 'processes')('push subscriptions under faults', () => {
  let cluster: Cluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  it('delivers every acknowledged record at least once, in key order, through a broker SIGKILL and a rebalance', async () => {
    cluster = await startCluster({ name: 'subscriptions-faults', serviceEnv });
    const client = cluster.client();
    const topic = await createTopic(client, 4);
    const history = new History();
    const hook = await receiver((delivery) => {
      // Values are bytes that are not UTF-8 (the history's check bytes): they arrive as base64.
      expect(delivery.encoding).toBe('base64');
      history.delivered('push', Buffer.from(delivery.value ?? '', 'base64'), delivery.partition, delivery.offset);
      return 200;
    });
    await client.subscriptions.create({ name: `faults-${topic}`, topic, url: hook.url, backoffInitialMs: 50, backoffMaxMs: 500 });

    const load = new KeyedLoad(history, topic, 'push');
    load.start(client.producer({ lingerMs: 2 }), keys(12), 5);
    await waitFor(() => load.acknowledged >= 300, { timeoutMs: 60_000, what: '300 acknowledged records' });

    // SIGKILL the primary of partition 0 (its partitions fail over and their deliveries move), then bring it back.
    const primary = (await client.admin.describeTopic(topic)).partitions[0]!.primary!;
    await cluster.broker(primary).kill();
    const killedAt = load.acknowledged;
    await waitFor(() => load.acknowledged >= killedAt + 300, { timeoutMs: 60_000, what: '300 more acknowledged after the kill' });
    // Partition 0's delivery moved to its new primary, which reports it.
    await waitFor(async () => {
      const p0 = (await client.subscriptions.describe(`faults-${topic}`)).partitions[0]!;
      return p0.broker !== null && p0.broker !== primary && p0.delivered > 0;
    }, { what: 'partition 0 delivered by another broker' });
    await cluster.broker(primary).start();

    // A fourth broker joins: the rebalance moves replicas and leaderships, and deliveries with them.
    await cluster.addBroker(4);
    await waitFor(async () => (await client.admin.listBrokers()).find((b) => b.id === 4)!.primaries > 0, {
      timeoutMs: 90_000,
      what: 'broker 4 to lead a partition',
    });
    const joinedAt = load.acknowledged;
    await waitFor(() => load.acknowledged >= joinedAt + 200, { timeoutMs: 60_000, what: '200 more acknowledged after the rebalance' });
    await load.stop();

    await waitFor(() => history.acknowledgedDelivered('push') === load.acknowledged, {
      timeoutMs: 90_000,
      what: 'every acknowledged record at the receiver',
    });
    const report = history.check('push');
    expect(report.lost, describeReport(report)).toEqual([]);
    expect(report.unexpected, describeReport(report)).toEqual([]);
    expect(report.reordered, describeReport(report)).toEqual([]);
    // Where the deliveries ran: more than the three original brokers' worth of moves happened.
    const described = await client.subscriptions.describe(`faults-${topic}`);
    expect(described.partitions.every((p) => p.broker !== null)).toBe(true);
  });
});
