// Proves topic placement is balanced (primaries and replicas per broker differ by at most one),
// counts existing load, and never puts both replicas of a partition on one broker.
import { describe, expect, it } from 'vitest';
import type { TopicState } from '../model.js';
import { assignPartitions, brokerLoad, leastLoaded } from './assignment.js';

function asTopic(name: string, placed: Array<{ primary: number; secondary: number | null }>): TopicState {
  return {
    name,
    replicationFactor: placed[0]?.secondary === null ? 1 : 2,
    config: { minInsyncReplicas: 1 },
    createdMs: 0,
    firstEpoch: 0,
    partitions: placed.map((p, partition) => ({ partition, ...p, epoch: 0, isr: [p.primary], lastIsr: [], version: 0 })),
  };
}

function spread(values: number[]): number {
  return Math.max(...values) - Math.min(...values);
}

describe('assignPartitions', () => {
  it('gives 3 brokers x 12 partitions 4 primaries and 8 replicas each', () => {
    const placed = assignPartitions(12, 2, [1, 2, 3], new Map());
    const load = brokerLoad([asTopic('t', placed)]);
    for (const id of [1, 2, 3]) expect(load.get(id)).toEqual({ primaries: 4, replicas: 8 });
    for (const p of placed) expect(p.secondary).not.toBe(p.primary);
  });

  it('keeps several topics in a row balanced by counting existing load', () => {
    const brokers = [1, 2, 3, 4, 5];
    const topics: TopicState[] = [];
    for (const [i, count] of [3, 7, 1, 4, 2, 9].entries()) {
      const placed = assignPartitions(count, 2, brokers, brokerLoad(topics, brokers));
      for (const p of placed) expect(p.secondary).not.toBe(p.primary);
      topics.push(asTopic(`t${i}`, placed));
      const load = brokerLoad(topics, brokers);
      const values = brokers.map((id) => load.get(id)!);
      expect(spread(values.map((v) => v.primaries))).toBeLessThanOrEqual(1);
      expect(spread(values.map((v) => v.replicas))).toBeLessThanOrEqual(1);
    }
  });

  it('places rf=1 with no secondary', () => {
    const placed = assignPartitions(4, 1, [7, 9], new Map());
    expect(placed.every((p) => p.secondary === null)).toBe(true);
    const load = brokerLoad([asTopic('t', placed)]);
    expect(load.get(7)!.primaries).toBe(2);
    expect(load.get(9)!.primaries).toBe(2);
  });

  it('puts new partitions on a newly added, empty broker first', () => {
    const existing = brokerLoad([asTopic('old', assignPartitions(6, 2, [1, 2], new Map()))], [1, 2, 3]);
    const placed = assignPartitions(3, 2, [1, 2, 3], existing);
    const load = brokerLoad([asTopic('new', placed)]);
    expect(load.get(3)!.replicas).toBe(3);
  });

  it('refuses to place more replicas than live brokers', () => {
    expect(() => assignPartitions(1, 2, [1], new Map())).toThrow();
  });
});

describe('leastLoaded', () => {
  it('picks the fewest replicas, then the lowest id, and null without candidates', () => {
    const load = new Map([
      [1, { primaries: 1, replicas: 3 }],
      [2, { primaries: 0, replicas: 2 }],
      [3, { primaries: 2, replicas: 2 }],
    ]);
    expect(leastLoaded([1, 2, 3], load)).toBe(2);
    expect(leastLoaded([1, 3], load)).toBe(3);
    expect(leastLoaded([], load)).toBeNull();
  });
});
