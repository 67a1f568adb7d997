// Proves the failover rule per partition: only an in-sync secondary is promoted (epoch + 1),
// otherwise the partition goes offline until an ISR member returns.
import { describe, expect, it } from 'vitest';
import type { PartitionState } from '../model.js';
import { reassign } from './failover.js';

const p = (over: Partial<PartitionState>): PartitionState => ({
  partition: 0,
  primary: 1,
  secondary: 2,
  epoch: 3,
  isr: [1, 2],
  lastIsr: [],
  version: 7,
  ...over,
});
const aliveOf = (...ids: number[]) => (id: number) => ids.includes(id);
const pickFrom = (...ids: number[]) => (exclude: readonly number[]) => ids.find((id) => !exclude.includes(id)) ?? null;

describe('reassign', () => {
  it('promotes an in-sync secondary and picks a new secondary', () => {
    expect(reassign(p({}), 2, aliveOf(2, 3), pickFrom(2, 3))).toEqual({
      kind: 'failover',
      next: { partition: 0, primary: 2, secondary: 3, epoch: 4, isr: [2], lastIsr: [], version: 7 },
    });
  });

  it('promotes with no secondary when no other broker is alive', () => {
    expect(reassign(p({}), 2, aliveOf(2), pickFrom(2))?.next).toMatchObject({ primary: 2, secondary: null, epoch: 4 });
  });

  it('takes the partition offline when the secondary is out of the ISR, and back when an ISR member returns', () => {
    const offline = reassign(p({ isr: [1] }), 2, aliveOf(2, 3), pickFrom(2, 3));
    expect(offline).toEqual({
      kind: 'offline',
      next: { partition: 0, primary: null, secondary: 2, epoch: 4, isr: [], lastIsr: [1], version: 7 },
    });
    // Broker 2 is alive but not in sync: still offline, nothing to do.
    expect(reassign(offline!.next, 2, aliveOf(2, 3), pickFrom(2, 3))).toBeNull();
    const back = reassign(offline!.next, 2, aliveOf(1, 2, 3), pickFrom(1, 2, 3));
    expect(back).toEqual({ kind: 'recovered', next: { partition: 0, primary: 1, secondary: 2, epoch: 5, isr: [1], lastIsr: [], version: 7 } });
  });

  it('takes an rf=1 partition offline with its primary', () => {
    const offline = reassign(p({ secondary: null, isr: [1] }), 1, aliveOf(2), pickFrom(2));
    expect(offline?.next).toMatchObject({ primary: null, secondary: null, isr: [], lastIsr: [1], version: 7 });
    expect(reassign(offline!.next, 1, aliveOf(1, 2), pickFrom(1, 2))?.next).toMatchObject({ primary: 1, secondary: null, epoch: 5 });
  });

  it('gives a secondary to an rf=2 partition that has none once a broker is available, without an epoch change', () => {
    const next = reassign(p({ secondary: null, isr: [1] }), 2, aliveOf(1, 3), pickFrom(1, 3));
    expect(next).toEqual({ kind: 'secondary-assigned', next: { partition: 0, primary: 1, secondary: 3, epoch: 3, isr: [1], lastIsr: [], version: 7 } });
  });

  it('leaves healthy partitions and dead secondaries alone', () => {
    expect(reassign(p({}), 2, aliveOf(1, 2), pickFrom(1, 2, 3))).toBeNull();
    expect(reassign(p({}), 2, aliveOf(1), pickFrom(1, 3))).toBeNull();
  });
});
