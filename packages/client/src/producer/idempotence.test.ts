// Proves the idempotent producer's numbering against stub services: batches carry the id the
// coordinator gave and per-partition sequence numbers, a retried batch is the same bytes, and a
// refused numbering fails the batch and starts a new producer id at sequence 0.
import { afterEach, describe, expect, it } from 'vitest';
import { batchSize, iterateBatches, TesseraError } from '@tessera/protocol';
import { TesseraClient } from '../client.js';
import {
  closeAfterTest,
  closeTestResources,
  errorAnswer,
  metadataFor,
  partitionError,
  storingProduceHandler,
  stub,
  type StoredLogs,
  type StubRequest,
  type StubServer,
} from '../test-support/stub-server.js';

afterEach(closeTestResources);

function client(coordinator: StubServer): TesseraClient {
  const c = new TesseraClient({ coordinator: coordinator.url, retry: { initialMs: 1, maxMs: 10, jitter: 0 }, requestTimeoutMs: 2_000 });
  closeAfterTest(() => c.close());
  return c;
}

/** The producer fields of every batch of a `POST /produce` request, with its partition and bytes. */
function sentBatches(request: StubRequest) {
  return (request.body.partitions as Array<{ partition: number }>).flatMap(({ partition }, i) =>
    [...iterateBatches(request.parts![i]!)].map(({ at, header }) => ({
      partition,
      producerId: header.producerId,
      producerEpoch: header.producerEpoch,
      baseSequence: header.baseSequence,
      recordCount: header.recordCount,
      bytes: request.parts![i]!.subarray(at, at + batchSize(header)),
    })),
  );
}

async function cluster(partitions: number) {
  const coordinator = await stub('coordinator');
  const broker = await stub('broker');
  coordinator.on('GET', '/metadata', () => metadataFor('t', [{ id: 1, url: broker.url }], Array(partitions).fill(1)));
  return { coordinator, broker };
}

/** A one-partition cluster whose broker refuses the first produce with `refusal`, then stores. */
async function refusingOnce(refusal: ReturnType<typeof partitionError>) {
  const { coordinator, broker } = await cluster(1);
  const logs: StoredLogs = new Map();
  let refuse = true;
  broker.on(
    'POST',
    '/produce',
    storingProduceHandler(logs, () => {
      if (!refuse) return undefined;
      refuse = false;
      return refusal;
    }),
  );
  return { coordinator, broker, logs };
}

describe('idempotent producer', () => {
  it('numbers each partition from 0 under one producer id, and sends none when idempotent is false', async () => {
    const { coordinator, broker } = await cluster(2);
    const logs: StoredLogs = new Map();
    broker.on('POST', '/produce', storingProduceHandler(logs));
    const producer = client(coordinator).producer({ maxBatchRecords: 3 });
    for (let i = 0; i < 7; i++) await producer.send({ topic: 't', partition: 0, value: `a${i}` });
    await producer.sendBatch(Array.from({ length: 5 }, (_, i) => ({ topic: 't', partition: 1, value: `b${i}` })));
    const batches = broker.requests.flatMap(sentBatches);
    expect(coordinator.calls('POST', '/producers')).toHaveLength(1);
    expect(new Set(batches.map((b) => `${b.producerId}/${b.producerEpoch}`))).toEqual(new Set(['0/0']));
    for (const partition of [0, 1]) {
      let next = 0;
      for (const b of batches.filter((x) => x.partition === partition)) {
        expect(b.baseSequence).toBe(next);
        next += b.recordCount;
      }
      expect(next).toBe(partition === 0 ? 7 : 5);
    }

    const plain = client(coordinator).producer({ idempotent: false });
    const before = broker.requests.length;
    await plain.send({ topic: 't', partition: 0, value: 'x' });
    expect(broker.requests.slice(before).flatMap(sentBatches).map((b) => b.producerId)).toEqual([-1]);
    expect(coordinator.calls('POST', '/producers')).toHaveLength(1);
  });

  it('retries a batch whose answer was lost with the same bytes', async () => {
    const { coordinator, broker } = await cluster(1);
    const logs: StoredLogs = new Map();
    const store = storingProduceHandler(logs);
    let lose = 2;
    // The first two attempts fail with a retriable error, as when an answer is lost.
    broker.on('POST', '/produce', (request) => (lose-- > 0 ? errorAnswer('INTERNAL', 'answer lost') : store(request)));
    const producer = client(coordinator).producer();
    await producer.sendBatch([0, 1, 2].map((i) => ({ topic: 't', value: `v${i}` })));
    const attempts = broker.calls('POST', '/produce').flatMap(sentBatches);
    expect(attempts.length).toBe(3);
    for (const attempt of attempts) expect(attempt.bytes.equals(attempts[0]!.bytes)).toBe(true);
    expect(attempts[0]!.baseSequence).toBe(0);
  });

  it('fails the batch on OUT_OF_ORDER_SEQUENCE and goes on under a new producer id from sequence 0', async () => {
    const { coordinator, broker, logs } = await refusingOnce(partitionError('OUT_OF_ORDER_SEQUENCE', 'expected sequence 4, got 0'));
    const producer = client(coordinator).producer();
    const failed = await producer.send({ topic: 't', value: 'first' }).catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(TesseraError);
    expect((failed as TesseraError).code).toBe('OUT_OF_ORDER_SEQUENCE');
    expect((failed as TesseraError).retriable).toBe(false);
    await producer.send({ topic: 't', value: 'second' });
    const batches = broker.requests.flatMap(sentBatches);
    expect(batches.map((b) => [b.producerId, b.baseSequence])).toEqual([
      [0, 0],
      [1, 0],
    ]);
    expect(logs.get(0)!.map((r) => r.value)).toEqual(['second']);
  });

  it('gives the numbers of a batch refused on its only attempt back to the partition', async () => {
    const { coordinator, broker } = await refusingOnce(partitionError('FORBIDDEN'));
    const producer = client(coordinator).producer();
    await expect(producer.send({ topic: 't', value: 'first' })).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await producer.send({ topic: 't', value: 'second' });
    expect(broker.requests.flatMap(sentBatches).map((b) => [b.producerId, b.baseSequence])).toEqual([
      [0, 0],
      [0, 0],
    ]);
  });
});
