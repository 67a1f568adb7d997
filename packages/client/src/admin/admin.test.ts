import { afterEach, describe, expect, it } from 'vitest';
import { TesseraError } from '@tessera/protocol';
import { TesseraClient } from '../client.js';
import { closeAfterTest, closeTestResources, errorAnswer, metadataFor, stub } from '../test-support/stub-server.js';

afterEach(closeTestResources);

function client(coordinatorUrl: string): TesseraClient {
  const c = new TesseraClient({ coordinator: coordinatorUrl, retry: { initialMs: 1, maxMs: 5 } });
  closeAfterTest(() => c.close());
  return c;
}

describe('Admin', () => {
  it('says clearly that the coordinator cannot be reached', async () => {
    // Proves the error a CLI user sees when nothing listens at the coordinator URL.
    const dead = await stub('dead');
    const url = dead.url;
    await dead.close();
    const error = await client(url).admin.listTopics().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TesseraError);
    expect((error as TesseraError).code).toBe('UNAVAILABLE');
    expect((error as Error).message).toBe(`cannot reach the coordinator at ${url}: ECONNREFUSED`);
  });

  it('passes the coordinator answers and its typed errors through', async () => {
    // Proves the admin calls hit the contract's routes and map error bodies back to TesseraError.
    const coordinator = await stub('coordinator');
    coordinator
      .on('GET', '/topics', () => ({ topics: [{ name: 't', partitions: 2, replicationFactor: 2 }] }))
      .on('POST', '/topics', (r) => (r.body.name === 'taken' ? errorAnswer('TOPIC_EXISTS') : { ...r.body, partitions: [] }))
      .on('DELETE', '/topics/:topic', () => undefined)
      .on('GET', '/cluster/events', (r) => ({ events: Array.from({ length: Number(r.query.get('limit')) }, (_, i) => ({ i })) }))
      .on('GET', '/groups/:group', () => errorAnswer('GROUP_NOT_FOUND'));
    const admin = client(coordinator.url).admin;
    expect(await admin.listTopics()).toEqual([{ name: 't', partitions: 2, replicationFactor: 2 }]);
    const created = await admin.createTopic({ name: 'new', partitions: 3 });
    expect(coordinator.calls('POST', '/topics')[0].body).toEqual({ name: 'new', partitions: 3, replicationFactor: 2, config: {} });
    expect(created.name).toBe('new');
    await expect(admin.createTopic({ name: 'taken', partitions: 1 })).rejects.toMatchObject({ code: 'TOPIC_EXISTS' });
    await expect(admin.createTopic({ name: 'bad name', partitions: 1 })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    await admin.deleteTopic('t');
    expect(coordinator.calls('DELETE', '/topics/t').length).toBe(1);
    expect(await admin.clusterEvents(2)).toEqual([{ i: 0 }, { i: 1 }]);
    await expect(admin.describeGroup('g')).rejects.toMatchObject({ code: 'GROUP_NOT_FOUND' });
  });

  it('lists brokers and drains or undrains one by id', async () => {
    // Proves the broker admin calls hit GET /brokers and POST/DELETE /brokers/:id/drain, and refuse a bad id locally.
    const coordinator = await stub('coordinator');
    const status = (draining: boolean) => ({ id: 4, url: 'http://b4', internalUrl: 'http://b4', alive: true, state: 'alive', draining, lastHeartbeatAgoMs: 1, primaries: 0, replicas: 0 });
    coordinator
      .on('GET', '/brokers', () => ({ brokers: [status(false)] }))
      .on('POST', '/brokers/:id/drain', (r) => (r.path === '/brokers/9/drain' ? errorAnswer('NOT_FOUND') : status(true)))
      .on('DELETE', '/brokers/:id/drain', () => status(false));
    const admin = client(coordinator.url).admin;
    expect(await admin.listBrokers()).toEqual([status(false)]);
    expect(await admin.drainBroker(4)).toEqual(status(true));
    expect(coordinator.calls('POST', '/brokers/4/drain').length).toBe(1);
    expect((await admin.undrainBroker(4)).draining).toBe(false);
    await expect(admin.drainBroker(9)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(admin.drainBroker(0)).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
  });

  it('computes group lag from each primary’s committed offsets', async () => {
    // Proves groupLag asks every partition's primary and counts uncommitted partitions from the log start.
    const coordinator = await stub('coordinator');
    const b1 = await stub('broker-1');
    const b2 = await stub('broker-2');
    const brokers = [
      { id: 1, url: b1.url },
      { id: 2, url: b2.url },
    ];
    coordinator
      .on('GET', '/groups/:group', () => ({ group: 'g', topic: 't', generation: 3, members: [], unassigned: [0, 1, 2] }))
      .on('GET', '/metadata', () => metadataFor('t', brokers, [1, 2, 1]));
    const offsets = (r: { body: { partitions: Array<{ topic: string; partition: number }> } }) => ({
      partitions: r.body.partitions.map(({ topic, partition }) => ({
        topic,
        partition,
        offset: partition === 1 ? null : 4,
        highWatermark: 10,
        logStartOffset: 2,
      })),
    });
    b1.on('POST', '/offsets', offsets);
    b2.on('POST', '/offsets', offsets);
    const lag = await client(coordinator.url).admin.groupLag('g');
    expect(lag).toEqual([
      { partition: 0, committed: 4, highWatermark: 10, lag: 6 },
      { partition: 1, committed: null, highWatermark: 10, lag: 8 },
      { partition: 2, committed: 4, highWatermark: 10, lag: 6 },
    ]);
    expect(b1.requests[0].body.partitions.map((p: { partition: number }) => p.partition)).toEqual([0, 2]);
  });
});
