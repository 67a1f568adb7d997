/**
 * The history checker: it records what producers were told about every record (ok,
 * failed, unknown) and every delivery to a consumer group, then reports what a user
 * of a broker cares about: acknowledged records never delivered (lost), deliveries of
 * records never sent or whose bytes changed (unexpected), a key's records delivered out of the order they
 * were acknowledged in (reordered), and records delivered more than once, told apart by where
 * they come from:
 * - stored duplicates: one produced record found at two (or more) positions of the log, i.e. the
 *   log stored it twice (a retried produce stored again; the idempotent producer prevents it);
 * - redelivered: one position delivered to the group again (after a rebalance or a crash, records
 *   after the last commit come again: at-least-once, allowed but counted).
 */

import { createHash } from 'node:crypto';

export type ProduceOutcome = 'ok' | 'failed' | 'unknown';

/**
 * Every record value a workload sends is bytes: its id `${key}:${seq}:${unique}` as text,
 * a NUL byte, then check bytes derived from the id that are not valid UTF-8 (0xff 0xfe and
 * eight bytes of its SHA-256). So a delivery names its origin, and a value changed on the
 * way (or turned into text) shows up as corrupt.
 */
export function recordValue(key: string, seq: number, unique: string): Buffer {
  const id = `${key}:${seq}:${unique}`;
  return Buffer.concat([Buffer.from(id, 'utf8'), Buffer.from([0]), checkBytes(id)]);
}

function checkBytes(id: string): Buffer {
  return Buffer.concat([Buffer.from([0xff, 0xfe]), createHash('sha256').update(id).digest().subarray(0, 8)]);
}

/** The id of a value made by `recordValue`, or `corrupt:<base64>` when its bytes are not intact. */
export function recordId(value: Buffer | null): string {
  if (value === null) return 'corrupt:null';
  const nul = value.indexOf(0);
  if (nul > 0) {
    const id = value.subarray(0, nul).toString('utf8');
    if (value.subarray(nul + 1).equals(checkBytes(id))) return id;
  }
  return `corrupt:${value.toString('base64')}`;
}

function parseValue(value: string): { key: string; seq: number } | undefined {
  const parts = value.split(':');
  if (parts.length < 3) return undefined;
  const seq = Number(parts[parts.length - 2]);
  if (!Number.isInteger(seq)) return undefined;
  return { key: parts.slice(0, -2).join(':'), seq };
}

export interface CheckReport {
  sent: number;
  acknowledged: number;
  failed: number;
  unknown: number;
  delivered: number;
  lost: string[];
  unexpected: string[];
  reordered: Array<{ key: string; seq: number; after: number }>;
  /** Deliveries of a record at a position other than the first one it was delivered at: extra copies in the log. */
  storedDuplicates: number;
  /** The records stored twice, with every position they were delivered at (`partition:offset`), for diagnosis. */
  duplicated: Array<{ value: string; positions: string[] }>;
  /** Deliveries of a position (partition, offset) already delivered to the group. */
  redelivered: number;
}

export class History {
  private readonly outcomes = new Map<string, ProduceOutcome>();
  /** Deliveries per consumer group, in the order the group's members processed them. */
  private readonly groups = new Map<string, Array<{ value: string; partition: number; offset: number }>>();

  /** Call before sending, so a record whose outcome never arrives counts as unknown. */
  sending(value: Buffer): void {
    this.outcomes.set(recordId(value), 'unknown');
  }

  produced(value: Buffer, outcome: ProduceOutcome): void {
    this.outcomes.set(recordId(value), outcome);
  }

  /** A delivery of `value` (bytes as consumed); a value whose bytes changed counts as unexpected. */
  delivered(group: string, value: Buffer | null, partition: number, offset: number): void {
    let deliveries = this.groups.get(group);
    if (!deliveries) this.groups.set(group, (deliveries = []));
    deliveries.push({ value: recordId(value), partition, offset });
  }

  private deliveriesOf(group: string) {
    return this.groups.get(group) ?? [];
  }

  /** Distinct acknowledged values `group` has been delivered so far. */
  acknowledgedDelivered(group: string): number {
    const seen = new Set(this.deliveriesOf(group).map((delivery) => delivery.value));
    let count = 0;
    for (const [value, outcome] of this.outcomes) if (outcome === 'ok' && seen.has(value)) count++;
    return count;
  }

  /** Checks what `group` received against what the producers were told. */
  check(group: string): CheckReport {
    const deliveries = this.deliveriesOf(group);
    /** Every position each record was delivered at (a key for each record delivered at all). */
    const positions = new Map<string, Set<string>>();
    const highestSeq = new Map<string, number>();
    const report: CheckReport = {
      sent: this.outcomes.size,
      acknowledged: 0,
      failed: 0,
      unknown: 0,
      delivered: deliveries.length,
      lost: [],
      unexpected: [],
      reordered: [],
      storedDuplicates: 0,
      duplicated: [],
      redelivered: 0,
    };
    for (const outcome of this.outcomes.values()) {
      if (outcome === 'ok') report.acknowledged++;
      else if (outcome === 'failed') report.failed++;
      else report.unknown++;
    }
    for (const { value, partition, offset } of deliveries) {
      if (!this.outcomes.has(value)) {
        report.unexpected.push(value);
        continue;
      }
      const at = positions.get(value);
      if (at !== undefined) {
        const position = `${partition}:${offset}`;
        if (at.has(position)) {
          report.redelivered++;
        } else {
          at.add(position);
          report.storedDuplicates++;
        }
        continue;
      }
      positions.set(value, new Set([`${partition}:${offset}`]));
      // Only acknowledged records promise an order; an unknown one may land anywhere it was retried.
      if (this.outcomes.get(value) !== 'ok') continue;
      const parsed = parseValue(value);
      if (!parsed) continue;
      const highest = highestSeq.get(parsed.key) ?? -1;
      if (parsed.seq < highest) report.reordered.push({ key: parsed.key, seq: parsed.seq, after: highest });
      else highestSeq.set(parsed.key, parsed.seq);
    }
    for (const [value, outcome] of this.outcomes) {
      if (outcome === 'ok' && !positions.has(value)) report.lost.push(value);
    }
    for (const [value, at] of positions) if (at.size > 1) report.duplicated.push({ value, positions: [...at] });
    return report;
  }
}

/** One line for a test failure message: the counts and the first few problems. */
export function describeReport(report: CheckReport): string {
  return JSON.stringify({
    ...report,
    lost: report.lost.slice(0, 10),
    lostCount: report.lost.length,
    unexpected: report.unexpected.slice(0, 10),
    reordered: report.reordered.slice(0, 10),
    duplicated: report.duplicated.slice(0, 10),
  });
}
