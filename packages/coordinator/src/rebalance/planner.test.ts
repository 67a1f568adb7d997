// Proves the rebalance planner: after a broker joins or one drains, every eligible broker's
// primaries and replicas differ by at most one, nothing stays on a draining broker, and the
// number of replica copies is the least possible (each move takes one replica of excess).
import { describe, expect, it } from 'vitest';
import { planRebalance, type PlannedMove, type PlannerPartition } from './planner.js';

/** A topic placed round-robin over `brokers`, like a topic created on a cluster of that size. */
function topic(name: string, partitions: number, brokers: number[], replicationFactor = 2): PlannerPartition[] {
  return Array.from({ length: partitions }, (_, partition) => ({
    topic: name,
    partition,
    replicationFactor,
    primary: brokers[partition % brokers.length],
    secondary: replicationFactor === 2 ? brokers[(partition + 1) % brokers.length] : null,
  }));
}

function apply(partitions: PlannerPartition[], moves: PlannedMove[]): PlannerPartition[] {
  return partitions.map((p) => {
    const move = moves.find((m) => m.topic === p.topic && m.partition === p.partition);
    return move ? { ...p, primary: move.to.primary, secondary: move.to.secondary } : p;
  });
}

function counts(partitions: PlannerPartition[], brokers: number[]) {
  const primaries = new Map(brokers.map((id) => [id, 0]));
  const replicas = new Map(brokers.map((id) => [id, 0]));
  for (const p of partitions) {
    if (p.primary !== null) {
      primaries.set(p.primary, (primaries.get(p.primary) ?? 0) + 1);
      replicas.set(p.primary, (replicas.get(p.primary) ?? 0) + 1);
    }
    if (p.secondary !== null) replicas.set(p.secondary, (replicas.get(p.secondary) ?? 0) + 1);
  }
  return { primaries, replicas };
}

const spread = (values: Map<number, number>, ids: number[]) => {
  const list = ids.map((id) => values.get(id) ?? 0);
  return Math.max(...list) - Math.min(...list);
};

/** Replica copies a plan makes: brokers in the target that did not hold the partition before. */
const copies = (moves: PlannedMove[]) =>
  moves.reduce((sum, m) => sum + [m.to.primary, m.to.secondary].filter((id) => id !== null && id !== m.from.primary && id !== m.from.secondary).length, 0);

