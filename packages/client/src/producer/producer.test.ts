import { afterEach, describe, expect, it } from 'vitest';
import { partitionForKey, TesseraError } from '@tessera/protocol';
import { TesseraClient } from '../client.js';
import { closeAfterTest, closeTestResources, errorAnswer, metadataFor, stub, StubServer, type StubRequest } from '../test-support/stub-server.js';

const FAST_RETRY = { initialMs: 1, maxMs: 10, jitter: 0 };
afterEach(closeTestResources);

function client(coordinator: StubServer, options: { metadataMaxAgeMs?: number } = {}): TesseraClient {
  const c = new TesseraClient({ coordinator: coordinator.url, retry: FAST_RETRY, requestTimeoutMs: 2_000, ...options });
  closeAfterTest(() => c.close());
  return c;
}

type Logs = Map<number, Array<{ key?: string | null; value: string }>>;

/** A produce handler that stores every record per partition and answers like a primary. */
function storingHandler(logs: Logs): (request: StubRequest) => unknown {
  return (request) => {
    const partition = Number(request.params.partition);
    const log = logs.get(partition) ?? [];
    logs.set(partition, log);
    const baseOffset = log.length;
    log.push(...request.body.records);
    return { topic: request.params.topic, partition, baseOffset, count: request.body.records.length, epoch: 0 };
  };
}

/** A broker stub that stores every produced record per partition. */
function storingBroker(broker: StubServer): Logs {
  const logs: Logs = new Map();
  broker.on('POST', '/topics/:topic/partitions/:partition/records', storingHandler(logs));
  return logs;
}

