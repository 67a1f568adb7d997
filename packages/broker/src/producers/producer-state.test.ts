// Proves the idempotent producer's sequence rules (duplicate, gap, fenced epoch, new epoch,
// wrap-around, expiry, truncation) on hand-written cases of the pure functions, and that a
// partition's state rebuilt from its batches' headers after a truncation equals the state of a
// log that never held the removed batches.
import { MAX_SEQUENCE, addSequence } from '@tessera/protocol';
import { describe, expect, it } from 'vitest';
import {
  PRODUCER_BATCHES_KEPT,
  KEYED_PRODUCER_ID_BASE,
  PartitionProducers,
  applyBatch,
  decodeSpans,
  encodeSpans,
  keyedProducerId,
  checkSequence,
  truncateEntry,
  type BatchSpan,
  type ProducerEntry,
  type SequencedBatch,
} from './producer-state.js';

const PID = 7;
const batch = (baseSequence: number, records: number, producerEpoch = 0, producerId = PID): SequencedBatch => ({
  producerId,
  producerEpoch,
  baseSequence,
  lastOffsetDelta: records - 1,
});

/** The entry after storing `batches` one after the other from offset `firstOffset`. */
function stored(batches: SequencedBatch[], firstOffset = 0, nowMs = 1_000): ProducerEntry | undefined {
  let entry: ProducerEntry | undefined;
  let offset = firstOffset;
  for (const b of batches) {
    entry = applyBatch(entry, b, offset, offset + b.lastOffsetDelta, nowMs);
    offset += b.lastOffsetDelta + 1;
  }
  return entry;
}

describe('checkSequence', () => {
  const entry = stored([batch(0, 3), batch(3, 2), batch(5, 4)]); // offsets 0..2, 3..4, 5..8

  const cases: Array<[string, ProducerEntry | undefined, SequencedBatch, ReturnType<typeof checkSequence>['kind']]> = [
    ['an unknown producer at sequence 0', undefined, batch(0, 1), 'append'],
    ['an unknown producer at any sequence (expired state: it goes on where it was)', undefined, batch(4_000, 1), 'append'],
    ['the next batch', entry, batch(9, 10), 'append'],
    ['a gap', entry, batch(10, 1), 'out-of-order'],
    ['a batch starting before the next sequence', entry, batch(8, 2), 'out-of-order'],
    ['a batch older than those kept', stored([0, 1, 2, 3, 4, 5, 6].map((s) => batch(s, 1))), batch(0, 1), 'out-of-order'],
    ['a known start with a different length', entry, batch(3, 3), 'out-of-order'],
    ['an older epoch', stored([batch(0, 1, 2)]), batch(1, 1, 1), 'fenced'],
    ['a newer epoch at sequence 0', entry, batch(0, 1, 1), 'append'],
    ['a newer epoch not at sequence 0', entry, batch(9, 1, 1), 'out-of-order'],
  ];
  it.each(cases)('%s', (_name, state, incoming, kind) => {
    expect(checkSequence(state, incoming).kind).toBe(kind);
  });

  it('answers a duplicate of each batch kept with the offsets it was stored at', () => {
    expect(checkSequence(entry, batch(0, 3))).toEqual({ kind: 'duplicate', baseOffset: 0, lastOffset: 2 });
    expect(checkSequence(entry, batch(3, 2))).toEqual({ kind: 'duplicate', baseOffset: 3, lastOffset: 4 });
    expect(checkSequence(entry, batch(5, 4))).toEqual({ kind: 'duplicate', baseOffset: 5, lastOffset: 8 });
  });

  it('follows sequences across the int32 wrap-around', () => {
    const near = stored([batch(MAX_SEQUENCE - 1, 1)]);
    expect(checkSequence(near, batch(MAX_SEQUENCE, 3)).kind).toBe('append');
    const wrapped = applyBatch(near, batch(MAX_SEQUENCE, 3), 1, 3, 1_000);
    expect(wrapped.batches.at(-1)?.lastSeq).toBe(1);
    expect(checkSequence(wrapped, batch(2, 1)).kind).toBe('append');
    expect(checkSequence(wrapped, batch(MAX_SEQUENCE, 3))).toEqual({ kind: 'duplicate', baseOffset: 1, lastOffset: 3 });
    expect(addSequence(MAX_SEQUENCE, 1)).toBe(0);
  });
});

