import { afterEach, describe, expect, it } from 'vitest';
import { batchSize, iterateBatches, partitionForKey, TesseraError } from '@tessera/protocol';
import { TesseraClient } from '../client.js';
import {
  closeAfterTest,
  closeTestResources,
  errorAnswer,
  metadataFor,
  partitionError,
  producedPartitions,
  storingBroker,
  storingProduceHandler,
  stub,
  StubServer,
  until,
  type StoredLogs,
} from '../test-support/stub-server.js';

const FAST_RETRY = { initialMs: 1, maxMs: 10, jitter: 0 };
afterEach(closeTestResources);

function client(coordinator: StubServer, options: { metadataMaxAgeMs?: number; transport?: 'stream' | 'http' } = {}): TesseraClient {
  const c = new TesseraClient({ coordinator: coordinator.url, retry: FAST_RETRY, requestTimeoutMs: 2_000, ...options });
  closeAfterTest(() => c.close());
  return c;
}

/** A coordinator stub whose map has topic `t`, one partition, on one broker stub. */
async function oneBrokerTopic(): Promise<{ coordinator: StubServer; broker: StubServer }> {
  const coordinator = await stub('coordinator');
  const broker = await stub('broker');
  coordinator.on('GET', '/metadata', () => metadataFor('t', [{ id: 1, url: broker.url }], [1]));
  return { coordinator, broker };
}

/**
 * A coordinator stub whose map has topic `t` on broker 1 at epoch 0 until the client deletes and
 * makes it again, then on broker 2 at epoch 5. `answer` sees each map fetch (the map, whether the
 * topic was made again, how many fetches so far) and may hold or refuse it.
 */
async function remadeTopic(answer: (map: unknown, remade: boolean, fetches: number) => unknown = (map) => map) {
  const coordinator = await stub('coordinator');
  const first = await stub('broker-1');
  const second = await stub('broker-2');
  const brokers = [
    { id: 1, url: first.url },
    { id: 2, url: second.url },
  ];
  let remade = false;
  coordinator.on('GET', '/metadata', () =>
    answer(remade ? metadataFor('t', brokers, [2], 2, 5) : metadataFor('t', brokers, [1], 1, 0), remade, coordinator.calls('GET', '/metadata').length),
  );
  coordinator.on('DELETE', '/topics/:topic', () => ({}));
  coordinator.on('POST', '/topics', () => {
    remade = true;
    return { name: 't', partitions: [] };
  });
  const c = client(coordinator, { metadataMaxAgeMs: 60_000 });
  return { coordinator, first, second, oldLogs: storingBroker(first), newLogs: storingBroker(second), c, producer: c.producer({ lingerMs: 0 }) };
}

