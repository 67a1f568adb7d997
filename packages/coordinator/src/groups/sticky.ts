/**
 * The sticky balanced target of a consumer group, as a pure deterministic function:
 * every member keeps as many of its current partitions as its fair share allows,
 * member counts differ by at most one, and only the excess moves.
 */
export function stickyTarget(
  partitionCount: number,
  memberIds: readonly string[],
  current: ReadonlyArray<string | null>,
): Array<string | null> {
  const members = [...new Set(memberIds)].sort();
  const target: Array<string | null> = new Array(partitionCount).fill(null);
  if (members.length === 0) return target;

  const held = new Map<string, number[]>(members.map((m) => [m, []]));
  for (let p = 0; p < partitionCount; p++) {
    const m = current[p];
    if (m != null && held.has(m)) held.get(m)!.push(p);
  }

  // Fair shares: base each, and one more for `extra` members. The extra slots go to the members
  // holding the most now (ties: lowest id), so the fewest partitions move.
  const base = Math.floor(partitionCount / members.length);
  const extra = partitionCount % members.length;
  const byHeld = [...members].sort((a, b) => held.get(b)!.length - held.get(a)!.length || (a < b ? -1 : a > b ? 1 : 0));
  const capacity = new Map<string, number>(byHeld.map((m, i) => [m, base + (i < extra ? 1 : 0)]));

  const count = new Map<string, number>(members.map((m) => [m, 0]));
  for (const m of members) {
    for (const p of held.get(m)!.slice(0, capacity.get(m)!)) {
      target[p] = m;
      count.set(m, count.get(m)! + 1);
    }
  }
  // Every partition left over goes to the member with the most room left (ties: lowest id).
  for (let p = 0; p < partitionCount; p++) {
    if (target[p] !== null) continue;
    let best: string | null = null;
    for (const m of members) {
      const room = capacity.get(m)! - count.get(m)!;
      if (room > 0 && (best === null || room > capacity.get(best)! - count.get(best)!)) best = m;
    }
    // Capacities sum to partitionCount, so a member with room always exists here.
    if (best === null) throw new Error('stickyTarget: no member with room left');
    target[p] = best;
    count.set(best, count.get(best)! + 1);
  }
  return target;
}
