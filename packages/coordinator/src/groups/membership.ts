/**
 * The owner/acknowledge protocol of a consumer group, as pure functions over GroupState.
 *
 * A member's assignment is every partition whose target is the member and that no other
 * member still holds. When a member is answered, it holds (owns) its assignment. It gives up
 * a partition only by acknowledging (heartbeat with the current generation) an assignment
 * without it; only then can the partition's next target get it. Any change of any member's
 * assignment, or of the membership, bumps the generation, so an assignment is fixed per
 * generation and two members never hold one partition at the same time.
 */
import type { GroupState, MemberState } from '../model.js';
import { stickyTarget } from './sticky.js';

export function assignmentOf(group: GroupState, memberId: string): number[] {
  const out: number[] = [];
  for (let p = 0; p < group.target.length; p++) {
    const owner = group.owner[p];
    if (group.target[p] === memberId && (owner === null || owner === memberId)) out.push(p);
  }
  return out;
}

/** Partitions the member holds right now. */
export function ownedBy(group: GroupState, memberId: string): number[] {
  const out: number[] = [];
  group.owner.forEach((owner, p) => {
    if (owner === memberId) out.push(p);
  });
  return out;
}

function snapshot(group: GroupState): Map<string, string> {
  return new Map([...group.members.keys()].map((m) => [m, assignmentOf(group, m).join(',')]));
}

function sameAssignments(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [m, value] of a) if (b.get(m) !== value) return false;
  return true;
}

/**
 * Fits target to the topic's partition count, and owner to at least it: a topic may be deleted
 * and made again with another count, and a partition past the count stays with the member that
 * holds it until that member acknowledges an assignment without it. Forgetting it at once
 * would let a topic made again under the name hand it to another member while the first one
 * still consumes it.
 */
function fitPartitions(group: GroupState, partitionCount: number): void {
  group.target.length = Math.min(group.target.length, partitionCount);
  while (group.target.length < partitionCount) group.target.push(null);
  while (group.owner.length < partitionCount) group.owner.push(null);
  while (group.owner.length > partitionCount && group.owner.at(-1) === null) group.owner.pop();
}

/**
 * Applies `mutate` (which answers whether membership changed), recomputes the sticky
 * target, and bumps the generation when membership or any assignment changed.
 * Returns whether the generation was bumped.
 */
export function change(group: GroupState, partitionCount: number, mutate: () => boolean): boolean {
  const before = snapshot(group);
  const membershipChanged = mutate();
  fitPartitions(group, partitionCount);
  // Stickiness follows the target, and where there is none yet, whoever holds the partition.
  const current = group.target.map((t, p) => (t !== null && group.members.has(t) ? t : group.owner[p]));
  group.target = stickyTarget(partitionCount, [...group.members.keys()], current);
  const after = snapshot(group);
  if (membershipChanged || !sameAssignments(before, after)) {
    group.generation++;
    return true;
  }
  return false;
}

export function addMember(group: GroupState, partitionCount: number, member: MemberState): boolean {
  if (group.members.has(member.memberId)) throw new Error(`addMember: ${member.memberId} is already a member`);
  return change(group, partitionCount, () => {
    group.members.set(member.memberId, member);
    return true;
  });
}

/** Removes the member (leave or session timeout) and frees what it held at once. */
export function removeMember(group: GroupState, partitionCount: number, memberId: string): boolean {
  if (!group.members.has(memberId)) return false;
  return change(group, partitionCount, () => {
    group.members.delete(memberId);
    group.owner = group.owner.map((o) => (o === memberId ? null : o));
    return true;
  });
}

/**
 * The member applied the assignment of `generation`. When that is the current generation,
 * it releases every partition it holds that is no longer in its assignment.
 * Returns whether anything changed (ownership, acknowledged generation or generation).
 */
export function acknowledge(group: GroupState, partitionCount: number, memberId: string, generation: number): boolean {
  const member = group.members.get(memberId);
  if (!member) throw new Error(`acknowledge: ${memberId} is not a member`);
  if (generation !== group.generation) return false;
  let changed = member.ackedGeneration !== generation;
  member.ackedGeneration = generation;
  change(group, partitionCount, () => {
    const keep = new Set(assignmentOf(group, memberId));
    group.owner = group.owner.map((o, p) => {
      if (o === memberId && !keep.has(p)) {
        changed = true;
        return null;
      }
      return o;
    });
    return false;
  });
  return changed;
}

/**
 * The member is being answered: from now on it holds its assignment. Claiming never changes
 * another member's assignment (only partitions targeted at this member are claimed).
 * Returns the assignment and whether ownership changed.
 */
export function claim(group: GroupState, memberId: string): { assignment: number[]; changed: boolean } {
  const assignment = assignmentOf(group, memberId);
  let changed = false;
  for (const p of assignment) {
    if (group.owner[p] !== memberId) {
      // Why assert: handing out a partition another member holds would break the one-owner promise.
      if (group.owner[p] !== null) throw new Error(`claim: partition ${p} is held by ${group.owner[p]}`);
      group.owner[p] = memberId;
      changed = true;
    }
  }
  return { assignment, changed };
}
