// Proves the order of move steps: a new replica is added before any is dropped, leadership
// goes only to an in-sync secondary, and a move whose brokers died is cancelled.
import { describe, expect, it } from 'vitest';
import type { MoveState, PartitionState } from '../model.js';
import { nextStep } from './steps.js';

const p = (over: Partial<PartitionState> = {}): PartitionState => ({ partition: 0, primary: 1, secondary: 2, epoch: 5, isr: [1, 2], lastIsr: [], version: 0, ...over });
const move = (targetPrimary: number, targetSecondary: number | null): MoveState => ({
  topic: 't',
  partition: 0,
  targetPrimary,
  targetSecondary,
  reason: 'rebalance',
  startedMs: 0,
});
const all = () => true;

describe('nextStep', () => {
  it('replaces a secondary by adding the new one first', () => {
    expect(nextStep(p(), move(1, 3), all, all)).toEqual({ kind: 'add', broker: 3 });
    expect(nextStep(p({ adding: 3 }), move(1, 3), all, all).kind).toBe('wait');
    expect(nextStep(p({ secondary: 3, isr: [1, 3] }), move(1, 3), all, all)).toEqual({ kind: 'done' });
  });

  it('moves a primary: add the target as secondary, transfer, then the old primary is replaced', () => {
    // (1,2) -> (3,4): add 3 in place of 2, transfer to 3, add 4 in place of 1.
    expect(nextStep(p(), move(3, 4), all, all)).toEqual({ kind: 'add', broker: 3 });
    expect(nextStep(p({ secondary: 3, isr: [1, 3] }), move(3, 4), all, all)).toEqual({ kind: 'transfer' });
    expect(nextStep(p({ primary: 3, secondary: 1, isr: [3, 1], epoch: 6 }), move(3, 4), all, all)).toEqual({ kind: 'add', broker: 4 });
  });

  it('hands leadership to a secondary that stays, instead of copying twice', () => {
    // (1,2) -> (3,2): transfer to 2 first, then 3 replaces 1, then transfer to 3.
    expect(nextStep(p(), move(3, 2), all, all)).toEqual({ kind: 'transfer' });
    expect(nextStep(p({ primary: 2, secondary: 1, isr: [2, 1] }), move(3, 2), all, all)).toEqual({ kind: 'add', broker: 3 });
  });

  it('transfers only to an in-sync secondary', () => {
    expect(nextStep(p({ isr: [1] }), move(2, 1), all, all).kind).toBe('wait');
  });

  it('drops the leftover secondary of an rf=1 move', () => {
    expect(nextStep(p({ primary: 2, secondary: 1, isr: [2, 1] }), move(2, null), all, all)).toEqual({ kind: 'drop-secondary' });
  });

  it('cancels when the primary, the replica being added or a target is gone', () => {
    const alive = (...ids: number[]) => (id: number) => ids.includes(id);
    expect(nextStep(p(), move(1, 3), alive(2, 3), all).kind).toBe('cancel');
    expect(nextStep(p({ adding: 3 }), move(1, 3), alive(1, 2), all).kind).toBe('cancel');
    expect(nextStep(p(), move(1, 3), all, (id) => id !== 3).kind).toBe('cancel');
  });
});
