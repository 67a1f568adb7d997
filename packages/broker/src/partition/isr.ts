/**
 * The ISR as a primary counts it, as one type. The HW only ever counts every replica the
 * coordinator might consider in sync, so while a change is asked for and not yet answered
 * both the old and the new membership must be honoured:
 * - `committed`: what the coordinator answered or the map says;
 * - `pending-expand`: a caught-up secondary was proposed; it counts for the HW from the moment
 *   it is proposed (if the answer is lost, the coordinator may already count it and promote it);
 * - `pending-shrink`: a failing secondary is proposed for removal; it still counts until the
 *   coordinator accepted (the primary never goes on alone before that).
 * In both pending states `members` therefore holds the larger of the two memberships.
 */
export type IsrState =
  | { kind: 'committed'; members: readonly number[] }
  | { kind: 'pending-expand'; members: readonly number[]; joining: number }
  | { kind: 'pending-shrink'; members: readonly number[]; leaving: number };

export function committedIsr(members: readonly number[]): IsrState {
  return { kind: 'committed', members: [...members] };
}

/** Proposing `joining`: it counts at once. */
export function expandingIsr(state: IsrState, joining: number): IsrState {
  const members = state.members.includes(joining) ? [...state.members] : [...state.members, joining];
  return { kind: 'pending-expand', members, joining };
}

/** Proposing to remove `leaving`: it keeps counting until the coordinator accepted. */
export function shrinkingIsr(state: IsrState, leaving: number): IsrState {
  return { kind: 'pending-shrink', members: [...state.members], leaving };
}

export function sameMembers(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}
