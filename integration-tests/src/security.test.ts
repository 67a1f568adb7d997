// The attacks an outsider on loopback could make on a cluster's internal routes and its HTTP
// edge, each tried against real processes: every one is refused (401/403 or a closed
// connection), and the data is checked afterwards, not only the status code.
import { once } from 'node:events';
import { readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TesseraClient } from '@tessera/client';
import {
  BROKER_ROUTES,
  COORDINATOR_ROUTES,
  ClusterSigner,
  DataHttpClient,
  JsonHttpClient,
  encodeFrame,
  encodeRecordBatch,
  type ClusterNode,
  type MetadataResponse,
  type TlsClientOptions,
  makeCertificates,
  routePath,
} from '@tessera/protocol';
import { type Cluster, launcher, startCluster, waitFor } from './harness/cluster.js';
import { freePort } from '@tessera/protocol/test-support/ports';
import { ServiceProcess } from './harness/process.js';

const WRONG_SECRET = 'not-the-cluster-secret-0123456789';

function anonymous(tls?: TlsClientOptions): JsonHttpClient {
  return new JsonHttpClient({ timeoutMs: 5_000, maxSockets: 4, tls });
}

function signedAs(node: ClusterNode, secret: string, tls?: TlsClientOptions): JsonHttpClient {
  return new JsonHttpClient({ timeoutMs: 5_000, maxSockets: 4, tls, signer: new ClusterSigner([secret], node) });
}

/**
 * A well-formed replication exchange, as a primary would send it: one push of one RecordBatch
 * holding `value` at `baseOffset`, stamped with `epoch` (the frame the replicate route takes).
 */
function forgedExchange(push: { topic: string; primaryId: number; epoch: number; prevEpoch: number; baseOffset: number }, value: string): Buffer[] {
  const batch = encodeRecordBatch([{ key: null, value: Buffer.from(value), timestamp: Date.now() }], {
    baseOffset: push.baseOffset,
    partitionLeaderEpoch: push.epoch,
  });
  const head = { from: push.primaryId, pushes: [{ ...push, partition: 0, hw: push.baseOffset, commits: [], bytes: batch.length }] };
  return encodeFrame(head, [batch]);
}

/** Posts a replication exchange, signed as `node` with `secret` when given; closes its connection after. */
async function replicateAs(url: string, frame: Buffer[], options: { node?: ClusterNode; secret?: string; tls?: TlsClientOptions } = {}): Promise<unknown> {
  const signer = options.node && options.secret ? new ClusterSigner([options.secret], options.node) : undefined;
  const http = new DataHttpClient({ timeoutMs: 5_000, ...(options.tls ? { tls: options.tls } : {}), ...(signer ? { signer } : {}) });
  try {
    return await http.postFrame(url, frame);
  } finally {
    await http.close();
  }
}

/** The error code a refused call got (the call must be refused). */
async function refusal(call: Promise<unknown>): Promise<string> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e as { code?: string },
  );
  expect(error, 'the call was accepted').toBeDefined();
  return String(error!.code);
}

function internalUrl(metadata: MetadataResponse, id: number): string {
  const broker = metadata.brokers.find((b) => b.id === id)!;
  return broker.internalUrl ?? broker.url;
}

/** The map without its version: what an attack must not change. */
function mapOf(metadata: MetadataResponse) {
  return { brokers: metadata.brokers, topics: metadata.topics };
}

// TLS and the short deadlines are set by the processes launcher; the containers launcher runs
// the images as compose does (see containers.test.ts).
if (launcher !== 'processes') console.log(`security.test.ts: skipped with the ${launcher} launcher (needs the processes launcher's tls and serviceEnv)`);

