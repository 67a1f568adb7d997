// Proves client authentication and ACLs on a real cluster (coordinator and brokers as processes,
// authentication on as by default): anonymous and under-privileged calls are refused with 401/403
// and change nothing (the topic, its records and a group's offsets are checked afterwards),
// topic and prefix ACLs decide produce and consume, and a deleted principal's or a rotated
// secret's token stops working on a broker within the documented bound.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TesseraClient } from '@tessera/client';
import net from 'node:net';
import {
  BROKER_ROUTES,
  DATA_ANSWER_FRAME,
  DATA_STREAM_PATH,
  DATA_STREAM_PROTOCOL,
  StreamClient,
  decodeDataAnswer,
  decodeFrame,
  encodeDataCall,
  encodeFrame,
  encodeRecordBatch,
  type DataCallRoute,
  type MetadataResponse,
  routePath,
} from '@tessera/protocol';
import { type Cluster, issueToken, startCluster, waitFor } from './harness/cluster.js';

const HEARTBEAT_MS = 200;
/** The broker's deadline for one coordinator call (BrokerLimits.coordinatorTimeoutMs). */
const COORDINATOR_TIMEOUT_MS = 2_000;
/**
 * The documented bound: a broker applies a change of principals at its next heartbeat, and
 * fetching the new state takes at most one coordinator call. Scheduling on a loaded test machine
 * adds to it, so the wait allows one second more.
 */
const REVOCATION_BOUND_MS = HEARTBEAT_MS + COORDINATOR_TIMEOUT_MS;

let cluster: Cluster;
let admin: TesseraClient;
const secrets: Record<string, string> = {};

