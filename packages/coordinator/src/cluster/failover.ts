/**
 * What happens to one partition when brokers die or come back, as a pure function.
 * Only an ISR member may lead: it holds every acknowledged record. Every change of
 * primary bumps the epoch, which fences the deposed primary.
 */
import type { PartitionState } from '../model.js';

export type ReassignKind = 'failover' | 'offline' | 'recovered' | 'secondary-assigned';

export interface Reassignment {
  kind: ReassignKind;
  next: PartitionState;
}

/**
 * Returns the partition's next assignment, or null when nothing needs to change.
 * `pickSecondary(exclude)` returns the least-loaded live broker not in `exclude`, or null.
 */
export function reassign(
  p: PartitionState,
  replicationFactor: number,
  isAlive: (brokerId: number) => boolean,
  pickSecondary: (exclude: readonly number[]) => number | null,
): Reassignment | null {
  if (p.primary !== null && !isAlive(p.primary)) {
    const dead = p.primary;
    if (p.secondary !== null && isAlive(p.secondary) && p.isr.includes(p.secondary)) {
      const primary = p.secondary;
      return {
        kind: 'failover',
        next: {
          partition: p.partition,
          primary,
          secondary: replicationFactor === 2 ? pickSecondary([primary, dead]) : null,
          epoch: p.epoch + 1,
          isr: [primary],
          lastIsr: [],
          version: p.version,
        },
      };
    }
    // No live in-sync replica: serving from an out-of-sync one would lose acknowledged records.
    return {
      kind: 'offline',
      next: { partition: p.partition, primary: null, secondary: p.secondary, epoch: p.epoch + 1, isr: [], lastIsr: [...p.isr], version: p.version },
    };
  }

  if (p.primary === null) {
    const primary = p.lastIsr.find(isAlive);
    if (primary === undefined) return null;
    let secondary: number | null = null;
    if (replicationFactor === 2) {
      // Prefer a live broker that already holds a replica (it has most of the log), else the least loaded.
      const replicaSet = [...new Set([...p.lastIsr, ...(p.secondary === null ? [] : [p.secondary])])].filter((id) => id !== primary);
      secondary = replicaSet.find(isAlive) ?? pickSecondary([primary]) ?? replicaSet[0] ?? null;
    }
    return {
      kind: 'recovered',
      next: { partition: p.partition, primary, secondary, epoch: p.epoch + 1, isr: [primary], lastIsr: [], version: p.version },
    };
  }

  if (replicationFactor === 2 && p.secondary === null) {
    const secondary = pickSecondary([p.primary]);
    if (secondary === null) return null;
    // The primary does not change, so the epoch does not either; the new secondary joins the ISR once caught up.
    return { kind: 'secondary-assigned', next: { ...p, isr: [...p.isr], lastIsr: [], secondary } };
  }
  return null;
}