describe('planRebalance', () => {
  it('gives a joining broker its share of replicas and primaries with the fewest copies', () => {
    const before = topic('t', 12, [1, 2, 3]);
    const moves = planRebalance({ eligible: [1, 2, 3, 4], live: [1, 2, 3, 4], partitions: before });
    const after = counts(apply(before, moves), [1, 2, 3, 4]);
    expect(spread(after.replicas, [1, 2, 3, 4])).toBeLessThanOrEqual(1);
    expect(spread(after.primaries, [1, 2, 3, 4])).toBeLessThanOrEqual(1);
    // 24 replicas over 4 brokers: broker 4 needs 6, each one copy.
    expect(copies(moves)).toBe(6);
    for (const m of moves) expect(m.to.primary).not.toBe(m.to.secondary);
  });

  it('balances several topics together, and rf=1 topics too', () => {
    const before = [...topic('a', 5, [1, 2]), ...topic('b', 7, [2, 1]), ...topic('c', 4, [1, 2], 1)];
    const brokers = [1, 2, 3];
    const moves = planRebalance({ eligible: brokers, live: brokers, partitions: before });
    const after = counts(apply(before, moves), brokers);
    expect(spread(after.replicas, brokers)).toBeLessThanOrEqual(1);
    expect(spread(after.primaries, brokers)).toBeLessThanOrEqual(1);
  });

  it('moves everything off a draining broker', () => {
    const before = topic('t', 12, [1, 2, 3, 4]);
    const eligible = [2, 3, 4];
    const moves = planRebalance({ eligible, live: [1, 2, 3, 4], partitions: before });
    const placed = apply(before, moves);
    expect(placed.filter((p) => p.primary === 1 || p.secondary === 1)).toEqual([]);
    const after = counts(placed, eligible);
    expect(spread(after.replicas, eligible)).toBeLessThanOrEqual(1);
    expect(spread(after.primaries, eligible)).toBeLessThanOrEqual(1);
    // Broker 1 held 6 replicas: exactly 6 copies elsewhere.
    expect(copies(moves)).toBe(6);
  });

  it('plans nothing for a balanced map', () => {
    expect(planRebalance({ eligible: [1, 2, 3], live: [1, 2, 3], partitions: topic('t', 9, [1, 2, 3]) })).toEqual([]);
  });

  it('leaves pinned, offline and dead-primary partitions alone but counts them', () => {
    const before: PlannerPartition[] = [
      ...topic('t', 6, [1, 2]),
      { topic: 'off', partition: 0, replicationFactor: 2, primary: null, secondary: 1 },
      { topic: 'dead', partition: 0, replicationFactor: 2, primary: 9, secondary: 1 },
    ];
    before[0] = { ...before[0], pinned: true };
    const moves = planRebalance({ eligible: [1, 2, 3], live: [1, 2, 3], partitions: before });
    const touched = moves.map((m) => `${m.topic}/${m.partition}`);
    expect(touched).not.toContain('t/0');
    expect(touched).not.toContain('off/0');
    expect(touched).not.toContain('dead/0');
    const after = counts(apply(before, moves).filter((p) => p.topic === 't'), [1, 2, 3]);
    expect(spread(after.replicas, [1, 2, 3])).toBeLessThanOrEqual(2);
  });

  it('leaves partitions whose secondary is dead to the replacement of dead secondaries', () => {
    // A move keeping the dead secondary in its target is cancelled at its first step (the target
    // is dead), and planned again at the next pass: a start and a cancel every pass, for nothing.
    const before: PlannerPartition[] = Array.from({ length: 6 }, (_, partition) => ({
      topic: 'half',
      partition,
      replicationFactor: 2,
      primary: 1,
      secondary: 9,
    }));
    const moves = planRebalance({ eligible: [1, 2, 3], live: [1, 2, 3], partitions: before });
    expect(moves).toEqual([]);
  });

  it('balances primaries by leadership transfer alone when replicas are already even', () => {
    // Every replica count is 4, but broker 1 leads everything.
    const before: PlannerPartition[] = [
      { topic: 't', partition: 0, replicationFactor: 2, primary: 1, secondary: 2 },
      { topic: 't', partition: 1, replicationFactor: 2, primary: 1, secondary: 3 },
      { topic: 't', partition: 2, replicationFactor: 2, primary: 1, secondary: 2 },
      { topic: 't', partition: 3, replicationFactor: 2, primary: 1, secondary: 3 },
      { topic: 't', partition: 4, replicationFactor: 2, primary: 2, secondary: 3 },
      { topic: 't', partition: 5, replicationFactor: 2, primary: 3, secondary: 2 },
    ];
    const moves = planRebalance({ eligible: [1, 2, 3], live: [1, 2, 3], partitions: before });
    expect(copies(moves)).toBe(0);
    const after = counts(apply(before, moves), [1, 2, 3]);
    expect(spread(after.primaries, [1, 2, 3])).toBeLessThanOrEqual(1);
  });

  it('balances leadership after every broker returned, by transfers to in-sync secondaries only', () => {
    // A round-robin placement whose partitions came back online as brokers 3, 2, 1 returned: 0 / 2 / 4 primaries.
    const led = (partition: number, primary: number, secondary: number): PlannerPartition => ({ topic: 't', partition, replicationFactor: 2, primary, secondary, inSync: true });
    const before = [led(0, 2, 1), led(1, 3, 2), led(2, 3, 1), led(3, 2, 1), led(4, 3, 2), led(5, 3, 1)];
    const primariesBefore = counts(before, [1, 2, 3]).primaries;
    expect(spread(primariesBefore, [1, 2, 3])).toBeGreaterThan(1);
    const moves = planRebalance({ eligible: [1, 2, 3], live: [1, 2, 3], partitions: before, leadershipOnly: true });
    expect(copies(moves)).toBe(0);
    for (const m of moves) expect(m.to).toEqual({ primary: m.from.secondary, secondary: m.from.primary });
    expect(spread(counts(apply(before, moves), [1, 2, 3]).primaries, [1, 2, 3])).toBeLessThanOrEqual(1);
  });

  it('moves no leadership to a secondary that is not in sync, and moves no replica, in leadership-only mode', () => {
    const before: PlannerPartition[] = [
      { topic: 't', partition: 0, replicationFactor: 2, primary: 1, secondary: 2, inSync: false },
      { topic: 't', partition: 1, replicationFactor: 2, primary: 1, secondary: 2, inSync: true },
      { topic: 't', partition: 2, replicationFactor: 2, primary: 1, secondary: 2, inSync: false },
    ];
    const moves = planRebalance({ eligible: [1, 2, 3], live: [1, 2, 3], partitions: before, leadershipOnly: true });
    // Broker 3 holds nothing and gets nothing (that would be a copy); one transfer to broker 2 is all it may do.
    expect(moves).toEqual([{ topic: 't', partition: 1, from: { primary: 1, secondary: 2 }, to: { primary: 2, secondary: 1 } }]);
  });

  it('balances primaries through a chain of transfers when no single one helps', () => {
    // Primaries 3 / 2 / 1: broker 1's partitions all follow broker 2, and only broker 2's reach broker 3.
    const before: PlannerPartition[] = [
      { topic: 't', partition: 0, replicationFactor: 2, primary: 1, secondary: 2, inSync: true },
      { topic: 't', partition: 1, replicationFactor: 2, primary: 1, secondary: 2, inSync: true },
      { topic: 't', partition: 2, replicationFactor: 2, primary: 1, secondary: 2, inSync: true },
      { topic: 't', partition: 3, replicationFactor: 2, primary: 2, secondary: 3, inSync: true },
      { topic: 't', partition: 4, replicationFactor: 2, primary: 2, secondary: 3, inSync: true },
      { topic: 't', partition: 5, replicationFactor: 2, primary: 3, secondary: 1, inSync: true },
    ];
    const moves = planRebalance({ eligible: [1, 2, 3], live: [1, 2, 3], partitions: before, leadershipOnly: true });
    const after = counts(apply(before, moves), [1, 2, 3]).primaries;
    expect([...after.values()]).toEqual([2, 2, 2]);
    expect(moves).toHaveLength(2);
  });
});
