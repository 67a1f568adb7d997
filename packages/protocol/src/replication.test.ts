// Proves the head of a replication exchange is validated like every body: commits default to
// none, a push's order is taken as given, and a push without its byte count, with a bad offset,
// a bad order or an unknown field is refused.
import { describe, expect, it } from 'vitest';
import { replicateExchangeHead } from './replication.js';
import { parseOrThrow } from './validate.js';

const push = { topic: 't', partition: 0, epoch: 1, primaryId: 1, baseOffset: 0, hw: 0, bytes: 0 };

describe('replicateExchangeHead', () => {
  it('defaults each push to no commits', () => {
    expect(parseOrThrow(replicateExchangeHead, { from: 1, pushes: [push] }).pushes[0].commits).toEqual([]);
  });

  it("keeps a push's order", () => {
    const order = { run: 2 ** 47 - 1, seq: 12 };
    expect(parseOrThrow(replicateExchangeHead, { from: 1, pushes: [{ ...push, order }] }).pushes[0].order).toEqual(order);
  });

  it('refuses pushes without bytes, with a negative offset, a bad order, an unknown field, or none at all', () => {
    const { bytes: _bytes, ...noBytes } = push;
    for (const head of [
      { from: 1, pushes: [noBytes] },
      { from: 1, pushes: [{ ...push, baseOffset: -1 }] },
      { from: 1, pushes: [{ ...push, order: { run: 1, seq: -1 } }] },
      { from: 1, pushes: [{ ...push, order: { run: 1.5, seq: 1 } }] },
      { from: 1, pushes: [{ ...push, order: { run: 1 } }] },
      { from: 1, pushes: [{ ...push, order: { run: 1, seq: 1, at: 0 } }] },
      { from: 1, pushes: [{ ...push, records: [] }] },
      { from: 1, pushes: [] },
      { pushes: [push] },
    ]) {
      expect(() => parseOrThrow(replicateExchangeHead, head)).toThrow(expect.objectContaining({ code: 'INVALID_REQUEST' }));
    }
  });
});
