// Proves the idempotent producer's numbering against stub services: batches carry the id the
// coordinator gave and per-partition sequence numbers, a retried batch is the same bytes, and a
// refused numbering fails the batch and starts a new producer id at sequence 0; and that batches
// waiting for the producer id each wait until their own deadline.
import { afterEach, describe, expect, it } from 'vitest';
import { batchSize, iterateBatches, sleep, TesseraError } from '@tessera/protocol';
import { TesseraClient } from '../client.js';
import { Connection } from '../connection/connection.js';
import { IdempotenceManager } from './idempotence.js';
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
import type { ProducerIdentity } from './idempotence.js';

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

/** An IdempotenceManager asking `coordinator`, and how many `POST /producers` attempts it started. */
function manager(coordinator: StubServer) {
  const connection = new Connection({ coordinatorUrl: coordinator.url, requestTimeoutMs: 2_000 });
  closeAfterTest(() => connection.close());
  const attempts = { started: 0 };
  const call = connection.coordinator.bind(connection);
  connection.coordinator = (...args) => {
    attempts.started++;
    return call(...args);
  };
  return { idempotence: new IdempotenceManager(connection, { retries: 0, initialMs: 10, multiplier: 1, maxMs: 10, jitter: 0 }), attempts };
}

/** Records, in `events`, when `identity` settles and how, under `name`. */
function watch(name: string, identity: Promise<ProducerIdentity>, events: string[]): Promise<ProducerIdentity | TesseraError> {
  return identity.then(
    (value) => {
      events.push(`${name} resolved`);
      return value;
    },
    (error: TesseraError) => {
      events.push(`${name} rejected`);
      return error;
    },
  );
}

/** A coordinator that holds each id request until `release()` (or 1 s at most), then answers `answer`. */
async function holdingCoordinator(answer: { producerId: number; producerEpoch: number }) {
  const coordinator = await stub('coordinator');
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  coordinator.on('POST', '/producers', async () => {
    await Promise.race([held, sleep(1_000)]);
    return answer;
  });
  return { coordinator, release: () => release() };
}

describe('waiting for the producer id', () => {
  it('fails a batch at its own deadline while a batch with a later one, asking meanwhile, gets the id', async () => {
    // The coordinator refuses until the early batch has failed, then answers.
    const coordinator = await stub('coordinator');
    let unavailable = true;
    coordinator.on('POST', '/producers', () => (unavailable ? errorAnswer('UNAVAILABLE', 'no coordinator leader') : { producerId: 7, producerEpoch: 3 }));
    const { idempotence, attempts } = manager(coordinator);
    const events: string[] = [];
    const early = watch('early', idempotence.current(performance.now() + 100), events);
    await sleep(30);
    const late = watch('late', idempotence.current(performance.now() + 5_000), events);
    const failed = (await early) as TesseraError;
    unavailable = false;
    const identity = await late;
    expect(events).toEqual(['early rejected', 'late resolved']);
    expect(identity).toMatchObject({ producerId: 7, producerEpoch: 3 });
    expect(failed).toBeInstanceOf(TesseraError);
    expect(failed.code).toBe('TIMEOUT');
    expect(failed.message).toContain('no coordinator leader');
    // One request served both: its attempts came one after another, and the id is kept.
    expect(attempts.started).toBe(coordinator.calls('POST', '/producers').length);
    expect(await idempotence.current(performance.now() + 100)).toMatchObject({ producerId: 7 });
    expect(attempts.started).toBe(coordinator.calls('POST', '/producers').length);
  });

  it('fails a batch whose deadline comes before the first batch\'s at its own deadline, while the attempt is still out', async () => {
    // The coordinator holds the only attempt until the early batch has failed (or 1 s at most).
    const { coordinator, release: earlyFailed } = await holdingCoordinator({ producerId: 4, producerEpoch: 0 });
    const { idempotence, attempts } = manager(coordinator);
    const events: string[] = [];
    const first = watch('first', idempotence.current(performance.now() + 5_000), events);
    const early = watch('early', idempotence.current(performance.now() + 100), events);
    const failed = await early;
    earlyFailed();
    const identity = await first;
    expect(events).toEqual(['early rejected', 'first resolved']);
    expect(identity).toMatchObject({ producerId: 4 });
    expect(failed).toBeInstanceOf(TesseraError);
    expect((failed as TesseraError).code).toBe('TIMEOUT');
    expect(attempts.started).toBe(1);
  });

  it('delivers a batch sent while an earlier batch waits for the id, after that one timed out', async () => {
    // The coordinator refuses ids until the first send has failed; the second send, to another
    // partition and 50 ms later, has 50 ms more and gets the id once the coordinator answers.
    const { coordinator, broker } = await cluster(2);
    const logs: StoredLogs = new Map();
    broker.on('POST', '/produce', storingProduceHandler(logs));
    let unavailable = true;
    coordinator.on('POST', '/producers', () => (unavailable ? errorAnswer('UNAVAILABLE') : { producerId: 5, producerEpoch: 0 }));
    const producer = client(coordinator).producer({ deliveryTimeoutMs: 150 });
    const outcomes: string[] = [];
    const first = producer.send({ topic: 't', partition: 0, value: 'first' }).then(
      () => outcomes.push('first stored'),
      (error: TesseraError) => {
        outcomes.push(`first ${error.code}`);
        unavailable = false;
      },
    );
    await sleep(50);
    const second = producer.send({ topic: 't', partition: 1, value: 'second' }).then(
      () => outcomes.push('second stored'),
      (error: TesseraError) => outcomes.push(`second ${error.code}`),
    );
    await Promise.all([first, second]);
    expect(outcomes).toEqual(['first TIMEOUT', 'second stored']);
    expect(broker.requests.flatMap(sentBatches).map((b) => [b.partition, b.producerId])).toEqual([[1, 5]]);
  });

  it('keeps an id that arrives after every batch asking for it failed, and stops asking once none waits', async () => {
    const { coordinator, release } = await holdingCoordinator({ producerId: 9, producerEpoch: 1 });
    const { idempotence, attempts } = manager(coordinator);
    await expect(idempotence.current(performance.now() + 50)).rejects.toMatchObject({ code: 'TIMEOUT' });
    release();
    await sleep(100);
    // Answered after the batch gave up: the next batch takes the id without asking again.
    expect(await idempotence.current(performance.now() + 50)).toMatchObject({ producerId: 9, producerEpoch: 1 });
    expect(attempts.started).toBe(1);

    // A coordinator that keeps refusing is asked no more once the last batch waiting has failed.
    idempotence.reset();
    coordinator.on('POST', '/producers', () => errorAnswer('UNAVAILABLE'));
    await expect(idempotence.current(performance.now() + 100)).rejects.toMatchObject({ code: 'TIMEOUT' });
    const asked = attempts.started;
    expect(asked).toBeGreaterThan(1);
    await sleep(100);
    expect(attempts.started).toBe(asked);
  });
});