describe('Producer', () => {
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
    const requests = broker.requests.length;
    expect(requests).toBeGreaterThanOrEqual(3);
    expect(requests).toBeLessThanOrEqual(9);
    // Within a partition, send order is storage order.
    for (const log of logs.values()) {
      const indexes = log.map((r) => Number(r.value.slice(1)));
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
    for (const request of broker.requests) expect(request.body.records.length).toBeLessThanOrEqual(10);
    expect([...logs.values()].reduce((n, log) => n + log.length, 0)).toBe(100);
    expect(logs.size).toBe(2);
  });

  it('keeps the order of a partition across retriable failures (one request in flight per partition)', async () => {
    // Proves ordering under retries: the first requests fail with a retriable error; later records never overtake them.
    const coordinator = await stub('coordinator');
    const broker = await stub('broker');
    coordinator.on('GET', '/metadata', () => metadataFor('t', [{ id: 1, url: broker.url }], [1]));
    const logs: Logs = new Map();
    const store = storingHandler(logs);
    let failuresLeft = 3;
    broker.on('POST', '/topics/:topic/partitions/:partition/records', (request) => {
      if (failuresLeft-- > 0) return errorAnswer('NOT_ENOUGH_REPLICAS');
      return store(request);
    });
    const producer = client(coordinator).producer({ lingerMs: 0, maxBatchRecords: 4 });
    const sends = Array.from({ length: 40 }, (_, i) => producer.send({ topic: 't', key: 'same', value: `v${i}` }));
    const results = await Promise.all(sends);
    expect(logs.get(0)!.map((r) => r.value)).toEqual(Array.from({ length: 40 }, (_, i) => `v${i}`));
    expect(results.map((r) => r.offset)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    // Never two requests at once: every request after a failure starts with the failed batch's first record.
    const firsts = broker.requests.map((r) => r.body.records[0].value);
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
    oldPrimary.on('POST', '/topics/:topic/partitions/:partition/records', () => {
      failedOver = true;
      return errorAnswer('NOT_PRIMARY', 'not primary', { primary: { id: 2, url: newPrimary.url } });
    });
    const logs = storingBroker(newPrimary);
    const producer = client(coordinator).producer({ lingerMs: 0 });
    const result = await producer.send({ topic: 't', key: 'a', value: 'x' });
    expect(result).toEqual({ topic: 't', partition: 0, offset: 0 });
    expect(logs.get(0)!.map((r) => r.value)).toEqual(['x']);
    expect(oldPrimary.requests.length).toBe(1);
    expect(coordinator.calls('GET', '/metadata').length).toBeGreaterThanOrEqual(2);
  });

  it('rejects with the TesseraError of a non-retriable error, without retrying', async () => {
    // Proves non-retriable errors end delivery at once and reach the caller typed.
    const coordinator = await stub('coordinator');
    const broker = await stub('broker');
    coordinator.on('GET', '/metadata', () => metadataFor('t', [{ id: 1, url: broker.url }], [1]));
    broker.on('POST', '/topics/:topic/partitions/:partition/records', () => errorAnswer('PAYLOAD_TOO_LARGE', 'value too large'));
    const producer = client(coordinator).producer({ lingerMs: 0 });
    const error = await producer.send({ topic: 't', value: 'x' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TesseraError);
    expect((error as TesseraError).code).toBe('PAYLOAD_TOO_LARGE');
    expect(broker.requests.length).toBe(1);
  });

  it('gives up with TIMEOUT after deliveryTimeoutMs of retriable errors', async () => {
    // Proves retries are bounded by the delivery timeout.
    const coordinator = await stub('coordinator');
    const broker = await stub('broker');
    coordinator.on('GET', '/metadata', () => metadataFor('t', [{ id: 1, url: broker.url }], [1]));
    broker.on('POST', '/topics/:topic/partitions/:partition/records', () => errorAnswer('NOT_ENOUGH_REPLICAS'));
    const producer = client(coordinator).producer({ lingerMs: 0, deliveryTimeoutMs: 200 });
    const error = await producer.send({ topic: 't', value: 'x' }).catch((e: unknown) => e);
    expect((error as TesseraError).code).toBe('TIMEOUT');
    expect((error as Error).message).toContain('NOT_ENOUGH_REPLICAS');
    expect(broker.requests.length).toBeGreaterThan(1);
  });

  it('rejects records for an unknown topic or partition, and invalid records, before sending', async () => {
    // Proves client-side checks give clear, typed errors.
    const coordinator = await stub('coordinator');
    const broker = await stub('broker');
    coordinator.on('GET', '/metadata', () => metadataFor('t', [{ id: 1, url: broker.url }], [1]));
    const producer = client(coordinator).producer();
    await expect(producer.send({ topic: 'nope', value: 'x' })).rejects.toMatchObject({ code: 'TOPIC_NOT_FOUND' });
    await expect(producer.send({ topic: 't', value: 'x', partition: 5 })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    await expect(producer.send({ topic: 'bad name', value: 'x' })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    await expect(producer.send({ topic: 't', value: 42 as unknown as string })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    expect(broker.requests.length).toBe(0);
  });

  it('keeps producing from the cached map while the coordinator is down', async () => {
    // Proves promise 5 on the client side: once the map is cached, produce needs no coordinator.
    const coordinator = await stub('coordinator');
    const broker = await stub('broker');
    coordinator.on('GET', '/metadata', () => metadataFor('t', [{ id: 1, url: broker.url }], [1]));
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
    const coordinator = await stub('coordinator');
    const broker = await stub('broker');
    coordinator.on('GET', '/metadata', () => metadataFor('t', [{ id: 1, url: broker.url }], [1]));
    const logs = storingBroker(broker);
    const producer = client(coordinator).producer({ lingerMs: 1, maxBufferedRecords: 3 });
    const sends = Array.from({ length: 30 }, (_, i) => producer.send({ topic: 't', key: 'k', value: `v${i}` }));
    await producer.flush();
    expect(logs.get(0)!.length).toBe(30);
    for (const request of broker.requests) expect(request.body.records.length).toBeLessThanOrEqual(3);
    expect((await Promise.all(sends)).map((r) => r.offset)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    await producer.close();
    await expect(producer.send({ topic: 't', value: 'late' })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
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
});
