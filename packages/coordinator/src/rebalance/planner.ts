/**
 * The rebalance planner, as a pure function: from where every partition's replicas are now,
 * a target map in which every eligible broker (alive and not draining) holds a number of
 * replicas, and of primaries, that differs from every other eligible broker's by at most one,
 * and nothing is left on a draining broker — reached with as few replica moves as it can.
 *
 * Greedy, in three passes over a working copy of the map:
 *   1. evacuate: every replica on a live draining broker goes to the least-loaded eligible
 *      broker (a draining primary first hands leadership to an eligible secondary, which
 *      costs no copy);
 *   2. replicas: while the most-loaded eligible broker holds two replicas more than the least
 *      loaded, move one replica from it to the least loaded (each such move removes exactly
 *      one replica of excess, so no plan can do it with fewer moves);
 *   3. primaries: while primaries differ by more than one, swap the roles of partitions along the
 *      shortest chain from a broker with the most primaries to one with two fewer (leadership
 *      transfers: no copy at all).
 * Ties go to partitions the plan already changes, so moves concentrate on few partitions.
 *
 * With `leadershipOnly` only pass 3 runs, and only over partitions whose secondary is in sync
 * (`inSync`): the automatic leadership balance after brokers return, which copies nothing.
 *
 * Partitions that are offline, whose primary or secondary is dead, or that are `pinned` (a move
 * is already running on them) are left where they are but counted. Replicas on dead brokers are
 * left for failover and the replacement of dead secondaries.
 */

export interface PlannerPartition {
  topic: string;
  partition: number;
  replicationFactor: number;
  primary: number | null;
  secondary: number | null;
  /** A move already runs on this partition: count it where it is going, do not touch it. */
  pinned?: boolean;
  /** The secondary is alive and in the ISR, so leadership can go to it at once (read by `leadershipOnly`). */
  inSync?: boolean;
}

export interface PlannerInput {
  /** Brokers that may hold replicas: alive and not draining. */
  eligible: readonly number[];
  /** Every live broker (eligible or draining). */
  live: readonly number[];
  partitions: readonly PlannerPartition[];
  /** Balance primaries only, by leadership transfers to in-sync secondaries; no replica moves. */
  leadershipOnly?: boolean;
}

export interface Placement {
  primary: number | null;
  secondary: number | null;
}

export interface PlannedMove {
  topic: string;
  partition: number;
  from: Placement;
  to: { primary: number; secondary: number | null };
}

interface Working {
  source: PlannerPartition;
  primary: number | null;
  secondary: number | null;
  fixed: boolean;
}

interface Load {
  primaries: number;
  replicas: number;
}

