// Proves the reader without a group against a stub broker: it reads each partition from its own
// offset, position() follows what poll() returned, seek() moves a partition, nothing is committed
// and no group is joined, and bad options are refused.
import { afterEach, describe, expect, it } from 'vitest';
import { TesseraClient } from '../client.js';
import type { ConsumedRecord } from '../records.js';
import { closeAfterTest, closeTestResources, errorAnswer, fetchFrameAnswer, metadataFor, pollAtLeast, stub, type StubFetchPartition } from '../test-support/stub-server.js';

afterEach(closeTestResources);

const HW = 6;

async function setup() {
  const coordinator = await stub('coordinator');
  const broker = await stub('broker');
  coordinator.on('GET', '/metadata', () => metadataFor('t', [{ id: 1, url: broker.url }], [1, 1]));
  broker.on('POST', '/fetch', async (r) => {
    const partitions = r.body.partitions.map(({ topic, partition, offset }: { topic: string; partition: number; offset: number }) => {
      const base: StubFetchPartition = { topic, partition, highWatermark: HW, logStartOffset: 0, records: [] };
      for (let o = offset; o < HW; o++) base.records.push({ offset: o, key: null, value: `p${partition}-${o}`, headers: null, timestamp: 1 });
      return base;
    });
    if (partitions.every((p: StubFetchPartition) => p.records.length === 0)) await new Promise((resolve) => setTimeout(resolve, 20));
    return fetchFrameAnswer(partitions);
  });
  const client = new TesseraClient({ coordinator: coordinator.url, retry: { initialMs: 1, maxMs: 20, jitter: 0 }, requestTimeoutMs: 2_000 });
  closeAfterTest(() => client.close());
  return { client, coordinator, broker };
}

describe('Reader', () => {
  it('reads from a broker of a release that refuses partition epochs, asking it once with them', async () => {
    const { client, broker } = await setup();
    // Such a broker validates its requests strictly and knows no epoch field.
    broker.on('POST', '/fetch', (r) => {
      if (r.body.partitions.some((p: { epoch?: number }) => p.epoch !== undefined)) {
        return errorAnswer('INVALID_REQUEST', 'invalid request body', { issues: [{ path: 'partitions.0', message: 'Unrecognized key: "epoch"' }] });
      }
      return fetchFrameAnswer(
        r.body.partitions.map(({ topic, partition, offset }: { topic: string; partition: number; offset: number }) => ({
          topic,
          partition,
          highWatermark: HW,
          logStartOffset: 0,
          records: offset < HW ? [{ offset, key: null, value: `p${partition}-${offset}`, headers: null, timestamp: 1 }] : [],
        })),
      );
    });
    const reader = client.reader({ topic: 't', positions: [{ partition: 0, offset: 0 }] });
    expect((await pollAtLeast(reader, 3)).map((r) => r.offset)).toEqual([0, 1, 2]);
    const named = broker.calls('POST', '/fetch').filter((r) => r.body.partitions[0].epoch !== undefined);
    expect(named).toHaveLength(1);
    await reader.close();
  });

  it('reads each partition from its offset, follows position(), seeks, and never joins or commits', async () => {
    const { client, coordinator, broker } = await setup();
    const reader = client.reader({ topic: 't', positions: [{ partition: 0, offset: 4 }, { partition: 1, offset: 1 }] });
    const records = await pollAtLeast(reader, 7);
    const of = (list: ConsumedRecord[], p: number) => list.filter((r) => r.partition === p).map((r) => r.offset);
    expect(of(records, 0)).toEqual([4, 5]);
    expect(of(records, 1)).toEqual([1, 2, 3, 4, 5]);
    expect(reader.position(0)).toBe(HW);
    reader.seek(0, 2);
    expect(reader.position(0)).toBe(2);
    expect(of(await pollAtLeast(reader, 4), 0)).toEqual([2, 3, 4, 5]);
    await reader.close();
    // Only the map from the coordinator, only fetches from the broker.
    expect(new Set(coordinator.requests.map((r) => `${r.method} ${r.path}`))).toEqual(new Set(['GET /metadata']));
    expect(new Set(broker.requests.map((r) => `${r.method} ${r.path}`))).toEqual(new Set(['POST /fetch']));
    expect(await reader.poll()).toEqual([]);
  });

  it('refuses bad options and unknown partitions', async () => {
    const { client } = await setup();
    expect(() => client.reader({ topic: 't', positions: [] })).toThrow(/at least one partition/);
    expect(() => client.reader({ topic: 't', positions: [{ partition: 0, offset: -1 }] })).toThrow(/non-negative/);
    expect(() => client.reader({ topic: 't', positions: [{ partition: -1, offset: 0 }] })).toThrow(/partition must be an integer/);
    expect(() => client.reader({ topic: 't', positions: [{ partition: 0, offset: 0 }, { partition: 0, offset: 3 }] })).toThrow(/listed twice/);
    expect(() => client.reader({ topic: 't', positions: [{ partition: 0, offset: 0 }], maxRecords: 0 })).toThrow(/maxRecords/);
    const reader = client.reader({ topic: 't', positions: [{ partition: 0, offset: 0 }] });
    expect(() => reader.seek(1, 0)).toThrow(/does not read partition 1/);
    expect(() => reader.position(1)).toThrow(/does not read partition 1/);
  });
});