describe('Producer', () => {
  it('sends HTTP requests to a broker that offers no data stream, asking for one once, and never with transport http', async () => {
    const { coordinator, broker } = await oneBrokerTopic();
    // A broker of an earlier release: no such route, so the upgrade is answered 404.
    broker.on('GET', '/data-stream', () => errorAnswer('NOT_FOUND', 'no route GET /data-stream'));
    const logs = storingBroker(broker);
    const producer = client(coordinator).producer();
    for (let i = 0; i < 3; i++) await producer.send({ topic: 't', value: `v${i}` });
    expect(logs.get(0)!.map((r) => r.value)).toEqual(['v0', 'v1', 'v2']);
    expect(broker.calls('GET', '/data-stream')).toHaveLength(1);
    expect(broker.calls('POST', '/produce')).toHaveLength(3);

    const overHttp = client(coordinator, { transport: 'http' }).producer();
    await overHttp.send({ topic: 't', value: 'v3' });
    expect(broker.calls('GET', '/data-stream')).toHaveLength(1);
    expect(broker.calls('POST', '/produce')).toHaveLength(4);
  });

  it('batches concurrent sends into few requests per partition, routed by key hash, offsets in send order', async () => {
    // Proves batching and routing: 300 keyed sends issued at once arrive as a handful of requests per partition.
    const coordinator = await stub('coordinator');
    const broker = await stub('broker');
    coordinator.on('GET', '/metadata', () => metadataFor('t', [{ id: 1, url: broker.url }], [1, 1, 1]));
    const logs = storingBroker(broker);
    const producer = client(coordinator).producer({ lingerMs: 50 });

    const records = Array.from({ length: 300 }, (_, i) => ({ topic: 't', key: `k${i % 17}`, value: `v${i}` }));
    const results = await Promise.all(records.map((r) => producer.send(r)));

    for (const [i, result] of results.entries()) {
      expect(result.partition).toBe(partitionForKey(records[i].key, 3));
      expect(logs.get(result.partition)![result.offset].value).toBe(`v${i}`);
    }
    // One request per broker round trip carries all three partitions.
    const requests = broker.requests.length;
    expect(requests).toBeGreaterThanOrEqual(1);
    expect(requests).toBeLessThanOrEqual(3);
    expect(producedPartitions(broker.requests[0]!).map((p) => p.partition).sort()).toEqual([0, 1, 2]);
    // Within a partition, send order is storage order.
    for (const log of logs.values()) {
      const indexes = log.map((r) => Number(r.value!.slice(1)));
      expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
    }
  });

  it('respects maxBatchRecords and spreads keyless records over partitions', async () => {
    // Proves batch size bound and that keyless records are not all sent to one partition.
    const coordinator = await stub('coordinator');
    const broker = await stub('broker');
    coordinator.on('GET', '/metadata', () => metadataFor('t', [{ id: 1, url: broker.url }], [1, 1]));
    const logs = storingBroker(broker);
    const producer = client(coordinator).producer({ lingerMs: 20, maxBatchRecords: 10 });
    await producer.sendBatch(Array.from({ length: 100 }, (_, i) => ({ topic: 't', value: `v${i}` })));
    for (const request of broker.requests) {
      for (const { records } of producedPartitions(request)) expect(records.length).toBeLessThanOrEqual(10);
    }
    expect([...logs.values()].reduce((n, log) => n + log.length, 0)).toBe(100);
    expect(logs.size).toBe(2);
  });

  it('gives every record of a very large batch its own offset', async () => {
    // Proves the metadata of records past the shared per-index functions (10,000) is right too.
    const { coordinator, broker } = await oneBrokerTopic();
    const logs = storingBroker(broker);
    const producer = client(coordinator).producer({ maxBatchRecords: 12_000 });
    const results = await Promise.all(Array.from({ length: 12_000 }, (_, i) => producer.send({ topic: 't', partition: 0, value: `v${i}` })));
    expect(broker.requests).toHaveLength(1);
    expect(results.map((r) => r.offset)).toEqual(Array.from({ length: 12_000 }, (_, i) => i));
    expect(logs.get(0)![11_999]!.value).toBe('v11999');
  });

  it('respects maxBatchBytes: no batch is larger unless it holds one record that is', async () => {
    // Proves the byte bound of a batch (records are written into batches as they are sent) and that records keep their order across batches.
    const { coordinator, broker } = await oneBrokerTopic();
    const logs = storingBroker(broker);
    const producer = client(coordinator).producer({ lingerMs: 20, maxBatchBytes: 2048 });
    const sizes = [...Array.from({ length: 40 }, () => 300), 5000, ...Array.from({ length: 10 }, () => 300)];
    await producer.sendBatch(sizes.map((size, i) => ({ topic: 't', key: 'k', value: Buffer.alloc(size, i) })));
    const batches = broker.requests.flatMap((request) => request.parts!.flatMap((part) => [...iterateBatches(part)].map(({ header }) => header)));
    expect(batches.reduce((n, header) => n + header.recordCount, 0)).toBe(sizes.length);
    for (const header of batches) {
      if (header.recordCount > 1) expect(batchSize(header)).toBeLessThanOrEqual(2048);
    }
    expect(batches.some((header) => header.recordCount === 1 && batchSize(header) > 5000)).toBe(true);
    expect(logs.get(0)!.map((r) => r.record.value![0])).toEqual(sizes.map((_, i) => i));
  });

  it('copies a record into its batch before send() returns: the caller may reuse its buffer at once', async () => {
    // Proves the copy-on-send promise of send(): a buffer overwritten right after send() does not change what is stored.
    const { coordinator, broker } = await oneBrokerTopic();
    const logs = storingBroker(broker);
    const producer = client(coordinator).producer({ lingerMs: 20 });
    await producer.send({ topic: 't', value: 'first' }); // the topic's map is cached from here on
    const buffer = Buffer.from('original');
    const sent = producer.send({ topic: 't', key: buffer, value: buffer });
    buffer.fill('x');
    await sent;
    const stored = logs.get(0)![1]!.record;
    expect(stored.key!.toString()).toBe('original');
    expect(stored.value!.toString()).toBe('original');
  });

  it('keeps the order of a partition across retriable failures (one request in flight per partition)', async () => {
    // Proves ordering under retries: the first requests fail with a retriable error; later records never overtake them.
    const { coordinator, broker } = await oneBrokerTopic();
    const logs: StoredLogs = new Map();
    let failuresLeft = 3;
    broker.on('POST', '/produce', storingProduceHandler(logs, () => (failuresLeft-- > 0 ? partitionError('NOT_ENOUGH_REPLICAS') : undefined)));
    const producer = client(coordinator).producer({ lingerMs: 0, maxBatchRecords: 4 });
    const sends = Array.from({ length: 40 }, (_, i) => producer.send({ topic: 't', key: 'same', value: `v${i}` }));
    const results = await Promise.all(sends);
    expect(logs.get(0)!.map((r) => r.value)).toEqual(Array.from({ length: 40 }, (_, i) => `v${i}`));
    expect(results.map((r) => r.offset)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    // Never two requests at once: every request after a failure starts with the failed batch's first record.
    const firsts = broker.requests.map((r) => producedPartitions(r)[0]!.records[0]!.value!.toString());
    expect(firsts.slice(0, 4)).toEqual(['v0', 'v0', 'v0', 'v0']);
  });

  it('refreshes metadata on NOT_PRIMARY and goes to the new primary', async () => {
    // Proves failover handling: the old primary refuses, the coordinator's map moves the partition, the send lands on the new primary.
    const coordinator = await stub('coordinator');
    const oldPrimary = await stub('broker-1');
    const newPrimary = await stub('broker-2');
    const brokers = [
      { id: 1, url: oldPrimary.url },
      { id: 2, url: newPrimary.url },
    ];
    let failedOver = false;
    coordinator.on('GET', '/metadata', () => (failedOver ? metadataFor('t', brokers, [2], 2, 1) : metadataFor('t', brokers, [1], 1, 0)));
    oldPrimary.on('POST', '/produce', () => {
      failedOver = true;
      return { partitions: [{ topic: 't', partition: 0, ...partitionError('NOT_PRIMARY', 'not primary', { primary: { id: 2, url: newPrimary.url } }) }] };
    });
    const logs = storingBroker(newPrimary);
    const producer = client(coordinator).producer({ lingerMs: 0 });
    const result = await producer.send({ topic: 't', key: 'a', value: 'x' });
    expect(result).toEqual({ topic: 't', partition: 0, offset: 0 });
    expect(logs.get(0)!.map((r) => r.value)).toEqual(['x']);
    expect(oldPrimary.requests.length).toBe(1);
    expect(coordinator.calls('GET', '/metadata').length).toBeGreaterThanOrEqual(2);
  });

  it('names the epoch of its map in each batch, and after this client makes a topic again routes by a map fetched since, even one fetched while the change was made', async () => {
    let releaseSlowMap: () => void = () => undefined;
    const { coordinator, first, second, oldLogs, newLogs, c, producer } = await remadeTopic(async (map, remade, fetches) => {
      // The second fetch starts before the topic is made again and is answered after.
      if (!remade && fetches === 2) await new Promise<void>((resolve) => (releaseSlowMap = resolve));
      return map;
    });
    await producer.send({ topic: 't', key: 'a', value: 'old' });
    expect(first.calls('POST', '/produce')[0]!.body.partitions[0]).toMatchObject({ topic: 't', partition: 0, epoch: 0 });

    const slow = c.admin.metadata();
    await until(() => coordinator.calls('GET', '/metadata').length === 2, 'a map fetch under way');
    await c.admin.deleteTopic('t');
    await c.admin.createTopic({ name: 't', partitions: 1, replicationFactor: 1 });
    // Sent while the older fetch is still out: it must not route by that fetch's answer.
    const sending = producer.send({ topic: 't', key: 'a', value: 'new' });
    await until(() => coordinator.calls('GET', '/metadata').length === 3, 'a map fetched after the change');
    releaseSlowMap();
    await slow;
    await sending;
    expect(oldLogs.get(0)!.map((r) => r.value)).toEqual(['old']);
    expect(newLogs.get(0)!.map((r) => r.value)).toEqual(['new']);
    expect(second.calls('POST', '/produce')[0]!.body.partitions[0]).toMatchObject({ topic: 't', partition: 0, epoch: 5 });
  });

  it('routes a topic it made again by a fresh map even when the first fetch after the change fails', async () => {
    let failures = 0;
    const { c, producer, oldLogs, newLogs } = await remadeTopic((map, remade) => (remade && failures++ === 0 ? errorAnswer('UNAVAILABLE', 'a blip (test)') : map));
    await producer.send({ topic: 't', key: 'a', value: 'old' });
    await c.admin.deleteTopic('t');
    await c.admin.createTopic({ name: 't', partitions: 1, replicationFactor: 1 });
    await producer.send({ topic: 't', key: 'a', value: 'new' });
    expect(oldLogs.get(0)!.map((r) => r.value)).toEqual(['old']);
    expect(newLogs.get(0)!.map((r) => r.value)).toEqual(['new']);
    expect(failures).toBeGreaterThanOrEqual(2);
  });

  it('produces to a broker of a release that refuses partition epochs: the refused request is sent again without them, and so are the next', async () => {
    const { coordinator, broker } = await oneBrokerTopic();
    const logs: StoredLogs = new Map();
    const store = storingProduceHandler(logs);
    let refusal = 'some other problem';
    broker.on('POST', '/produce', (r) => {
      if (r.body.partitions.some((p: { epoch?: number }) => p.epoch !== undefined)) {
        // As a broker's strict validation answers (parseOrThrow): the issue says what is wrong.
        return errorAnswer('INVALID_REQUEST', `invalid frame head: ${refusal}`, { issues: [{ path: 'partitions.0', message: refusal }] });
      }
      return store(r);
    });
    const producer = client(coordinator).producer({ lingerMs: 0 });
    // A refusal for another reason is the call's own: not sent again without epochs.
    await expect(producer.send({ topic: 't', value: 'refused' })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    refusal = 'Unrecognized key: "epoch"';
    await producer.send({ topic: 't', value: 'first' });
    await producer.send({ topic: 't', value: 'second' });
    expect(logs.get(0)!.map((r) => r.value)).toEqual(['first', 'second']);
    expect(broker.calls('POST', '/produce').map((r) => r.body.partitions[0].epoch)).toEqual([0, 0, undefined, undefined]);
  });

  it('after making a topic while the coordinator then stops answering, produces to its other topics by the cached map, and to that one only by a fresh map', async () => {
    const { coordinator, broker } = await oneBrokerTopic();
    const logs = storingBroker(broker);
    let down = false;
    coordinator.on('GET', '/metadata', () => (down ? errorAnswer('UNAVAILABLE', 'down (test)') : metadataFor('t', [{ id: 1, url: broker.url }], [1])));
    coordinator.on('POST', '/topics', () => {
      down = true;
      return { name: 'other', partitions: [] };
    });
    const c = client(coordinator, { metadataMaxAgeMs: 60_000 });
    const producer = c.producer({ lingerMs: 0 });
    await producer.send({ topic: 't', value: 'before' });
    await c.admin.createTopic({ name: 'other', partitions: 1, replicationFactor: 1 });
    const asked = coordinator.calls('GET', '/metadata').length;
    for (let i = 0; i < 10; i++) await producer.send({ topic: 't', value: `after-${i}` });
    expect(logs.get(0)).toHaveLength(11);
    // At most one try after the change (in the background); the cached map serves the rest.
    expect(coordinator.calls('GET', '/metadata').length - asked).toBeLessThanOrEqual(1);
    // The cached map predates the topic just made: it is not routed by the cache's view of it.
    await expect(producer.send({ topic: 'other', value: 'x' })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  it('sends to a partition the cached map shows offline once it has a primary again, and meanwhile to the others', async () => {
    // Proves an offline partition in the map does not stop the producer: its records wait for a primary, the other partition's go at once.
    const coordinator = await stub('coordinator');
    const broker = await stub('broker');
    let offline = true;
    coordinator.on('GET', '/metadata', () => {
      const map = metadataFor('t', [{ id: 1, url: broker.url }], [1, 1]);
      if (offline) (map.topics[0]!.partitions[1] as { primary: number | null }).primary = null;
      return map;
    });
    const logs = storingBroker(broker);
    const c = client(coordinator, { metadataMaxAgeMs: 50 });
    const producer = c.producer();
    const toOffline = producer.send({ topic: 't', partition: 1, value: 'waits' });
    const toOnline = producer.send({ topic: 't', partition: 0, value: 'goes' });
    expect(await toOnline).toMatchObject({ partition: 0, offset: 0 });
    offline = false;
    expect(await toOffline).toMatchObject({ partition: 1, offset: 0 });
    expect(logs.get(1)!.map((r) => r.value)).toEqual(['waits']);
  });

  it('rejects with the TesseraError of a non-retriable error, without retrying', async () => {
    // Proves non-retriable errors end delivery at once and reach the caller typed.
    const { coordinator, broker } = await oneBrokerTopic();
    broker.on('POST', '/produce', () => errorAnswer('PAYLOAD_TOO_LARGE', 'request too large'));
    const producer = client(coordinator).producer({ lingerMs: 0 });
    const error = await producer.send({ topic: 't', value: 'x' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TesseraError);
    expect((error as TesseraError).code).toBe('PAYLOAD_TOO_LARGE');
    expect(broker.requests.length).toBe(1);
  });

  it('gives up with TIMEOUT after deliveryTimeoutMs of retriable errors', async () => {
    // Proves retries are bounded by the delivery timeout.
    const { coordinator, broker } = await oneBrokerTopic();
    broker.on('POST', '/produce', storingProduceHandler(new Map(), () => partitionError('NOT_ENOUGH_REPLICAS')));
    const producer = client(coordinator).producer({ lingerMs: 0, deliveryTimeoutMs: 200 });
    const error = await producer.send({ topic: 't', value: 'x' }).catch((e: unknown) => e);
    expect((error as TesseraError).code).toBe('TIMEOUT');
    expect((error as Error).message).toContain('NOT_ENOUGH_REPLICAS');
    expect(broker.requests.length).toBeGreaterThan(1);
  });

  it('rejects records for an unknown topic or partition, and invalid records, before sending', async () => {
    // Proves client-side checks give clear, typed errors.
    const { coordinator, broker } = await oneBrokerTopic();
    const producer = client(coordinator).producer();
    await expect(producer.send({ topic: 'nope', value: 'x' })).rejects.toMatchObject({ code: 'TOPIC_NOT_FOUND' });
    await expect(producer.send({ topic: 't', value: 'x', partition: 5 })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    await expect(producer.send({ topic: 'bad name', value: 'x' })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    await expect(producer.send({ topic: 't', value: 42 as unknown as string })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    expect(broker.requests.length).toBe(0);
  });

  it('keeps producing from the cached map while the coordinator is down', async () => {
    // Proves promise 5 on the client side: once the map is cached, produce needs no coordinator.
    const { coordinator, broker } = await oneBrokerTopic();
    const logs = storingBroker(broker);
    const producer = client(coordinator, { metadataMaxAgeMs: 0 }).producer({ lingerMs: 0 });
    await producer.send({ topic: 't', value: 'before' });
    await coordinator.close();
    const result = await producer.send({ topic: 't', value: 'after' });
    expect(result.offset).toBe(1);
    expect(logs.get(0)!.map((r) => r.value)).toEqual(['before', 'after']);
  });

  it('waits for room when the buffer is full, and flush() waits for everything sent', async () => {
    // Proves the buffer bound does not lose or reorder records.
    const { coordinator, broker } = await oneBrokerTopic();
    const logs = storingBroker(broker);
    const producer = client(coordinator).producer({ lingerMs: 1, maxBufferedRecords: 3 });
    const sends = Array.from({ length: 30 }, (_, i) => producer.send({ topic: 't', key: 'k', value: `v${i}` }));
    await producer.flush();
    expect(logs.get(0)!.length).toBe(30);
    for (const request of broker.requests) {
      for (const { records } of producedPartitions(request)) expect(records.length).toBeLessThanOrEqual(3);
    }
    expect((await Promise.all(sends)).map((r) => r.offset)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    await producer.close();
    await expect(producer.send({ topic: 't', value: 'late' })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
  });

  it('bounds the bytes buffered as well as the records: a send waits while the records out hold maxBufferedBytes', async () => {
    const { coordinator, broker } = await oneBrokerTopic();
    const logs: StoredLogs = new Map();
    const store = storingProduceHandler(logs);
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    // The broker holds every answer until the test lets them go.
    broker.on('POST', '/produce', async (request) => {
      await released;
      return store(request);
    });
    const producer = client(coordinator, { transport: 'http' }).producer({ maxBufferedBytes: 3_000 });
    const value = Buffer.alloc(1_000, 7);
    const sends = Array.from({ length: 5 }, (_, i) => producer.send({ topic: 't', key: `k${i}`, value }));
    await until(() => broker.calls('POST', '/produce').length === 1, 'the first request');
    await new Promise((resolve) => setTimeout(resolve, 50));
    // Two records (about 2,000 bytes) are out; the third would pass 3,000: it and the rest wait.
    const out = broker.calls('POST', '/produce').flatMap((request) => producedPartitions(request).flatMap((p) => p.records));
    expect(out).toHaveLength(2);
    release();
    await Promise.all(sends);
    expect(logs.get(0)!.map((r) => r.key)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4']);
    // A record larger than the bound goes alone.
    await producer.send({ topic: 't', value: Buffer.alloc(5_000) });
    expect(logs.get(0)).toHaveLength(6);
  });

  it('keeps send order when a send made in answer to an acknowledgement meets sends still waiting for room', async () => {
    // A freed slot goes to the oldest waiting send; a send made meanwhile queues behind it, never before.
    const { coordinator, broker } = await oneBrokerTopic();
    const logs = storingBroker(broker);
    const producer = client(coordinator).producer({ maxBufferedRecords: 10 });
    const sends = Array.from({ length: 30 }, (_, i) => producer.send({ topic: 't', key: 'k', value: `v${i}` }));
    const answered = sends[0]!.then(() => producer.send({ topic: 't', key: 'k', value: 'answer' }));
    await Promise.all([...sends, answered]);
    expect(logs.get(0)!.map((r) => r.value)).toEqual([...Array.from({ length: 30 }, (_, i) => `v${i}`), 'answer']);

    const tight = client(coordinator).producer({ maxBufferedRecords: 1 });
    const first = tight.send({ topic: 't', key: 'k', value: 'a1' });
    const waiting = [tight.send({ topic: 't', key: 'k', value: 'a2' }), tight.send({ topic: 't', key: 'k', value: 'a3' })];
    const late = first.then(() => tight.send({ topic: 't', key: 'k', value: 'c' }));
    await Promise.all([first, ...waiting, late]);
    expect(logs.get(0)!.slice(31).map((r) => r.value)).toEqual(['a1', 'a2', 'a3', 'c']);
  });

  it('keeps send order when the first send to a topic waits for its map and the coordinator fails once', async () => {
    const coordinator = await stub('coordinator');
    const broker = await stub('broker');
    let metadataCalls = 0;
    coordinator.on('GET', '/metadata', () =>
      ++metadataCalls === 1 ? errorAnswer('UNAVAILABLE', 'not yet') : metadataFor('t', [{ id: 1, url: broker.url }], [1]),
    );
    const logs = storingBroker(broker);
    // The first send retries its map after 100 ms; the second is sent in between.
    const slowRetry = new TesseraClient({ coordinator: coordinator.url, retry: { initialMs: 100, maxMs: 100, jitter: 0 }, requestTimeoutMs: 2_000 });
    closeAfterTest(() => slowRetry.close());
    const producer = slowRetry.producer();
    const a = producer.send({ topic: 't', key: 'k', value: 'a' });
    await until(() => metadataCalls === 1, 'the first metadata request');
    await new Promise((resolve) => setTimeout(resolve, 10));
    const b = producer.send({ topic: 't', key: 'k', value: 'b' });
    await Promise.all([a, b]);
    expect(logs.get(0)!.map((r) => r.value)).toEqual(['a', 'b']);
  });

  it('does not hold sends to a topic whose map is cached behind a send waiting for another topic\'s map', async () => {
    const coordinator = await stub('coordinator');
    const broker = await stub('broker');
    const brokers = [{ id: 1, url: broker.url }];
    let metadataCalls = 0;
    let answerSlowly!: () => void;
    const slowly = new Promise<void>((resolve) => (answerSlowly = resolve));
    coordinator.on('GET', '/metadata', async () => {
      if (++metadataCalls > 1) await slowly;
      const map = metadataFor('t', brokers, [1]);
      return metadataCalls === 1 ? map : { ...map, version: 2, topics: [...map.topics, { ...map.topics[0]!, name: 'u' }] };
    });
    const logs = storingBroker(broker);
    const producer = client(coordinator).producer();
    await producer.send({ topic: 't', value: 't0' });
    // u is not in the cached map: its send waits for a map the coordinator is slow to give.
    const toU = producer.send({ topic: 'u', key: 'k', value: 'u0' });
    const laterToU = producer.send({ topic: 'u', key: 'k', value: 'u1' });
    await until(() => metadataCalls === 2, 'the lookup of u');
    expect((await producer.send({ topic: 't', value: 't1' })).offset).toBe(1);
    answerSlowly();
    expect((await Promise.all([toU, laterToU])).map((r) => r.offset)).toEqual([2, 3]);
    expect(logs.get(0)!.map((r) => r.value)).toEqual(['t0', 't1', 'u0', 'u1']);
  });

  it('retries a send to a topic newer than the cached map while the coordinator fails, instead of calling it missing', async () => {
    const coordinator = await stub('coordinator');
    const broker = await stub('broker');
    const brokers = [{ id: 1, url: broker.url }];
    let metadataCalls = 0;
    coordinator.on('GET', '/metadata', () => {
      metadataCalls++;
      if (metadataCalls === 1) return metadataFor('t', brokers, [1]);
      if (metadataCalls === 2) return errorAnswer('UNAVAILABLE', 'electing');
      const map = metadataFor('t', brokers, [1]);
      return { ...map, version: 2, topics: [...map.topics, { ...map.topics[0]!, name: 'u' }] };
    });
    const logs = storingBroker(broker);
    const producer = client(coordinator).producer();
    await producer.send({ topic: 't', value: 'first' });
    // The cached map does not have u; the fetch for it fails once, then names it.
    const result = await producer.send({ topic: 'u', value: 'new' });
    expect(result.topic).toBe('u');
    expect(metadataCalls).toBe(3);
    expect(logs.get(0)!.map((r) => r.value)).toEqual(['first', 'new']);
  });

  it('flush() waits for the sends made before it, not for those made after it', async () => {
    const coordinator = await stub('coordinator');
    const broker = await stub('broker');
    coordinator.on('GET', '/metadata', () => metadataFor('t', [{ id: 1, url: broker.url }], [1, 1]));
    const logs: StoredLogs = new Map();
    const store = storingProduceHandler(logs);
    // Partition 1's answers wait until the test lets them go.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    broker.on('POST', '/produce', async (request) => {
      if (producedPartitions(request).some(({ partition }) => partition === 1)) await released;
      return store(request);
    });
    const producer = client(coordinator, { transport: 'http' }).producer({ maxInFlightRequests: 5 });
    const before = producer.send({ topic: 't', partition: 0, value: 'before' });
    const first = producer.flush();
    // "before" leaves in a request of its own.
    await until(() => broker.calls('POST', '/produce').length === 1, 'the first produce');
    const after = producer.send({ topic: 't', partition: 1, value: 'after' });
    let afterSettled = false;
    void after.then(() => (afterSettled = true));
    // A refused send settles at once and holds no flush up.
    await expect(producer.send({ topic: 'bad topic!', value: 'x' })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    await first;
    expect((await before).offset).toBe(0);
    expect(afterSettled).toBe(false);
    // Two flushes at once: both wait for "after".
    let flushed = 0;
    const both = Promise.all([producer.flush(), producer.flush()].map((flush) => flush.then(() => flushed++)));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(flushed).toBe(0);
    release();
    await both;
    expect(afterSettled).toBe(true);
    expect(logs.get(1)!.map((r) => r.value)).toEqual(['after']);
    await producer.close();
  });

  it('goes to the new primary when the old one does not answer at all', async () => {
    // Proves a dead primary (connection refused) leads to metadata refreshes until the map names a live one.
    const coordinator = await stub('coordinator');
    const dead = await stub('broker-1');
    const live = await stub('broker-2');
    const brokers = [
      { id: 1, url: dead.url },
      { id: 2, url: live.url },
    ];
    await dead.close();
    let refreshes = 0;
    coordinator.on('GET', '/metadata', () => (++refreshes > 3 ? metadataFor('t', brokers, [2], 2, 1) : metadataFor('t', brokers, [1])));
    const logs = storingBroker(live);
    const result = await client(coordinator).producer({ lingerMs: 0 }).send({ topic: 't', key: 'k', value: 'x' });
    expect(result.offset).toBe(0);
    expect(logs.get(0)!.map((r) => r.value)).toEqual(['x']);
  });

  it('sends keys, values and headers as the exact bytes given (Buffer, Uint8Array, string, null)', async () => {
    // Proves binary values end to end on the client side: the stored batch holds the bytes the caller gave.
    const coordinator = await stub('coordinator');
    const broker = await stub('broker');
    coordinator.on('GET', '/metadata', () => metadataFor('t', [{ id: 1, url: broker.url }], [1, 1, 1, 1]));
    const logs = storingBroker(broker);
    const producer = client(coordinator).producer();
    const binary = Buffer.from([0, 0xff, 0xfe, 0, 0xc3, 0x28]);
    const sent = [
      { topic: 't', partition: 0, key: binary, value: binary, headers: { raw: binary, text: 'ü' } },
      { topic: 't', partition: 0, key: new Uint8Array([1, 2]), value: new Uint8Array(0) },
      { topic: 't', partition: 0, key: null, value: null, timestamp: 1234 },
      { topic: 't', partition: 0, value: 'naïve' },
    ];
    await producer.sendBatch(sent);
    const stored = logs.get(0)!.map((entry) => entry.record);
    expect(stored[0]!.key).toEqual(binary);
    expect(stored[0]!.value).toEqual(binary);
    expect(stored[0]!.headers).toEqual([
      { key: 'raw', value: binary },
      { key: 'text', value: Buffer.from('ü') },
    ]);
    expect(stored[1]!.key).toEqual(Buffer.from([1, 2]));
    expect(stored[1]!.value).toEqual(Buffer.alloc(0));
    expect(stored[2]).toMatchObject({ key: null, value: null, timestamp: 1234, headers: [] });
    expect(stored[3]!.value).toEqual(Buffer.from('naïve', 'utf8'));
    // A byte key goes where the text of the same UTF-8 bytes goes.
    const byText = await producer.send({ topic: 't', key: 'customer-7', value: 'a' });
    const byBytes = await producer.send({ topic: 't', key: Buffer.from('customer-7'), value: 'b' });
    expect(byBytes.partition).toBe(byText.partition);
  });

  it('sends one request per broker carrying every partition it leads, and fails only the partition that was refused', async () => {
    // Proves per-broker batching and per-partition results: 4 partitions on 2 brokers, one partition refused for good.
    const coordinator = await stub('coordinator');
    const b1 = await stub('broker-1');
    const b2 = await stub('broker-2');
    coordinator.on('GET', '/metadata', () => metadataFor('t', [{ id: 1, url: b1.url }, { id: 2, url: b2.url }], [1, 2, 1, 2]));
    const logs1: StoredLogs = new Map();
    b1.on('POST', '/produce', storingProduceHandler(logs1, (_topic, partition) => (partition === 2 ? partitionError('PAYLOAD_TOO_LARGE') : undefined)));
    const logs2 = storingBroker(b2);
    const producer = client(coordinator).producer();
    const sends = [0, 1, 2, 3].flatMap((partition) => [0, 1].map((i) => producer.send({ topic: 't', partition, value: `p${partition}-${i}` })));
    const results = await Promise.allSettled(sends);
    expect(b1.requests.length).toBe(1);
    expect(b2.requests.length).toBe(1);
    expect(producedPartitions(b1.requests[0]!).map((p) => [p.partition, p.records.length])).toEqual([[0, 2], [2, 2]]);
    expect(producedPartitions(b2.requests[0]!).map((p) => [p.partition, p.records.length])).toEqual([[1, 2], [3, 2]]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected', 'fulfilled', 'fulfilled']);
    expect(((results[4] as PromiseRejectedResult).reason as TesseraError).code).toBe('PAYLOAD_TOO_LARGE');
    expect(logs1.get(0)!.map((r) => r.value)).toEqual(['p0-0', 'p0-1']);
    expect(logs2.get(3)!.map((r) => r.value)).toEqual(['p3-0', 'p3-1']);
  });

  it('has at most maxInFlightRequests requests out to a broker; partitions that became ready meanwhile leave together, with every record that arrived', async () => {
    // Proves the per-broker request bound: while the first request is held, sends to all four partitions wait, then go as one request.
    const coordinator = await stub('coordinator');
    const broker = await stub('broker');
    coordinator.on('GET', '/metadata', () => metadataFor('t', [{ id: 1, url: broker.url }], [1, 1, 1, 1]));
    const logs: StoredLogs = new Map();
    const store = storingProduceHandler(logs);
    let open = 0;
    let mostOpen = 0;
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    broker.on('POST', '/produce', async (request) => {
      open++;
      mostOpen = Math.max(mostOpen, open);
      if (broker.requests.length === 1) await held;
      open--;
      return store(request);
    });
    const producer = client(coordinator).producer({ maxInFlightRequests: 1 });
    const first = producer.send({ topic: 't', partition: 0, value: 'first' });
    await until(() => broker.requests.length === 1, 'the first request');
    const later = [0, 1, 2, 3].flatMap((partition) => [0, 1, 2].map((i) => producer.send({ topic: 't', partition, value: `p${partition}-${i}` })));
    // Nothing else leaves while the first request is out.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(broker.requests.length).toBe(1);
    release();
    await Promise.all([first, ...later]);
    expect(mostOpen).toBe(1);
    expect(broker.requests.length).toBe(2);
    const second = producedPartitions(broker.requests[1]!).map((p) => [p.partition, p.records.length]);
    expect(second.sort((a, b) => a[0]! - b[0]!)).toEqual([
      [0, 3],
      [1, 3],
      [2, 3],
      [3, 3],
    ]);
    expect(logs.get(0)!.map((r) => r.value)).toEqual(['first', 'p0-0', 'p0-1', 'p0-2']);
  });

  it('sends what the callers of acknowledged records send in answer in one batch with the records that waited', async () => {
    // Proves a partition's next batch is cut after the acknowledged records' callbacks have run, not before.
    const { coordinator, broker } = await oneBrokerTopic();
    const logs: StoredLogs = new Map();
    const store = storingProduceHandler(logs);
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    broker.on('POST', '/produce', async (request) => {
      if (broker.requests.length === 1) await held;
      return store(request);
    });
    const producer = client(coordinator).producer();
    const first = producer.send({ topic: 't', value: 'first' });
    await until(() => broker.requests.length === 1, 'the first request');
    const waiting = [0, 1].map((i) => producer.send({ topic: 't', value: `waiting-${i}` }));
    // Two callers that send again once their record is acknowledged: one with then(), one with await.
    const answers = [
      first.then(() => producer.send({ topic: 't', value: 'answer-0' })),
      (async () => {
        await first;
        return producer.send({ topic: 't', value: 'answer-1' });
      })(),
    ];
    release();
    await Promise.all([...waiting, ...answers]);
    expect(broker.requests.length).toBe(2);
    expect(producedPartitions(broker.requests[1]!).map((p) => p.records.map((r) => r.value?.toString()))).toEqual([
      ['waiting-0', 'waiting-1', 'answer-0', 'answer-1'],
    ]);
  });

  it('settles every send() of a batch, acknowledged or failed, before a flush() waiting for them returns', async () => {
    const coordinator = await stub('coordinator');
    const broker = await stub('broker');
    coordinator.on('GET', '/metadata', () => metadataFor('t', [{ id: 1, url: broker.url }], [1, 1]));
    broker.on(
      'POST',
      '/produce',
      storingProduceHandler(new Map(), (_topic, partition) => (partition === 1 ? partitionError('INVALID_REQUEST', 'refused') : undefined)),
    );
    const producer = client(coordinator).producer();
    const heard: string[] = [];
    for (const partition of [0, 1]) {
      for (let i = 0; i < 3; i++) {
        producer.send({ topic: 't', partition, value: `v${i}` }).then(
          (metadata) => heard.push(`${partition}: offset ${metadata.offset}`),
          (error: TesseraError) => heard.push(`${partition}: ${error.code}`),
        );
      }
    }
    await producer.flush();
    heard.push('flushed');
    expect(heard.at(-1)).toBe('flushed');
    expect(heard.slice(0, -1).sort()).toEqual(['0: offset 0', '0: offset 1', '0: offset 2', '1: INVALID_REQUEST', '1: INVALID_REQUEST', '1: INVALID_REQUEST']);
  });

  it('refuses a maxInFlightRequests below 1', () => {
    const c = new TesseraClient({ coordinator: 'http://127.0.0.1:1' });
    closeAfterTest(() => c.close());
    expect(() => c.producer({ maxInFlightRequests: 0 })).toThrow(/maxInFlightRequests must be a positive number/);
  });

  it('refuses values that are not bytes or text, oversized values and too many headers, before sending', async () => {
    // Proves bad input is refused with a clear typed error and nothing reaches the broker.
    const { coordinator, broker } = await oneBrokerTopic();
    const producer = client(coordinator).producer();
    await expect(producer.send({ topic: 't', value: { a: 1 } as unknown as string })).rejects.toThrow(/record value: expected a Buffer/);
    await expect(producer.send({ topic: 't', value: Buffer.alloc(1024 * 1024 + 1) })).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    const headers = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`h${i}`, 'v']));
    await expect(producer.send({ topic: 't', value: 'x', headers })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    await expect(producer.send({ topic: 't', value: 'x', timestamp: -5 })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    expect(broker.requests.length).toBe(0);
  });
});