describe('applyBatch', () => {
  it(`keeps the last ${PRODUCER_BATCHES_KEPT} batches, oldest first`, () => {
    const entry = stored([0, 1, 2, 3, 4, 5, 6].map((s) => batch(s, 1)));
    expect(entry?.batches.map((span) => span.firstSeq)).toEqual([2, 3, 4, 5, 6]);
  });

  it('changes nothing for a batch it already holds (a primary records a batch before its log does)', () => {
    const entry = stored([batch(0, 3)])!;
    expect(applyBatch(entry, batch(0, 3), 0, 2, 5_000)).toBe(entry);
  });

  it('starts over on a new epoch', () => {
    const entry = applyBatch(stored([batch(0, 3)]), batch(0, 1, 1), 3, 3, 2_000);
    expect(entry).toEqual({ epoch: 1, batches: [{ firstSeq: 0, lastSeq: 0, baseOffset: 3, lastOffset: 3 }], lastUpdateMs: 2_000 });
  });
});

describe('truncateEntry', () => {
  const entry = stored([batch(0, 3), batch(3, 2), batch(5, 4)])!; // offsets 0..2, 3..4, 5..8

  it('keeps the batches below the cut', () => {
    expect(truncateEntry(entry, 9)).toBe(entry);
    expect(truncateEntry(entry, 5)?.batches.map((span) => span.firstSeq)).toEqual([0, 3]);
    expect(truncateEntry(entry, 4)?.batches.map((span) => span.firstSeq)).toEqual([0]);
    expect(truncateEntry(entry, 0)).toBeUndefined();
  });

  it('after a cut, the batch that was removed is accepted again (the producer retries it to the new primary)', () => {
    const cut = truncateEntry(entry, 5);
    expect(checkSequence(cut, batch(5, 4)).kind).toBe('append');
  });
});

describe('PartitionProducers', () => {
  it('forgets a producer after the expiry, then accepts it at any sequence', () => {
    const producers = new PartitionProducers(1_000, 1_000);
    producers.apply(batch(0, 2), 0, 1, 10_000);
    expect(producers.check(batch(5, 1), 10_500).kind).toBe('out-of-order');
    expect(producers.check(batch(0, 2), 10_999).kind).toBe('duplicate');
    expect(producers.check(batch(5, 1), 11_000).kind).toBe('append');
    producers.takeChanges();
    producers.expire(11_000);
    expect(producers.size).toBe(0);
    expect(producers.takeChanges()).toEqual([[PID, undefined]]);
  });

  it('starts a new entry for a producer back after the expiry, before its old entry is swept', () => {
    const producers = new PartitionProducers(1_000, 1_000);
    producers.apply(batch(0, 2), 0, 1, 10_000);
    // Back after the expiry at sequence 5 (accepted as unknown), stored at offsets 10..10.
    expect(producers.check(batch(5, 1), 11_000).kind).toBe('append');
    producers.apply(batch(5, 1), 10, 10, 11_000);
    // Its old batch is not a duplicate any more: a new batch at sequence 0 follows nothing.
    expect(producers.check(batch(0, 2), 11_500).kind).toBe('out-of-order');
    expect(producers.check(batch(5, 1), 11_500)).toEqual({ kind: 'duplicate', baseOffset: 10, lastOffset: 10 });
  });

  it('after a truncation holds what a log that never had the removed batches holds', () => {
    const kept = [batch(0, 2), batch(0, 3, 0, 8), batch(2, 1)];
    const removed = [batch(3, 4), batch(3, 1, 0, 8), batch(0, 1, 0, 9)];
    const apply = (producers: PartitionProducers, batches: SequencedBatch[], from: number) => {
      let offset = from;
      for (const b of batches) {
        producers.apply(b, offset, offset + b.lastOffsetDelta, 1_000);
        offset += b.lastOffsetDelta + 1;
      }
      return offset;
    };
    const truncated = new PartitionProducers(60_000, 60_000);
    const end = apply(truncated, kept, 0);
    apply(truncated, removed, end);
    truncated.truncate(end);
    const never = new PartitionProducers(60_000, 60_000);
    apply(never, kept, 0);
    for (const pid of [PID, 8, 9]) expect(truncated.entry(pid, 1_000)).toEqual(never.entry(pid, 1_000));
    expect(truncated.size).toBe(2);
  });

  it('restores the entry a refused request had changed, and reloads from its rows (bytes, or the JSON text of schema 3)', () => {
    const producers = new PartitionProducers(60_000, 60_000);
    producers.apply(batch(0, 2), 0, 1, 1_000);
    const before = producers.apply(batch(2, 2), 2, 3, 1_000);
    producers.restore(PID, before);
    expect(producers.check(batch(2, 2), 1_000).kind).toBe('append');
    const changes = producers.takeChanges();
    for (const encode of [encodeSpans, JSON.stringify]) {
      const rows = changes.map(([producerId, entry]) => ({
        producer_id: producerId,
        epoch: entry!.epoch,
        last_update_ms: entry!.lastUpdateMs,
        batches: encode(entry!.batches),
        idempotency_key: null,
      }));
      const reloaded = new PartitionProducers(60_000, 60_000, rows);
      expect(reloaded.entry(PID, 1_000)).toEqual(producers.entry(PID, 1_000));
    }
  });

  it('stores spans as bytes that read back exactly, up to the largest sequence and offset', () => {
    const spans: BatchSpan[] = [
      { firstSeq: 0, lastSeq: 0, baseOffset: 0, lastOffset: 0 },
      { firstSeq: MAX_SEQUENCE - 2, lastSeq: MAX_SEQUENCE, baseOffset: 2 ** 40 + 1, lastOffset: 2 ** 40 + 3 },
      { firstSeq: 0, lastSeq: 6, baseOffset: Number.MAX_SAFE_INTEGER - 6, lastOffset: Number.MAX_SAFE_INTEGER },
    ];
    const bytes = encodeSpans(spans);
    expect(bytes.length).toBe(1 + 3 * 24);
    expect(decodeSpans(bytes)).toEqual(spans);
    // A view inside a larger buffer (how SQLite rows may arrive) reads the same.
    const framed = Buffer.concat([Buffer.from([9, 9]), bytes, Buffer.from([9])]);
    expect(decodeSpans(framed.subarray(2, 2 + bytes.length))).toEqual(spans);
    expect(decodeSpans(JSON.stringify(spans))).toEqual(spans);
    expect(() => decodeSpans(Buffer.from([2, ...bytes.subarray(1)]))).toThrow(/unknown layout \(first byte 2\)/);
    expect(() => decodeSpans(bytes.subarray(0, 20))).toThrow(/20 bytes have an unknown layout/);
    expect(() => decodeSpans(Buffer.alloc(0))).toThrow(/0 bytes have an unknown layout/);
  });
});