export function planRebalance(input: PlannerInput): PlannedMove[] {
  const eligible = [...new Set(input.eligible)].sort((a, b) => a - b);
  if (eligible.length === 0) return [];
  const isEligible = new Set(eligible);
  const isLive = new Set(input.live);
  const work: Working[] = input.partitions.map((p) => ({
    source: p,
    primary: p.primary,
    secondary: p.secondary,
    // A dead secondary is replaced by its own rule (`replaceDeadAfterMs`); a move keeping it in its
    // target would be cancelled at its first step and planned again at the next pass.
    fixed: p.pinned === true || p.primary === null || !isLive.has(p.primary) || (p.secondary !== null && !isLive.has(p.secondary)),
  }));
  const changed = (w: Working) => w.primary !== w.source.primary || w.secondary !== w.source.secondary;

  const load = new Map<number, Load>(eligible.map((id) => [id, { primaries: 0, replicas: 0 }]));
  const add = (w: Working, delta: 1 | -1) => {
    if (w.primary !== null && load.has(w.primary)) {
      load.get(w.primary)!.primaries += delta;
      load.get(w.primary)!.replicas += delta;
    }
    if (w.secondary !== null && load.has(w.secondary)) load.get(w.secondary)!.replicas += delta;
  };
  for (const w of work) add(w, 1);
  /** Applies a change to a partition, keeping the load in step. */
  const place = (w: Working, primary: number | null, secondary: number | null) => {
    add(w, -1);
    w.primary = primary;
    w.secondary = secondary;
    add(w, 1);
    // Why assert: two replicas on one broker would make replication meaningless.
    if (w.primary !== null && w.primary === w.secondary) {
      throw new Error(`planRebalance: ${w.source.topic}/${w.source.partition} placed twice on broker ${w.primary}`);
    }
  };
  const leastLoaded = (exclude: Array<number | null>, first: keyof Load): number | null => {
    let best: number | null = null;
    for (const id of eligible) {
      if (exclude.includes(id)) continue;
      if (best === null || compare(load.get(id)!, load.get(best)!, first) < 0) best = id;
    }
    return best;
  };

  const leadershipOnly = input.leadershipOnly === true;
  // 1. Evacuate live draining brokers.
  for (const w of leadershipOnly ? [] : work) {
    if (w.fixed) continue;
    if (w.primary !== null && !isEligible.has(w.primary)) {
      if (w.secondary !== null && isEligible.has(w.secondary)) {
        place(w, w.secondary, w.primary);
      } else {
        const primary = leastLoaded([w.secondary], 'primaries');
        if (primary !== null) place(w, primary, w.secondary);
      }
    }
    if (w.secondary !== null && isLive.has(w.secondary) && !isEligible.has(w.secondary)) {
      const secondary = leastLoaded([w.primary], 'replicas');
      // With rf=1 the "secondary" is a leftover of a move: simply drop it.
      if (w.source.replicationFactor === 1) place(w, w.primary, null);
      else if (secondary !== null) place(w, w.primary, secondary);
    }
  }

  const movable = work.filter((w) => !w.fixed && w.primary !== null && isEligible.has(w.primary));
  const bound = 4 * (work.length + eligible.length) + 16;
  const extremes = (field: keyof Load) => {
    let hi = eligible[0];
    let lo = eligible[0];
    for (const id of eligible) {
      if (compare(load.get(id)!, load.get(hi)!, field) > 0) hi = id;
      if (compare(load.get(id)!, load.get(lo)!, field) < 0) lo = id;
    }
    return { hi, lo, spread: load.get(hi)![field] - load.get(lo)![field] };
  };
  /** The first candidate, preferring partitions the plan already changes (fewer partitions touched). */
  const pick = (candidates: Working[]) => candidates.find(changed) ?? candidates[0];

  // 2. Replicas per broker.
  for (let i = 0; i < (leadershipOnly ? 0 : bound); i++) {
    const { hi, lo, spread } = extremes('replicas');
    if (spread <= 1) break;
    const free = movable.filter((w) => w.primary !== lo && w.secondary !== lo);
    // Moving a secondary keeps primaries where they are; move a primary only when no secondary can go,
    // and then preferably from a broker with too many primaries.
    const secondary = pick(free.filter((w) => w.secondary === hi));
    if (secondary !== undefined) {
      place(secondary, secondary.primary, lo);
      continue;
    }
    const primary = pick(free.filter((w) => w.primary === hi));
    if (primary === undefined) break;
    place(primary, lo, primary.secondary);
  }

  // 3. Primaries per broker, by leadership transfers between the two replicas of a partition.
  // A transfer moves one primary from a partition's primary broker to its secondary broker. The
  // shortest chain of transfers from a broker with the most primaries to one with at least two
  // fewer lowers the first by one and raises the last by one (brokers in between keep their count);
  // a single transfer is the chain of length one. Chains matter when the fullest broker's
  // partitions all follow brokers that are nearly as full.
  const transferable = (w: Working) =>
    w.secondary !== null && isEligible.has(w.secondary) && (!leadershipOnly || w.source.inSync === true);
  const chainFrom = (from: number): Working[] | null => {
    const want = load.get(from)!.primaries - 2;
    const via = new Map<number, Working | null>([[from, null]]);
    const queue = [from];
    for (let head = 0; head < queue.length; head++) {
      const at = queue[head];
      // Partitions the plan already changes first, then the direct way to the emptiest broker.
      const edges = movable.filter((w) => w.primary === at && transferable(w));
      edges.sort((a, b) => Number(changed(b)) - Number(changed(a)) || load.get(a.secondary!)!.primaries - load.get(b.secondary!)!.primaries);
      for (const w of edges) {
        const next = w.secondary!;
        if (via.has(next)) continue;
        via.set(next, w);
        if (load.get(next)!.primaries <= want) {
          const chain: Working[] = [];
          for (let step = via.get(next); step; step = via.get(step.primary!)) chain.push(step);
          return chain;
        }
        queue.push(next);
      }
    }
    return null;
  };
  for (let i = 0; i < bound; i++) {
    if (extremes('primaries').spread <= 1) break;
    const fullestFirst = [...eligible].sort((a, b) => load.get(b)!.primaries - load.get(a)!.primaries);
    let chain: Working[] | null = null;
    for (const id of fullestFirst) if ((chain = chainFrom(id))) break;
    if (!chain) break;
    for (const w of chain) place(w, w.secondary, w.primary);
  }

  return work
    .filter((w) => !w.fixed && changed(w) && w.primary !== null)
    .map((w) => ({
      topic: w.source.topic,
      partition: w.source.partition,
      from: { primary: w.source.primary, secondary: w.source.secondary },
      to: { primary: w.primary!, secondary: w.secondary },
    }));
}

/** Orders brokers by `first` (replicas or primaries), then the other, then nothing (ids break ties by order). */
function compare(a: Load, b: Load, first: keyof Load): number {
  const second: keyof Load = first === 'primaries' ? 'replicas' : 'primaries';
  return a[first] - b[first] || a[second] - b[second];
}
