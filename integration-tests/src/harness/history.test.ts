// Proves the history checker finds each kind of anomaly it reports, so a clean report means something.
import { describe, expect, it } from 'vitest';
import { History, recordId, recordValue } from './history.js';

function history(): History {
  const h = new History();
  for (let seq = 0; seq < 3; seq++) {
    const value = recordValue('k', seq, `u${seq}`);
    h.sending(value);
    h.produced(value, 'ok');
  }
  return h;
}

describe('History', () => {
  it('reports a clean history as clean', () => {
    const h = history();
    for (let seq = 0; seq < 3; seq++) h.delivered('g', recordValue('k', seq, `u${seq}`), 0, seq);
    expect(h.check('g')).toMatchObject({ acknowledged: 3, lost: [], unexpected: [], reordered: [], storedDuplicates: 0, redelivered: 0 });
  });

  it('reports lost, unexpected, reordered and redelivered records', () => {
    const h = history();
    h.delivered('g', recordValue('k', 2, 'u2'), 0, 0);
    h.delivered('g', recordValue('k', 0, 'u0'), 0, 1);
    h.delivered('g', recordValue('k', 0, 'u0'), 0, 1);
    h.delivered('g', recordValue('x', 0, 'never-sent'), 1, 0);
    const report = h.check('g');
    expect(report.lost).toEqual(['k:1:u1']);
    expect(report.unexpected).toEqual(['x:0:never-sent']);
    expect(report.reordered).toEqual([{ key: 'k', seq: 0, after: 2 }]);
    expect(report.redelivered).toBe(1);
    expect(report.storedDuplicates).toBe(0);
  });

  it('tells a record the log stored twice from a position delivered twice', () => {
    const h = history();
    for (let seq = 0; seq < 3; seq++) h.delivered('g', recordValue('k', seq, `u${seq}`), 0, seq);
    // Offset 3 holds a second copy of record 1 (a retried produce stored again) ...
    h.delivered('g', recordValue('k', 1, 'u1'), 0, 3);
    // ... and after a rebalance offsets 2 and 3 come again.
    h.delivered('g', recordValue('k', 2, 'u2'), 0, 2);
    h.delivered('g', recordValue('k', 1, 'u1'), 0, 3);
    expect(h.check('g')).toMatchObject({
      lost: [],
      unexpected: [],
      reordered: [],
      storedDuplicates: 1,
      duplicated: [{ value: 'k:1:u1', positions: ['0:1', '0:3'] }],
      redelivered: 2,
    });
  });

  it('reports a value whose bytes changed (or became text) as unexpected, and its record as lost', () => {
    const h = history();
    const changed = recordValue('k', 0, 'u0');
    changed[changed.length - 1] ^= 1;
    h.delivered('g', changed, 0, 0);
    h.delivered('g', Buffer.from(recordValue('k', 1, 'u1').toString('utf8')), 0, 1);
    h.delivered('g', recordValue('k', 2, 'u2'), 0, 2);
    const report = h.check('g');
    expect(report.unexpected).toHaveLength(2);
    expect(report.unexpected.every((id) => id.startsWith('corrupt:'))).toBe(true);
    expect(report.lost).toEqual(['k:0:u0', 'k:1:u1']);
    expect(recordId(null)).toBe('corrupt:null');
  });

  it('does not count a record the producer was unsure of as lost', () => {
    const h = new History();
    const value = recordValue('k', 0, 'u');
    h.sending(value);
    expect(h.check('g')).toMatchObject({ unknown: 1, lost: [] });
  });
});