describe('idempotency keys', () => {
  const keyed = (key: string, records = 1): SequencedBatch => ({ producerId: keyedProducerId(key), producerEpoch: 0, baseSequence: 0, lastOffsetDelta: records - 1, key });

  it('derive a safe producer id in the keyed range', () => {
    for (const key of ['a', 'order-17', 'x'.repeat(256)]) {
      const id = keyedProducerId(key);
      expect(Number.isSafeInteger(id) && id >= KEYED_PRODUCER_ID_BASE).toBe(true);
      expect(keyedProducerId(key)).toBe(id);
    }
    expect(keyedProducerId('a')).not.toBe(keyedProducerId('b'));
  });

  it('store a request once per key within the window; a different key of the same id takes the entry over', () => {
    const producers = new PartitionProducers(60_000, 1_000);
    producers.apply(keyed('k', 3), 10, 12, 5_000);
    expect(producers.check(keyed('k', 3), 5_500)).toEqual({ kind: 'duplicate', baseOffset: 10, lastOffset: 12 });
    // The same key with other records is still the same request (like Nats-Msg-Id).
    expect(producers.check(keyed('k', 1), 5_500).kind).toBe('duplicate');
    expect(producers.check(keyed('k', 3), 6_000).kind).toBe('append');
    // A hash collision: same id, another key. It is stored, never mistaken for a duplicate.
    const collision = { ...keyed('other'), producerId: keyedProducerId('k') };
    expect(producers.check(collision, 5_500).kind).toBe('append');
    producers.apply(collision, 13, 13, 5_600);
    expect(producers.check(keyed('k', 3), 5_700).kind).toBe('append');
    expect(producers.check(collision, 5_700)).toEqual({ kind: 'duplicate', baseOffset: 13, lastOffset: 13 });
  });

  it('expire after the window while producers keep the producer expiry', () => {
    const producers = new PartitionProducers(60_000, 1_000);
    producers.apply(keyed('k'), 0, 0, 0);
    producers.apply(batch(0, 1), 1, 1, 0);
    producers.expire(1_000);
    expect(producers.size).toBe(1);
    expect(producers.entry(PID, 1_000)).toBeDefined();
  });
});