beforeAll(async () => {
  cluster = await startCluster({ name: 'auth', brokers: 2, heartbeatMs: HEARTBEAT_MS });
  admin = cluster.client({ requestTimeoutMs: 5_000 });
  for (const name of ['team-a', 'team-b', 'team-c']) secrets[name] = (await admin.admin.createPrincipal(name)).secret;
  // team-a owns orders-a and the group billing-a; team-b may read orders-a with its own groups (prefix b-) and write topics b.*.
  await admin.admin.addAcl({ principal: 'team-a', resource: 'topic', name: 'orders-a', operation: 'produce' });
  await admin.admin.addAcl({ principal: 'team-a', resource: 'topic', name: 'orders-a', operation: 'consume' });
  await admin.admin.addAcl({ principal: 'team-a', resource: 'group', name: 'billing-a', operation: 'consume' });
  await admin.admin.addAcl({ principal: 'team-b', resource: 'group', name: 'b-', prefix: true, operation: 'consume' });
  await admin.admin.addAcl({ principal: 'team-b', resource: 'topic', name: 'b.', prefix: true, operation: 'produce' });
  await admin.admin.addAcl({ principal: 'team-c', resource: 'topic', name: '*', operation: 'produce' });
  await admin.admin.createTopic({ name: 'orders-a', partitions: 1 });
  await admin.admin.createTopic({ name: 'b.events', partitions: 1 });
  await admin.admin.createTopic({ name: 'bx.events', partitions: 1 });
  // The last change: once every broker lets team-b look up orders-a's offsets, every broker runs
  // with all of the rules above (a broker takes a change at its next heartbeat; on a loaded
  // machine that can come after the topics exist).
  await admin.admin.addAcl({ principal: 'team-b', resource: 'topic', name: 'orders-a', operation: 'consume' });
  const token = await tokenOf('team-b');
  for (const broker of cluster.brokers.values()) {
    await waitFor(
      async () => (await call(broker.url + BROKER_ROUTES.listOffsets, 'POST', { partitions: [{ topic: 'orders-a', partition: 0, at: 'latest' }] }, token)).status === 200,
      { what: `broker ${broker.url} to apply the ACLs`, timeoutMs: 20_000 },
    );
  }
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

const as = (principal: string) => cluster.client({ credentials: { principal, secret: secrets[principal]! }, requestTimeoutMs: 5_000 });

async function tokenOf(principal: string): Promise<string> {
  return issueToken(cluster.coordinatorUrl, { principal, secret: secrets[principal]! }, cluster.tls);
}

/** A raw HTTP call, as an attacker or a plain client makes it. */
async function call(url: string, method: string, body?: unknown, token?: string) {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

/** A data stream client as any program would open one (one connection per broker and credential). */
function dataStreams(): StreamClient {
  const streams = new StreamClient({ name: 'data stream', protocol: DATA_STREAM_PROTOCOL, path: DATA_STREAM_PATH, maxAnswerBytes: 1 << 24 });
  streamClients.push(streams);
  return streams;
}
const streamClients: StreamClient[] = [];
afterAll(() => {
  for (const streams of streamClients) streams.close();
});

/** One call on a data stream: the status and the JSON body (or, for a frame, its head). */
async function streamCall(streams: StreamClient, brokerUrl: string, route: DataCallRoute, payload: Buffer | unknown, token?: string) {
  const bytes = Buffer.isBuffer(payload) ? payload : Buffer.from(JSON.stringify(payload), 'utf8');
  const answer = decodeDataAnswer(await streams.call(brokerUrl, encodeDataCall(route, [bytes]), 5_000, token === undefined ? undefined : `Bearer ${token}`));
  const body = answer.kind === DATA_ANSWER_FRAME ? decodeFrame(answer.payload).head : JSON.parse(answer.payload.toString('utf8'));
  return { status: answer.status, kind: answer.kind, body: body as any };
}

/** A produce frame of one record for partition 0 of `topic`. */
function produceFrame(topic: string, value: string): Buffer {
  const batch = encodeRecordBatch([{ key: null, value: Buffer.from(value), headers: [], timestamp: Date.now() }]);
  return Buffer.concat(encodeFrame({ partitions: [{ topic, partition: 0, bytes: batch.length }] }, [batch]));
}

async function primaryUrl(topic: string, partition = 0): Promise<string> {
  const metadata: MetadataResponse = await admin.admin.metadata();
  const id = metadata.topics.find((t) => t.name === topic)!.partitions[partition]!.primary;
  return metadata.brokers.find((b) => b.id === id)!.url;
}

/** Every value of `topic` as the admin reads it from the beginning, in a new group. */
async function readAll(topic: string, group: string, expected: number): Promise<string[]> {
  const consumer = admin.consumer({ group, topic, fromBeginning: true, waitMs: 200 });
  const values: string[] = [];
  await waitFor(async () => {
    for (const record of await consumer.poll()) values.push(record.value?.toString() ?? '');
    return values.length >= expected;
  }, { what: `${expected} records of ${topic}`, timeoutMs: 20_000 });
  await consumer.close();
  return values;
}

async function metric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${cluster.coordinatorUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

describe('client authentication and ACLs', () => {
  it('refuses an anonymous or non-admin topic delete; the topic and its records stay (attack 1)', async () => {
    const producer = as('team-a').producer();
    for (let i = 0; i < 20; i++) await producer.send({ topic: 'orders-a', key: `k${i % 3}`, value: `v${i}` });
    await producer.flush();

    const anonymous = await call(`${cluster.coordinatorUrl}/topics/orders-a`, 'DELETE');
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error).toMatchObject({ code: 'UNAUTHORIZED', retriable: false });
    const forged = await call(`${cluster.coordinatorUrl}/topics/orders-a`, 'DELETE', undefined, 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZG1pbiJ9.c2ln');
    expect(forged.status).toBe(401);
    const nonAdmin = await call(`${cluster.coordinatorUrl}/topics/orders-a`, 'DELETE', undefined, await tokenOf('team-b'));
    expect(nonAdmin.status).toBe(403);
    expect(nonAdmin.body.error).toMatchObject({ code: 'FORBIDDEN', message: 'principal team-b is not allowed to administer topic orders-a' });
    // Even the topic's own producer is no admin of it.
    await expect(as('team-a').admin.deleteTopic('orders-a')).rejects.toMatchObject({ code: 'FORBIDDEN' });

    expect((await admin.admin.describeTopic('orders-a')).partitions).toHaveLength(1);
    expect(await readAll('orders-a', 'check-attack-1', 20)).toEqual(Array.from({ length: 20 }, (_, i) => `v${i}`));
    expect(await metric('tessera_auth_failures_total', 'reason="missing"')).toBeGreaterThan(0);
    expect(await metric('tessera_auth_denied_total', 'principal="team-b"')).toBeGreaterThan(0);
  });

  it("refuses a commit for another team's group; the group's offsets are unchanged (attack 2)", async () => {
    const owner = as('team-a').consumer({ group: 'billing-a', topic: 'orders-a', fromBeginning: true, waitMs: 200 });
    let read = 0;
    await waitFor(async () => (read += (await owner.poll()).length) >= 20, { what: 'team-a to read orders-a' });
    await owner.commit();
    const committedBefore = (await admin.admin.groupLag('billing-a'))[0]!.committed;
    expect(committedBefore).toBe(20);
    const generation = (await admin.admin.describeGroup('billing-a')).generation;

    const rewind = { group: 'billing-a', generation, offsets: [{ topic: 'orders-a', partition: 0, offset: 0 }] };
    const url = (await primaryUrl('orders-a')) + BROKER_ROUTES.commit;
    const anonymous = await call(url, 'POST', rewind);
    expect(anonymous.status).toBe(401);
    const otherTeam = await call(url, 'POST', rewind, await tokenOf('team-b'));
    expect(otherTeam.status).toBe(403);
    expect(otherTeam.body.error.message).toBe('principal team-b is not allowed to consume as group billing-a');
    // Joining the group through the coordinator is refused too.
    const join = await call(`${cluster.coordinatorUrl}/groups/billing-a/join`, 'POST', { topic: 'orders-a' }, await tokenOf('team-b'));
    expect(join.status).toBe(403);

    expect((await admin.admin.groupLag('billing-a'))[0]!.committed).toBe(committedBefore);
    expect((await admin.admin.describeGroup('billing-a')).members).toHaveLength(1);
    await owner.close();

    // team-b's own groups (prefix b-) work on the topic it may read.
    const own = as('team-b').consumer({ group: 'b-reports', topic: 'orders-a', fromBeginning: true, waitMs: 200 });
    let ownRead = 0;
    await waitFor(async () => (ownRead += (await own.poll()).length) >= 20, { what: 'team-b to read orders-a in its group' });
    await own.commit();
    await own.close();
    expect((await admin.admin.groupLag('b-reports'))[0]!.committed).toBe(20);
  });

  it('produce and consume follow topic ACLs, exact and by prefix', async () => {
    const teamB = as('team-b');
    // Consume on orders-a does not allow producing to it.
    await expect(teamB.producer().send({ topic: 'orders-a', value: 'intruder' })).rejects.toMatchObject({
      code: 'FORBIDDEN',
      message: 'principal team-b is not allowed to produce to topic orders-a',
    });
    // The prefix b. matches b.events and not bx.events.
    await teamB.producer().send({ topic: 'b.events', value: 'mine' });
    await expect(teamB.producer().send({ topic: 'bx.events', value: 'not mine' })).rejects.toMatchObject({ code: 'FORBIDDEN' });
    // team-a may not consume b.events, in any group.
    await expect(as('team-a').consumer({ group: 'billing-a', topic: 'b.events' }).poll()).rejects.toMatchObject({ code: 'FORBIDDEN' });
    const fetch = await call((await primaryUrl('b.events')) + BROKER_ROUTES.fetch, 'POST', { partitions: [{ topic: 'b.events', partition: 0, offset: 0 }] }, await tokenOf('team-a'));
    expect(fetch.status).toBe(403);
    expect(fetch.body.error.message).toBe('principal team-a is not allowed to consume from topic b.events');

    expect(await readAll('b.events', 'check-b', 1)).toEqual(['mine']);
    expect((await admin.admin.describeTopic('bx.events')).partitions[0]!.highWatermark).toBe(0);
    expect(await readAll('orders-a', 'check-orders', 20)).not.toContain('intruder');
  });

  it('refuses, in one frame of several topics, only the partitions of topics the principal may not produce to', async () => {
    // Each topic has a partition on both brokers, so a producer's frame to a broker carries both topics.
    await admin.admin.createTopic({ name: 'b.mixed', partitions: 2 });
    await admin.admin.createTopic({ name: 'bx.mixed', partitions: 2 });
    const producer = as('team-b').producer();
    const results = await Promise.allSettled(
      [0, 1].flatMap((partition) => [
        producer.send({ topic: 'b.mixed', partition, value: `allowed-${partition}` }),
        producer.send({ topic: 'bx.mixed', partition, value: `refused-${partition}` }),
      ]),
    );
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected']);
    for (const result of results) {
      if (result.status === 'rejected') expect(result.reason).toMatchObject({ code: 'FORBIDDEN', message: 'principal team-b is not allowed to produce to topic bx.mixed' });
    }
    expect((await readAll('b.mixed', 'check-mixed', 2)).sort()).toEqual(['allowed-0', 'allowed-1']);
    expect((await admin.admin.describeTopic('bx.mixed')).partitions.map((p) => p.highWatermark)).toEqual([0, 0]);
  });

  it('serves /openapi.json to anyone, like /health', async () => {
    expect((await call(`${cluster.coordinatorUrl}/openapi.json`, 'GET')).status).toBe(200);
    expect((await call(`${await primaryUrl('orders-a')}/openapi.json`, 'GET')).status).toBe(200);
  });

  it("stops a deleted principal's token and a rotated secret's token on the brokers within the stated bound", async () => {
    const url = (await primaryUrl('bx.events')) + routePath(BROKER_ROUTES.produce, { topic: 'bx.events', partition: 0 });
    const acknowledged: string[] = [];
    let sent = 0;
    const produce = async (token: string, label: string) => {
      const value = `${label}-${sent++}`;
      const answer = await call(url, 'POST', { records: [{ value }] }, token);
      if (answer.status === 200) acknowledged.push(value);
      return answer;
    };

    // The same over a data stream opened before the change: every call is checked again.
    const streams = dataStreams();
    const brokerUrl = await primaryUrl('bx.events');
    const produceOnStream = async (token: string, label: string) => {
      const value = `${label}-${sent++}`;
      const answer = await streamCall(streams, brokerUrl, BROKER_ROUTES.produceBatches, produceFrame('bx.events', value), token);
      if (answer.status === 200 && answer.body.partitions[0].error === undefined) acknowledged.push(value);
      return answer;
    };

    // Rotation: the old token stops, a token of the new secret works.
    const oldToken = await tokenOf('team-c');
    expect((await produce(oldToken, 'before-rotation')).status).toBe(200);
    expect((await produceOnStream(oldToken, 'stream-before-rotation')).status).toBe(200);
    secrets['team-c'] = (await admin.admin.rotateSecret('team-c')).secret;
    const rotatedAt = Date.now();
    await waitFor(async () => (await produce(oldToken, 'after-rotation')).status === 401, {
      what: 'the old token to be refused',
      timeoutMs: REVOCATION_BOUND_MS + 1_000,
      intervalMs: 20,
    });
    const rotationMs = Date.now() - rotatedAt;
    const refusedOnStream = await produceOnStream(oldToken, 'stream-after-rotation');
    expect(refusedOnStream.status).toBe(401);
    expect(refusedOnStream.body.error).toMatchObject({ code: 'UNAUTHORIZED', message: 'authentication failed for principal team-c: its secret was changed' });
    const newToken = await tokenOf('team-c');
    expect((await produce(newToken, 'new-secret')).status).toBe(200);

    // Deletion: the token stops on the broker, and no new token is issued.
    await admin.admin.deletePrincipal('team-c');
    const deletedAt = Date.now();
    await waitFor(async () => (await produce(newToken, 'after-delete')).status === 401, {
      what: 'the deleted principal to be refused',
      timeoutMs: REVOCATION_BOUND_MS + 1_000,
      intervalMs: 20,
    });
    const deletionMs = Date.now() - deletedAt;
    const refused = await produce(newToken, 'after-delete');
    expect(refused.body.error).toMatchObject({ code: 'UNAUTHORIZED', message: 'authentication failed for principal team-c: it no longer exists' });
    await expect(tokenOf('team-c')).rejects.toMatchObject({ code: 'UNAUTHORIZED', message: 'authentication failed for principal team-c' });
    console.log(`revocation took effect on the broker after ${rotationMs} ms (rotation) and ${deletionMs} ms (deletion); bound ${REVOCATION_BOUND_MS} ms`);

    // Exactly what was acknowledged is stored: nothing a refused token sent.
    expect(await readAll('bx.events', 'check-revocation', acknowledged.length)).toEqual(acknowledged);
    expect(sent).toBeGreaterThan(acknowledged.length);
  });
});

// The data stream (produce, fetch and commit on a kept-open connection) opens only for an
// authenticated caller, checks each call as the HTTP request it stands for, and refuses what is
// not a call.
describe('the data stream', () => {
  it('refuses to open without a token (401), and answers each call as its HTTP route would: 403 or an inline FORBIDDEN without an ACL', async () => {
    const streams = dataStreams();
    const url = await primaryUrl('orders-a');
    await expect(streamCall(streams, url, BROKER_ROUTES.produceBatches, produceFrame('orders-a', 'anonymous'))).rejects.toMatchObject({
      code: 'UNAUTHORIZED',
      message: expect.stringMatching(/^authentication required/),
    });

    const teamB = await tokenOf('team-b');
    // team-b may read orders-a, not write it, and may not commit as team-a's group.
    const produced = await streamCall(streams, url, BROKER_ROUTES.produceBatches, produceFrame('orders-a', 'not-allowed'), teamB);
    expect(produced.status).toBe(200);
    expect(produced.body.partitions[0].error).toMatchObject({ code: 'FORBIDDEN', message: 'principal team-b is not allowed to produce to topic orders-a' });
    const fetched = await streamCall(streams, url, BROKER_ROUTES.fetch, { partitions: [{ topic: 'orders-a', partition: 0, offset: 0 }] }, teamB);
    expect(fetched).toMatchObject({ status: 200, kind: DATA_ANSWER_FRAME });
    expect(fetched.body.partitions[0]).toMatchObject({ topic: 'orders-a', partition: 0 });
    const committed = await streamCall(streams, url, BROKER_ROUTES.commit, { group: 'billing-a', generation: 1, offsets: [{ topic: 'orders-a', partition: 0, offset: 0 }] }, teamB);
    expect(committed.status).toBe(403);
    expect(committed.body.error).toMatchObject({ code: 'FORBIDDEN' });

    // Not a call, or a call without valid JSON: 400, and the connection goes on serving.
    const unknown = decodeDataAnswer(await streams.call(url, [Buffer.of(99)], 5_000, `Bearer ${teamB}`));
    expect(unknown.status).toBe(400);
    expect(JSON.parse(unknown.payload.toString()).error).toMatchObject({ code: 'INVALID_REQUEST', message: 'unknown data stream call 99' });
    const badJson = await streamCall(streams, url, BROKER_ROUTES.fetch, Buffer.from('{"partitions": ['), teamB);
    expect(badJson.status).toBe(400);
    expect(badJson.body.error.message).toMatch(/not valid JSON/);
    expect((await streamCall(streams, url, BROKER_ROUTES.fetch, { partitions: [{ topic: 'orders-a', partition: 0, offset: 0 }] }, teamB)).status).toBe(200);

    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/tessera_broker_request_duration_seconds_count\{method="STREAM",route="\/produce",status="200"\} [1-9]/);
    expect(metrics).toMatch(/tessera_broker_request_duration_seconds_count\{method="STREAM",route="\/commit",status="403"\} [1-9]/);
  });

  it('refuses a forged token at the upgrade, and closes a stream whose message claims more than the request limit', async () => {
    const url = await primaryUrl('orders-a');
    await expect(streamCall(dataStreams(), url, BROKER_ROUTES.fetch, { partitions: [] }, 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZG1pbiJ9.c2ln')).rejects.toMatchObject({
      code: 'UNAUTHORIZED',
    });

    const { hostname, port } = new URL(url);
    const socket = net.connect(Number(port), hostname);
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.write(`GET ${DATA_STREAM_PATH} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nConnection: Upgrade\r\nUpgrade: ${DATA_STREAM_PROTOCOL}\r\nAuthorization: Bearer ${await tokenOf('team-b')}\r\n\r\n`);
    await waitFor(async () => Buffer.concat(received).toString().includes('\r\n\r\n'), { what: 'the 101 answer', timeoutMs: 5_000 });
    expect(Buffer.concat(received).toString()).toMatch(/^HTTP\/1.1 101 /);
    const header = Buffer.alloc(8);
    header.writeUInt32BE(0xfffffff0, 0);
    header.writeUInt32BE(1, 4);
    socket.write(header);
    await closed;
  });
});

// The second half of the bound: a broker cut off from the coordinator keeps the principals it
// last had, so there a deleted principal's token works until it expires, and not a moment longer.
describe('a broker that cannot reach the coordinator', () => {
  const TOKEN_TTL_MS = 4_000;
  let cut: Cluster;

  beforeAll(async () => {
    // A long broker timeout: the cut-off broker stays primary, so only authentication can refuse.
    cut = await startCluster({ name: 'auth-cut', brokers: 2, heartbeatMs: HEARTBEAT_MS, brokerTimeoutMs: 60_000, proxies: true, tokenTtlMs: TOKEN_TTL_MS });
  }, 60_000);

  afterAll(async () => {
    await cut?.stop();
  });

  it("refuses a deleted principal's token once the token expires (the token lifetime bounds revocation there)", async () => {
    const client = cut.client({ requestTimeoutMs: 5_000 });
    await client.admin.createTopic({ name: 'cut-topic', partitions: 1 });
    const secret = (await client.admin.createPrincipal('team-d')).secret;
    await client.admin.addAcl({ principal: 'team-d', resource: 'topic', name: 'cut-topic', operation: 'produce' });
    const metadata = await client.admin.metadata();
    const primary = metadata.topics.find((t) => t.name === 'cut-topic')!.partitions[0]!.primary!;
    const url = metadata.brokers.find((b) => b.id === primary)!.url + routePath(BROKER_ROUTES.produce, { topic: 'cut-topic', partition: 0 });
    // Wait until the broker knows team-d, then take its token.
    const issuedAt = Date.now();
    const token = await issueToken(cut.coordinatorUrl, { principal: 'team-d', secret }, cut.tls);
    await waitFor(async () => (await call(url, 'POST', { records: [{ value: 'known' }] }, token)).status === 200, { what: 'the broker to know team-d' });

    cut.links!.get(primary)!.toCoordinator.set('cut');
    await client.admin.deletePrincipal('team-d');
    await waitFor(async () => (await call(url, 'POST', { records: [{ value: 'late' }] }, token)).status === 401, {
      what: 'the token to expire on the cut-off broker',
      timeoutMs: TOKEN_TTL_MS + 5_000,
      intervalMs: 50,
    });
    const refusedAfterMs = Date.now() - issuedAt;
    const refused = await call(url, 'POST', { records: [{ value: 'late' }] }, token);
    expect(refused.body.error.message).toMatch(/has expired/);
    // Scheduling on a loaded machine may add to it; one second is allowed.
    expect(refusedAfterMs).toBeLessThanOrEqual(TOKEN_TTL_MS + 1_000);
    cut.links!.get(primary)!.toCoordinator.set('pass');
  });
});
