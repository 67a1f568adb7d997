/**
 * Where replicas go: pure functions over broker load, used when a topic is created
 * and when failover needs a new secondary.
 */
import type { TopicState } from '../model.js';

export interface BrokerLoad {
  primaries: number;
  /** Every replica the broker holds: primaries plus secondaries. */
  replicas: number;
}

/** Counts primaries and replicas per broker over every partition of `topics` (brokers in `brokerIds` start at zero). */
export function brokerLoad(topics: Iterable<TopicState>, brokerIds: Iterable<number> = []): Map<number, BrokerLoad> {
  const load = new Map<number, BrokerLoad>();
  const entry = (id: number) => {
    let e = load.get(id);
    if (!e) load.set(id, (e = { primaries: 0, replicas: 0 }));
    return e;
  };
  for (const id of brokerIds) entry(id);
  for (const topic of topics) {
    for (const p of topic.partitions) {
      if (p.primary !== null) {
        entry(p.primary).primaries++;
        entry(p.primary).replicas++;
      }
      if (p.secondary !== null) entry(p.secondary).replicas++;
    }
  }
  return load;
}

/** The candidate holding the fewest replicas (ties: fewest primaries, then lowest id), or null when there is none. */
export function leastLoaded(candidates: readonly number[], load: ReadonlyMap<number, BrokerLoad>): number | null {
  let best: number | null = null;
  for (const id of candidates) {
    if (best === null || compareLoad(id, best, load, 'replicas') < 0) best = id;
  }
  return best;
}

function compareLoad(a: number, b: number, load: ReadonlyMap<number, BrokerLoad>, first: keyof BrokerLoad): number {
  const la = load.get(a) ?? { primaries: 0, replicas: 0 };
  const lb = load.get(b) ?? { primaries: 0, replicas: 0 };
  const second: keyof BrokerLoad = first === 'primaries' ? 'replicas' : 'primaries';
  return la[first] - lb[first] || la[second] - lb[second] || a - b;
}

export interface PlacedPartition {
  primary: number;
  secondary: number | null;
}

/**
 * Places the partitions of a new topic: each primary on the live broker with the fewest
 * primaries, each secondary on another live broker with the fewest replicas, counting the
 * load already there, so several topics in a row stay balanced. The two replicas of a
 * partition are never on one broker. The caller checks there are enough live brokers.
 */
export function assignPartitions(
  partitionCount: number,
  replicationFactor: 1 | 2,
  liveBrokerIds: readonly number[],
  existingLoad: ReadonlyMap<number, BrokerLoad>,
): PlacedPartition[] {
  if (liveBrokerIds.length < replicationFactor) {
    throw new Error(`assignPartitions: ${liveBrokerIds.length} live brokers cannot hold ${replicationFactor} replicas`);
  }
  const load = new Map<number, BrokerLoad>();
  for (const id of liveBrokerIds) load.set(id, { ...(existingLoad.get(id) ?? { primaries: 0, replicas: 0 }) });
  const placed: PlacedPartition[] = [];
  for (let partition = 0; partition < partitionCount; partition++) {
    const { primary, secondary } = bestPlacement(replicationFactor, liveBrokerIds, load);
    load.get(primary)!.primaries++;
    load.get(primary)!.replicas++;
    if (secondary !== null) load.get(secondary)!.replicas++;
    // Why assert: two replicas on one broker would make replication meaningless.
    if (secondary === primary) throw new Error(`assignPartitions: partition ${partition} placed twice on broker ${primary}`);
    placed.push({ primary, secondary });
  }
  return placed;
}

/**
 * Greedy step: tries every (primary, secondary) pair and keeps the one that leaves the
 * smallest spread of replicas per broker, then of primaries per broker, then the least
 * loaded pair. Brokers are few (tens), so trying every pair is cheap.
 */
function bestPlacement(replicationFactor: 1 | 2, ids: readonly number[], load: Map<number, BrokerLoad>): PlacedPartition {
  let best: { placement: PlacedPartition; key: number[] } | null = null;
  const spreadAfter = (field: keyof BrokerLoad, plus: ReadonlyMap<number, number>) => {
    let min = Infinity;
    let max = -Infinity;
    for (const id of ids) {
      const value = load.get(id)![field] + (plus.get(id) ?? 0);
      min = Math.min(min, value);
      max = Math.max(max, value);
    }
    return max - min;
  };
  for (const primary of ids) {
    const secondaries = replicationFactor === 2 ? ids.filter((id) => id !== primary) : [null];
    for (const secondary of secondaries) {
      const replicasPlus = new Map([[primary, 1]]);
      if (secondary !== null) replicasPlus.set(secondary, 1);
      const lp = load.get(primary)!;
      const ls = secondary === null ? { primaries: 0, replicas: 0 } : load.get(secondary)!;
      const key = [
        spreadAfter('replicas', replicasPlus),
        spreadAfter('primaries', new Map([[primary, 1]])),
        lp.primaries,
        lp.replicas + ls.replicas,
        primary,
        secondary ?? 0,
      ];
      if (best === null || lexLess(key, best.key)) best = { placement: { primary, secondary }, key };
    }
  }
  return best!.placement;
}

function lexLess(a: number[], b: number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
}
