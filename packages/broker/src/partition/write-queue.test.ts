// Proves the write queue is bounded per kind (produce records, produce requests, commits), that
// a flush takes at most maxFlushRecords records but always one request, and that failing the
// queue answers every waiter.
import { describe, expect, it } from 'vitest';
import { WriteQueue, type IncomingBatch } from './write-queue.js';

const batch = (records: number): IncomingBatch => ({ bytes: Buffer.alloc(0), recordCount: records, lastOffsetDelta: records - 1, maxTimestamp: 0 });

describe('WriteQueue', () => {
  it('refuses produces and commits beyond their own bounds with UNAVAILABLE', async () => {
    const queue = new WriteQueue('t/0', { maxRecords: 10, maxProduces: 3, maxCommits: 1, maxFlushRecords: 100 });
    const waiting = [queue.produce([batch(6)]), queue.produce([batch(4)])];
    expect(() => queue.produce([batch(1)])).toThrow(expect.objectContaining({ code: 'UNAVAILABLE' }));
    waiting.push(queue.commit({ group: 'g', offset: 1, generation: 1 }) as Promise<never>);
    // The commit bound is its own: full records do not block commits, a second commit is refused.
    expect(() => queue.commit({ group: 'g', offset: 2, generation: 1 })).toThrow(expect.objectContaining({ code: 'UNAVAILABLE' }));
    queue.failAll(new Error('closing'));
    expect(await Promise.allSettled(waiting)).toEqual(waiting.map(() => ({ status: 'rejected', reason: new Error('closing') })));
    expect(queue.isEmpty).toBe(true);
    // Emptied: room again.
    void queue.produce([batch(10)]).catch(() => undefined);
    expect(queue.isEmpty).toBe(false);
    queue.failAll(new Error('closing'));
    // An empty queue takes a produce larger than the bound (else it could never be written), and nothing beside it.
    void queue.produce([batch(25)]).catch(() => undefined);
    expect(() => queue.produce([batch(1)])).toThrow(expect.objectContaining({ code: 'UNAVAILABLE' }));
    queue.failAll(new Error('closing'));
  });

  it('takes at most maxFlushRecords records per flush, but always one request', () => {
    const queue = new WriteQueue('t/0', { maxRecords: 1_000, maxProduces: 10, maxCommits: 10, maxFlushRecords: 5 });
    for (const n of [7, 2, 2, 2]) void queue.produce([batch(n)]).catch(() => undefined);
    void queue.commit({ group: 'g', offset: 1, generation: 1 }).catch(() => undefined);
    expect(queue.take().map((e) => (e.kind === 'produce' ? e.records : 'commit'))).toEqual([7]);
    expect(queue.take().map((e) => (e.kind === 'produce' ? e.records : 'commit'))).toEqual([2, 2]);
    expect(queue.take().map((e) => (e.kind === 'produce' ? e.records : 'commit'))).toEqual([2, 'commit']);
    expect(queue.isEmpty).toBe(true);
  });
});
