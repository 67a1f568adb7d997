// Promise 6: bad input never crashes a service or corrupts data. Sends malformed, invalid and
// oversized requests as a plain HTTP client would, checks each 4xx error body, and then checks
// that every service still serves and that nothing of a refused batch was stored. The calls
// carry the admin's token, so they reach validation (refusals of credentials: auth.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cluster, startCluster } from './harness/cluster.js';

let cluster: Cluster;
let topic: string;
let primaryUrl: string;
let partition0Primary: number;
let auth: Record<string, string>;

beforeAll(async () => {
  cluster = await startCluster({ name: 'bad-input', maxValueBytes: 1024 });
  auth = await cluster.adminHeaders();
  topic = `bad-${Date.now()}`;
  const client = cluster.client();
  const described = await client.admin.createTopic({ name: topic, partitions: 2 });
  partition0Primary = described.partitions[0].primary!;
  primaryUrl = cluster.broker(partition0Primary).url;
});

afterAll(async () => {
  await cluster?.stop();
});

async function call(url: string, method: string, body?: string | Uint8Array, contentType = 'application/json') {
  const response = await fetch(url, {
    method,
    body,
    headers: body === undefined ? auth : { ...auth, 'content-type': contentType },
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

function expectError(result: { status: number; body: any }, status: number, code: string) {
  expect(result.status).toBe(status);
  expect(result.body.error.code).toBe(code);
  expect(typeof result.body.error.message).toBe('string');
  expect(typeof result.body.error.retriable).toBe('boolean');
}

describe('the coordinator', () => {
  it('answers malformed JSON with 400 INVALID_REQUEST', async () => {
    expectError(await call(`${cluster.coordinatorUrl}/topics`, 'POST', '{"name": "x", '), 400, 'INVALID_REQUEST');
  });

  it.each([
    [{ name: 'has space', partitions: 1 }],
    [{ name: 'ok-name', partitions: 0 }],
    [{ name: 'ok-name', partitions: 1025 }],
    [{ name: 'ok-name', partitions: '3' }],
    [{ name: 'ok-name', partitions: 1, replicationFactor: 3 }],
    [[1, 2, 3]],
    [null],
  ])('refuses the topic %j with 400', async (body) => {
    expectError(await call(`${cluster.coordinatorUrl}/topics`, 'POST', JSON.stringify(body)), 400, 'INVALID_REQUEST');
  });

  it('answers an unknown topic with 404 TOPIC_NOT_FOUND', async () => {
    expectError(await call(`${cluster.coordinatorUrl}/topics/no-such-topic`, 'GET'), 404, 'TOPIC_NOT_FOUND');
    const routed = await call(`${cluster.coordinatorUrl}/topics/no-such-topic/records`, 'POST', JSON.stringify({ records: [{ value: 'v' }] }));
    expectError(routed, 404, 'TOPIC_NOT_FOUND');
  });

  it('refuses a body over the request limit with 413', async () => {
    const huge = new Uint8Array(17 * 1024 * 1024).fill(0x20);
    expectError(await call(`${cluster.coordinatorUrl}/topics`, 'POST', huge), 413, 'PAYLOAD_TOO_LARGE');
  });

  it('routes a plain HTTP produce by key to the right partition', async () => {
    const result = await call(
      `${cluster.coordinatorUrl}/topics/${topic}/records`,
      'POST',
      JSON.stringify({ records: [{ key: 'hello', value: 'world' }] }),
    );
    expect(result.status).toBe(200);
    // murmurhash3_32("hello", seed 0) = 0x248bfa47, odd, so partition 1 of 2.
    expect(result.body.offsets).toEqual([{ partition: 1, offset: 0 }]);
  });
});

describe('a broker', () => {
  const produceUrl = (partition: number | string) => `${primaryUrl}/topics/${topic}/partitions/${partition}/records`;

  it('refuses malformed and invalid produce bodies with 400', async () => {
    expectError(await call(produceUrl(0), 'POST', 'not json'), 400, 'INVALID_REQUEST');
    expectError(await call(produceUrl(0), 'POST', JSON.stringify({ records: [] })), 400, 'INVALID_REQUEST');
    expectError(await call(produceUrl(0), 'POST', JSON.stringify({ records: [{ value: 1 }] })), 400, 'INVALID_REQUEST');
    expectError(await call(produceUrl('x'), 'POST', JSON.stringify({ records: [{ value: 'v' }] })), 400, 'INVALID_REQUEST');
  });

  it('refuses a whole batch holding one value over the limit, storing none of it', async () => {
    const before = await call(`${primaryUrl}/fetch`, 'POST', JSON.stringify({ partitions: [{ topic, partition: 0, offset: 0 }] }));
    const hw = before.body.partitions[0].highWatermark;
    const batch = { records: [{ value: 'small' }, { value: 'x'.repeat(2048) }, { value: 'small too' }] };
    expectError(await call(produceUrl(0), 'POST', JSON.stringify(batch)), 413, 'PAYLOAD_TOO_LARGE');
    const after = await call(`${primaryUrl}/fetch`, 'POST', JSON.stringify({ partitions: [{ topic, partition: 0, offset: 0 }] }));
    expect(after.body.partitions[0].highWatermark).toBe(hw);
  });

  it('answers a broker that does not lead the partition with 421 NOT_PRIMARY naming the primary', async () => {
    const other = [...cluster.brokers.entries()].find(([id]) => id !== partition0Primary)![1];
    const result = await call(`${other.url}/topics/${topic}/partitions/0/records`, 'POST', JSON.stringify({ records: [{ value: 'v' }] }));
    expectError(result, 421, 'NOT_PRIMARY');
    expect(result.body.error.primary).toMatchObject({ id: partition0Primary });
  });

  it('refuses invalid fetches and replication with a stale epoch', async () => {
    expectError(await call(`${primaryUrl}/fetch`, 'POST', JSON.stringify({ partitions: [{ topic, partition: 0, offset: -1 }] })), 400, 'INVALID_REQUEST');
    expectError(await call(`${primaryUrl}/fetch`, 'POST', '{'), 400, 'INVALID_REQUEST');
    expectError(await call(`${primaryUrl}/commit`, 'POST', JSON.stringify({ group: 'g', offsets: [] })), 400, 'INVALID_REQUEST');
  });

  it('refuses a body over the request limit with 413', async () => {
    const huge = new Uint8Array(17 * 1024 * 1024).fill(0x20);
    expectError(await call(produceUrl(0), 'POST', huge), 413, 'PAYLOAD_TOO_LARGE');
  });

  it('still serves after all of the above, and so does every other service', async () => {
    for (const service of [cluster.coordinator, ...cluster.brokers.values()]) {
      expect(service.running).toBe(true);
      expect((await call(`${service.url}/health`, 'GET')).status).toBe(200);
    }
    const ok = await call(produceUrl(0), 'POST', JSON.stringify({ records: [{ key: 'k', value: 'fine' }] }));
    expect(ok.status).toBe(200);
    expect(ok.body.count).toBe(1);
  });
});