describe.skipIf(launcher !== 'processes')('a cluster with service identity', () => {
  let cluster: Cluster;
  let client: TesseraClient;
  const clients: JsonHttpClient[] = [];
  const track = (c: JsonHttpClient) => (clients.push(c), c);

  beforeAll(async () => {
    cluster = await startCluster({
      name: 'security',
      brokers: 3,
      brokerTimeoutMs: 1_500,
      replicaTimeoutMs: 800,
      // Short deadlines, so the slow-connection attack is over in seconds.
      serviceEnv: { TESSERA_HEADERS_TIMEOUT_MS: '1000', TESSERA_REQUEST_TIMEOUT_MS: '2000' },
    });
    client = cluster.client({ requestTimeoutMs: 3_000 });
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await cluster?.stop();
  });

  it('refuses a forged and an epoch-1000 replicate; the acknowledged records are what the new primary serves after a failover', async () => {
    const topic = 'sec-replicate';
    await client.admin.createTopic({ name: topic, partitions: 1, replicationFactor: 2 });
    const producer = client.producer({ lingerMs: 0 });
    expect((await producer.send({ topic, value: 'real-0' })).offset).toBe(0);
    const before = await client.admin.metadata();
    const { primary, secondary, epoch } = before.topics.find((t) => t.name === topic)!.partitions[0]!;
    const forged = (value: string, forgedEpoch: number) =>
      forgedExchange({ topic, primaryId: primary!, epoch: forgedEpoch, prevEpoch: epoch, baseOffset: 1 }, value);
    const target = internalUrl(before, secondary!) + BROKER_ROUTES.replicate;
    expect(await refusal(replicateAs(target, forged('forged', epoch), { tls: cluster.tls }))).toBe('UNAUTHORIZED');
    expect(await refusal(replicateAs(target, forged('forged', epoch), { node: `broker-${primary!}`, secret: WRONG_SECRET, tls: cluster.tls }))).toBe('UNAUTHORIZED');
    // The epoch bump, at the primary itself: refused, and the partition stays writable at once.
    const atPrimary = internalUrl(before, primary!) + BROKER_ROUTES.replicate;
    expect(await refusal(replicateAs(atPrimary, forged('bump', 1_000), { tls: cluster.tls }))).toBe('UNAUTHORIZED');
    expect(await producer.send({ topic, value: 'real-1' })).toMatchObject({ offset: 1 });
    const after = await client.admin.metadata();
    expect(after.topics.find((t) => t.name === topic)!.partitions[0]!.epoch).toBe(epoch);

    // A failover: the secondary that was targeted leads now and serves exactly the real records.
    await cluster.broker(primary!).kill();
    await waitFor(async () => (await client.admin.describeTopic(topic)).partitions[0]!.primary === secondary, {
      what: `broker ${secondary} to lead ${topic}`,
    });
    const consumer = client.consumer({ group: 'sec-check', topic, fromBeginning: true, waitMs: 200 });
    const values: string[] = [];
    await waitFor(async () => {
      for (const record of await consumer.poll()) values.push(record.value?.toString() ?? '');
      return values.length >= 2;
    }, { what: 'the two acknowledged records' });
    expect(values).toEqual(['real-0', 'real-1']);
    await consumer.close();
    await cluster.broker(primary!).start();
  });

  it('refuses a heartbeat hijack; produce still reaches the real broker', async () => {
    const topic = 'sec-hijack';
    await client.admin.createTopic({ name: topic, partitions: 3, replicationFactor: 2 });
    const before = await client.admin.metadata();
    const victim = before.topics.find((t) => t.name === topic)!.partitions[0]!.primary!;
    const other = [...cluster.brokers.keys()].find((id) => id !== victim)!;
    const heartbeat = { id: victim, url: 'http://127.0.0.1:9', replicas: [] };
    const url = cluster.coordinatorUrl + COORDINATOR_ROUTES.brokerHeartbeat;
    expect(await refusal(track(anonymous()).post(url, heartbeat))).toBe('UNAUTHORIZED');
    // A member may speak only for itself...
    expect(await refusal(track(signedAs(`broker-${other}`, cluster.clusterSecret)).post(url, heartbeat))).toBe('FORBIDDEN');
    // ...and even the broker's own credential cannot move a live broker to another address.
    expect(await refusal(track(signedAs(`broker-${victim}`, cluster.clusterSecret)).post(url, heartbeat))).toBe('FORBIDDEN');

    const after = await client.admin.metadata();
    expect(after.brokers.find((b) => b.id === victim)).toEqual(before.brokers.find((b) => b.id === victim));
    const stored = await client.producer({ lingerMs: 0 }).send({ topic, partition: 0, value: 'still-here' });
    expect(stored).toMatchObject({ partition: 0, offset: 0 });
    expect((await client.admin.describeTopic(topic)).partitions[0]!.primary).toBe(victim);
  });

  it('refuses ISR changes, reassign-complete, drains, fake registrations and notifications from outsiders; the map is unchanged', async () => {
    const topic = 'sec-map';
    await client.admin.createTopic({ name: topic, partitions: 2, replicationFactor: 2 });
    const before = await client.admin.metadata();
    const partition = before.topics.find((t) => t.name === topic)!.partitions[0]!;
    const c = cluster.coordinatorUrl;
    const outsider = track(anonymous());
    const isr = { brokerId: partition.primary!, topic, partition: 0, epoch: partition.epoch, isr: [partition.primary!] };
    const other = track(signedAs(`broker-${partition.secondary!}`, cluster.clusterSecret));
    const wrongSecret = track(signedAs(`broker-${partition.primary!}`, WRONG_SECRET));
    const attempts: Array<[string, () => Promise<unknown>, string]> = [
      ['isr', () => outsider.post(c + COORDINATOR_ROUTES.isr, isr), 'UNAUTHORIZED'],
      ['isr signed by another broker', () => other.post(c + COORDINATOR_ROUTES.isr, isr), 'FORBIDDEN'],
      ['isr with a wrong secret', () => wrongSecret.post(c + COORDINATOR_ROUTES.isr, isr), 'UNAUTHORIZED'],
      ['reassign-complete', () => outsider.post(c + COORDINATOR_ROUTES.reassignComplete, { ...isr, isr: undefined, target: partition.secondary }), 'UNAUTHORIZED'],
      ['register', () => outsider.post(c + COORDINATOR_ROUTES.brokerRegister, { id: 99, url: 'http://127.0.0.1:9' }), 'UNAUTHORIZED'],
      ['drain', () => outsider.post(c + routePath(COORDINATOR_ROUTES.brokerDrain, { id: partition.primary! }), {}), 'UNAUTHORIZED'],
      ['metadata-changed', () => outsider.post(internalUrl(before, partition.primary!) + BROKER_ROUTES.metadataChanged, { version: 1_000_000 }), 'UNAUTHORIZED'],
    ];
    for (const [what, call, code] of attempts) expect([what, await refusal(call())]).toEqual([what, code]);
    const after = await client.admin.metadata();
    expect(mapOf(after)).toEqual(mapOf(before));
    const brokers = await client.admin.listBrokers();
    expect(brokers.map((b) => b.id).sort()).toEqual([...cluster.brokers.keys()].sort());
    expect(brokers.every((b) => !b.draining)).toBe(true);
    expect((await client.admin.clusterEvents(1_000)).filter((e) => e.type === 'broker_registered' && e.brokerId === 99)).toEqual([]);
    // Operators see the attempts: 401s by reason, 403s by the member that overstepped.
    const metrics = await (await fetch(`${c}/metrics`)).text();
    expect(counter(metrics, 'tessera_auth_failures_total{reason="cluster_missing"}')).toBeGreaterThanOrEqual(4);
    expect(counter(metrics, 'tessera_auth_failures_total{reason="cluster_bad_signature"}')).toBeGreaterThanOrEqual(1);
    expect(counter(metrics, `tessera_auth_denied_total{principal="broker-${partition.secondary!}"}`)).toBeGreaterThanOrEqual(1);
  });

  it('refuses a commit of a future generation; the real member keeps committing', async () => {
    const topic = 'sec-generation';
    await client.admin.createTopic({ name: topic, partitions: 1, replicationFactor: 2 });
    const producer = client.producer({ lingerMs: 0 });
    for (let i = 0; i < 3; i++) await producer.send({ topic, value: `v${i}` });
    const consumer = client.consumer({ group: 'sec-billing', topic, fromBeginning: true, waitMs: 200 });
    let seen = 0;
    await waitFor(async () => ((seen += (await consumer.poll()).length), seen >= 3), { what: 'three records' });
    await consumer.commit();
    const primary = (await client.admin.describeTopic(topic)).partitions[0]!.primary!;
    const primaryUrl = (await client.admin.metadata()).brokers.find((b) => b.id === primary)!.url;
    // The attack, as any caller of the data path could try it (with a client credential or none).
    const attack = { group: 'sec-billing', generation: Number.MAX_SAFE_INTEGER, memberId: 'x', offsets: [{ topic, partition: 0, offset: 0 }] };
    const answer = await track(anonymous())
      .post<{ results: Array<{ error?: { code: string } }> }>(primaryUrl + BROKER_ROUTES.commit, attack)
      .then((body) => body.results[0]!.error?.code ?? 'accepted', (error: { code?: string }) => String(error.code));
    expect(['UNAUTHORIZED', 'FORBIDDEN', 'GENERATION_MISMATCH']).toContain(answer);
    expect((await client.admin.groupLag('sec-billing'))[0]).toMatchObject({ committed: 3 });

    await producer.send({ topic, value: 'v3' });
    await waitFor(async () => (await consumer.poll()).length > 0, { what: 'the fourth record' });
    await consumer.commit();
    expect((await client.admin.groupLag('sec-billing'))[0]).toMatchObject({ committed: 4 });
    await consumer.close();
  });

  it('closes 400 connections that never finish their headers or bodies, and keeps serving', async () => {
    const { port } = new URL(cluster.broker(1).url);
    const sockets = await Promise.all(
      Array.from({ length: 400 }, async (_, i) => {
        const socket = net.connect(Number(port), '127.0.0.1');
        await once(socket, 'connect');
        // Half stop inside their headers, half inside a body they announced.
        socket.write(
          i % 2 === 0
            ? 'POST /fetch HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: '
            : 'POST /fetch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"parti',
        );
        socket.on('error', () => undefined);
        // Read what the server says (a 408), so its closing the connection is seen here.
        socket.resume();
        const closed = once(socket, 'close');
        return { socket, closed };
      }),
    );
    await waitFor(() => sockets.every(({ socket }) => socket.destroyed), { timeoutMs: 15_000, what: 'the server to close every slow connection' });
    await Promise.all(sockets.map(({ closed }) => closed));
    expect((await client.admin.clusterStatus()).brokers.filter((b) => b.alive)).toHaveLength(3);
    await client.admin.createTopic({ name: 'sec-after-slow', partitions: 1, replicationFactor: 1 });
    expect(await client.producer({ lingerMs: 0 }).send({ topic: 'sec-after-slow', value: 'ok' })).toMatchObject({ offset: 0 });
  });

  it('logs each malformed or refused request as one line without a stack', async () => {
    const broker = cluster.broker(2) as unknown as { logFile: string; url: string };
    const logFile = broker.logFile;
    const start = statSync(logFile).size;
    const requests = [
      ...Array.from({ length: 10 }, () => fetch(`${broker.url}/fetch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"partitions": [' })),
      ...Array.from({ length: 10 }, () => fetch(`${broker.url}/fetch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"partitions": 7}' })),
      ...Array.from({ length: 5 }, () => fetch(`${broker.url}/internal/replicate`, { method: 'POST', body: '{}' })),
    ];
    const statuses = await Promise.all(requests.map(async (r) => (await r).status));
    expect(statuses.every((status) => status >= 400 && status < 500)).toBe(true);
    await waitFor(() => refusedLines(logFile, start).length >= 25, { timeoutMs: 5_000, what: '25 log lines' });
    const lines = refusedLines(logFile, start);
    expect(lines).toHaveLength(25);
    for (const line of lines) {
      const entry = JSON.parse(line) as Record<string, unknown>;
      expect(entry.err).toBeUndefined();
      expect(line).not.toMatch(/stack|\\n\s+at /);
    }
  });
});

/** The value of one Prometheus sample line, 0 when absent. */
function counter(text: string, sample: string): number {
  const line = text.split('\n').find((l) => l.startsWith(sample + ' '));
  return line === undefined ? 0 : Number(line.slice(sample.length + 1));
}

/** The "request refused" lines a log file gained since byte `start`. */
function refusedLines(file: string, start: number): string[] {
  return readFileSync(file, 'utf8')
    .slice(start)
    .split('\n')
    .filter((line) => line.includes('"request refused"'));
}

describe.skipIf(launcher !== 'processes')('a cluster with TLS on every hop', () => {
  let cluster: Cluster;
  const clients: JsonHttpClient[] = [];
  const track = (c: JsonHttpClient) => (clients.push(c), c);

  beforeAll(async () => {
    cluster = await startCluster({
      name: 'security-tls',
      brokers: 2,
      tls: true,
      serviceEnv: { TESSERA_HEADERS_TIMEOUT_MS: '1000', TESSERA_REQUEST_TIMEOUT_MS: '2000' },
    });
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await cluster?.stop();
  });

  it('serves a client that trusts the cluster CA, end to end', async () => {
    expect(cluster.coordinatorUrl.startsWith('https://')).toBe(true);
    const client = cluster.client({ requestTimeoutMs: 3_000 });
    await client.admin.createTopic({ name: 'tls-orders', partitions: 2, replicationFactor: 2 });
    const producer = client.producer({ lingerMs: 0 });
    for (let i = 0; i < 4; i++) await producer.send({ topic: 'tls-orders', key: `k${i}`, value: `v${i}` });
    const consumer = client.consumer({ group: 'tls-group', topic: 'tls-orders', fromBeginning: true, waitMs: 200 });
    const values: string[] = [];
    await waitFor(async () => (values.push(...(await consumer.poll()).map((r) => r.value?.toString() ?? '')), values.length >= 4), { what: 'four records' });
    expect(values.sort()).toEqual(['v0', 'v1', 'v2', 'v3']);
    await consumer.close();
  });

  it('refuses a plaintext client', async () => {
    const plain = cluster.coordinatorUrl.replace('https:', 'http:');
    await expect(fetch(`${plain}/health`, { signal: AbortSignal.timeout(5_000) })).rejects.toThrow();
    await expect(fetch(`${cluster.broker(1).url.replace('https:', 'http:')}/health`, { signal: AbortSignal.timeout(5_000) })).rejects.toThrow();
  });

  it('closes connections that never finish their TLS handshake', async () => {
    const { port } = new URL(cluster.coordinatorUrl);
    const sockets = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const socket = net.connect(Number(port), '127.0.0.1');
        await once(socket, 'connect');
        // Half send nothing; half start a ClientHello (a TLS record header) and stop.
        if (i % 2 === 1) socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
        socket.on('error', () => undefined);
        socket.resume();
        return socket;
      }),
    );
    await waitFor(() => sockets.every((socket) => socket.destroyed), { timeoutMs: 15_000, what: 'the server to close every stalled handshake' });
    const client = cluster.client({ requestTimeoutMs: 3_000 });
    expect((await client.admin.clusterStatus()).brokers.filter((b) => b.alive)).toHaveLength(2);
  });

  it('refuses a client that trusts another CA, or only the system CAs', async () => {
    const otherCa = makeCertificates(path.join(cluster.dataDir, 'other-ca'), []).caFile;
    const wrong = track(anonymous({ ca: readFileSync(otherCa), rejectUnauthorized: true }));
    expect(await refusal(wrong.get(`${cluster.coordinatorUrl}/health`))).toMatch(/CERT|SIGNATURE|VERIFY/);
    expect(await refusal(track(anonymous()).get(`${cluster.broker(1).url}/health`))).toMatch(/CERT|SIGNATURE|VERIFY/);
  });

  it('keeps out a broker started with a wrong cluster secret, though its certificate is good', async () => {
    const made = makeCertificates(path.join(cluster.dataDir, 'tls'), [{ name: 'broker-9', hosts: ['127.0.0.1', 'localhost'] }]);
    const port = await freePort();
    const intruder = new ServiceProcess({
      name: 'broker-9',
      role: 'broker',
      url: `https://127.0.0.1:${port}`,
      logDir: path.join(cluster.dataDir, 'logs'),
      env: { TESSERA_CLUSTER_SECRET: WRONG_SECRET },
      tls: cluster.tls,
      args: [
        '--id', '9', '--port', String(port), '--host', '127.0.0.1', '--data-dir', path.join(cluster.dataDir, 'broker-9'),
        '--coordinator', cluster.coordinatorUrl, '--heartbeat-ms', '200',
        '--tls-cert', made.services['broker-9']!.certFile, '--tls-key', made.services['broker-9']!.keyFile, '--tls-ca', made.caFile,
      ],
    });
    await intruder.start({ waitReady: false });
    try {
      await waitFor(() => readFileSync(intruder.logFile, 'utf8').includes('cluster credential refused'), {
        what: 'the coordinator to refuse the intruder',
      });
      const client = cluster.client({ requestTimeoutMs: 3_000 });
      expect((await client.admin.listBrokers()).map((b) => b.id).sort()).toEqual([1, 2]);
      expect((await client.admin.metadata()).brokers.map((b) => b.id)).not.toContain(9);
    } finally {
      await intruder.stop();
    }
  });

  it('lets no one replicate without the cluster secret, not even over a verified TLS link', async () => {
    const client = cluster.client({ requestTimeoutMs: 3_000 });
    await client.admin.createTopic({ name: 'tls-replica', partitions: 1, replicationFactor: 2 });
    await client.producer({ lingerMs: 0 }).send({ topic: 'tls-replica', value: 'real' });
    const metadata = await client.admin.metadata();
    const { primary, secondary, epoch } = metadata.topics.find((t) => t.name === 'tls-replica')!.partitions[0]!;
    const forged = forgedExchange({ topic: 'tls-replica', primaryId: primary!, epoch, prevEpoch: epoch, baseOffset: 1 }, 'forged');
    const url = internalUrl(metadata, secondary!) + BROKER_ROUTES.replicate;
    expect(await refusal(replicateAs(url, forged, { node: `broker-${primary!}`, secret: WRONG_SECRET, tls: cluster.tls }))).toBe('UNAUTHORIZED');
    const consumer = client.consumer({ group: 'tls-check', topic: 'tls-replica', fromBeginning: true, waitMs: 200 });
    await client.producer({ lingerMs: 0 }).send({ topic: 'tls-replica', value: 'real-2' });
    const values: string[] = [];
    await waitFor(async () => (values.push(...(await consumer.poll()).map((r) => r.value?.toString() ?? '')), values.length >= 2), { what: 'two records' });
    expect(values).toEqual(['real', 'real-2']);
    await consumer.close();
  });
});
