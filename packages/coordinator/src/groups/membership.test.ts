// Proves the group protocol's promises by simulation: across random joins, leaves, session
// timeouts and heartbeats, no two live members ever hold one partition at once; the target is
// sticky and balanced within one; and quiet rounds of heartbeats converge to a full assignment.
import { describe, expect, it } from 'vitest';
import type { GroupState } from '../model.js';
import { acknowledge, addMember, assignmentOf, claim, removeMember } from './membership.js';
import { stickyTarget } from './sticky.js';

function newGroup(): GroupState {
  return { group: 'g', topic: 't', generation: 0, members: new Map(), owner: [], target: [] };
}

/** What a client believes: the generation and assignment of the last answer it got. */
interface Client {
  generation: number;
  held: number[];
}

class Simulation {
  readonly group = newGroup();
  readonly clients = new Map<string, Client>();
  private next = 0;
  /** The topic's partition count: 0 while it is deleted; it may be made again with another count. */
  constructor(public partitions: number) {}

  private answer(memberId: string) {
    const { assignment } = claim(this.group, memberId);
    this.clients.set(memberId, { generation: this.group.generation, held: assignment });
  }

  join(): string {
    const id = `m${this.next++}`;
    addMember(this.group, this.partitions, {
      memberId: id,
      clientId: null,
      sessionTimeoutMs: 1000,
      lastHeartbeatMs: 0,
      ackedGeneration: 0,
    });
    this.answer(id);
    return id;
  }

  heartbeat(id: string) {
    acknowledge(this.group, this.partitions, id, this.clients.get(id)!.generation);
    this.answer(id);
  }

  /** Leave and session timeout look the same from here: the member and what it held are gone. */
  remove(id: string) {
    removeMember(this.group, this.partitions, id);
    this.clients.delete(id);
  }

  checkNoDoubleOwner() {
    const seen = new Map<number, string>();
    for (const [id, client] of this.clients) {
      for (const p of client.held) {
        expect(seen.get(p), `partition ${p} held by ${seen.get(p)} and ${id} (gen ${this.group.generation})`).toBeUndefined();
        seen.set(p, id);
      }
    }
  }

  settle() {
    for (let round = 0; round < 4; round++) for (const id of [...this.clients.keys()]) this.heartbeat(id);
  }
}

function seededRandom(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

describe('group membership protocol', () => {
  it('never lets two members hold one partition, across random joins, leaves, timeouts, heartbeats and topics deleted and made again', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const random = seededRandom(seed);
      const sim = new Simulation(1 + Math.floor(random() * 12));
      for (let step = 0; step < 300; step++) {
        const ids = [...sim.clients.keys()];
        const r = random();
        if (r < 0.15 || ids.length === 0) sim.join();
        else if (r < 0.25) sim.remove(ids[Math.floor(random() * ids.length)]);
        else if (r < 0.27) sim.partitions = 0; // the topic is deleted...
        else if (r < 0.3 || sim.partitions === 0) sim.partitions = 1 + Math.floor(random() * 12); // ...and made again
        else sim.heartbeat(ids[Math.floor(random() * ids.length)]);
        sim.checkNoDoubleOwner();
      }
      // Once nothing changes, a few heartbeat rounds hand out every partition, balanced.
      if (sim.clients.size > 0) {
        sim.settle();
        sim.checkNoDoubleOwner();
        const counts = [...sim.clients.values()].map((c) => c.held.length);
        expect(counts.reduce((a, b) => a + b, 0)).toBe(sim.partitions);
        expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
        const generation = sim.group.generation;
        sim.settle();
        expect(sim.group.generation, 'a settled group stays at its generation').toBe(generation);
      }
    }
  });

  it('bumps the generation on joins and leaves, and hands a partition over only after its holder acknowledged', () => {
    const sim = new Simulation(4);
    const a = sim.join();
    expect(sim.clients.get(a)).toEqual({ generation: 1, held: [0, 1, 2, 3] });
    const b = sim.join();
    expect(sim.group.generation).toBeGreaterThan(1);
    // b is targeted at two partitions but a still holds them: b gets nothing yet.
    expect(sim.clients.get(b)!.held).toEqual([]);
    sim.heartbeat(a); // a sees the new generation, still holds its old partitions until it acknowledges it
    sim.heartbeat(a); // acknowledges: releases two partitions
    expect(sim.clients.get(a)!.held).toHaveLength(2);
    sim.heartbeat(b);
    expect(sim.clients.get(b)!.held).toHaveLength(2);
    sim.checkNoDoubleOwner();
    const before = sim.group.generation;
    sim.remove(a);
    expect(sim.group.generation).toBeGreaterThan(before);
    sim.heartbeat(b);
    sim.heartbeat(b);
    expect(sim.clients.get(b)!.held).toEqual([0, 1, 2, 3]);
  });

  it('keeps a partition with its holder while the topic is deleted and made again, until that holder acknowledges', () => {
    const sim = new Simulation(2);
    const a = sim.join();
    const b = sim.join();
    sim.settle();
    expect(sim.clients.get(a)!.held).toEqual([0]);
    // Deleted: b heartbeats meanwhile; made again with four partitions: b heartbeats again.
    sim.partitions = 0;
    sim.heartbeat(b);
    sim.partitions = 4;
    sim.heartbeat(b);
    sim.heartbeat(b);
    // a has not acknowledged anything since: partition 0 is still its own, and nobody else's.
    expect(sim.group.owner[0]).toBe(a);
    sim.checkNoDoubleOwner();
    sim.settle();
    expect([...sim.clients.values()].map((c) => c.held.length).sort()).toEqual([2, 2]);
  });

  it('heartbeats carrying an old generation release nothing', () => {
    const sim = new Simulation(2);
    const a = sim.join();
    const staleGeneration = sim.clients.get(a)!.generation;
    sim.join();
    acknowledge(sim.group, 2, a, staleGeneration);
    expect(sim.group.owner).toEqual([a, a]);
    expect(assignmentOf(sim.group, a)).toHaveLength(1);
  });
});

describe('stickyTarget', () => {
  it('balances within one and is deterministic', () => {
    const target = stickyTarget(10, ['c', 'a', 'b'], []);
    const counts = ['a', 'b', 'c'].map((m) => target.filter((t) => t === m).length).sort();
    expect(counts).toEqual([3, 3, 4]);
    expect(stickyTarget(10, ['b', 'c', 'a'], [])).toEqual(target);
  });

  it('moves only the excess when a member joins, and keeps survivors in place when one leaves', () => {
    const before = stickyTarget(6, ['a', 'b', 'c'], []);
    const after = stickyTarget(6, ['a', 'b', 'c', 'd'], before);
    const moved = after.filter((m, p) => m !== before[p]).length;
    expect(moved).toBe(1); // shares become 2,2,1,1: one partition moves from a member of three to the newcomer
    expect(after.filter((m) => m === 'd')).toHaveLength(1);
    for (const [p, m] of after.entries()) if (m !== 'd') expect(before[p]).toBe(m);

    const without = stickyTarget(6, ['a', 'c', 'd'], after);
    for (const [p, m] of after.entries()) if (m !== 'b') expect(without[p]).toBe(m);
  });

  it('gives every partition to nobody without members, and idles extra members', () => {
    expect(stickyTarget(3, [], ['a', 'b', null])).toEqual([null, null, null]);
    const target = stickyTarget(2, ['a', 'b', 'c'], []);
    expect(new Set(target).size).toBe(2);
  });
});
