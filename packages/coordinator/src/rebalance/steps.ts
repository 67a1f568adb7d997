/**
 * The next step of a partition move, as a pure function. A move never lowers redundancy:
 *   - `add`: a new replica is added next to the primary and secondary (the assignment's
 *     `adding`); the primary catches it up like an out-of-ISR secondary, and when it has caught
 *     up the primary asks the coordinator to make it the secondary with ISR [primary, it]
 *     (`reassign-complete`): the old secondary is dropped only then;
 *   - `transfer`: leadership goes to the in-sync secondary (epoch + 1, ISR [new, old primary]);
 *     the old primary follows and its unacknowledged tail is truncated by the divergence check;
 *   - `drop-secondary`: for rf=1 only, the old primary left over by a transfer is let go.
 * Moving a primary is therefore: add the target as secondary, transfer, then replace the old
 * primary (now secondary) if it is not part of the target.
 */
import type { MoveState, PartitionState } from '../model.js';

export type MoveStep =
  | { kind: 'done' }
  | { kind: 'add'; broker: number }
  | { kind: 'transfer' }
  | { kind: 'drop-secondary' }
  | { kind: 'wait'; why: string }
  | { kind: 'cancel'; why: string };

/** What to do next for `move` on partition `p`; `usable(id)` is true for live brokers that may receive replicas. */
export function nextStep(p: PartitionState, move: MoveState, isAlive: (id: number) => boolean, usable: (id: number) => boolean): MoveStep {
  const { targetPrimary: tp, targetSecondary: ts } = move;
  if (p.primary === null || !isAlive(p.primary)) return { kind: 'cancel', why: 'the primary is offline or dead' };
  const adding = p.adding ?? null;
  if (adding !== null) {
    if (!isAlive(adding)) return { kind: 'cancel', why: `broker ${adding} being added died` };
    return { kind: 'wait', why: `broker ${adding} is catching up` };
  }
  if (p.primary === tp && p.secondary === ts) return { kind: 'done' };
  for (const target of [tp, ts]) {
    const heldAlready = target === p.primary || target === p.secondary;
    if (target !== null && (!isAlive(target) || (!heldAlready && !usable(target)))) {
      return { kind: 'cancel', why: `target broker ${target} is dead or draining` };
    }
  }
  if (p.primary === tp) {
    if (ts === null) return { kind: 'drop-secondary' };
    return { kind: 'add', broker: ts };
  }
  // The primary must change. Only an in-sync secondary may take over (it holds every acknowledged record).
  if (p.secondary !== null && (p.secondary === tp || p.secondary === ts)) {
    if (p.isr.includes(p.secondary) && isAlive(p.secondary)) return { kind: 'transfer' };
    return { kind: 'wait', why: `secondary ${p.secondary} is not in the ISR yet` };
  }
  return { kind: 'add', broker: tp };
}
