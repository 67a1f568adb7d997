/**
 * Coordinator metrics on the service's prom-client registry. The coordinator package
 * does not depend on prom-client itself, so these are registered as plain collector
 * objects (name, help, type, get()) that the registry reads at scrape time: gauges
 * are computed from the live state, counters count in memory since the process started.
 *
 * Every state label value and every unlabeled counter is exported from the first scrape
 * (at 0 when nothing happened), so dashboards and alerts see a series instead of no data.
 *
 * Hooks for the rest of the coordinator (`CoordinatorCounters`, reached through the
 * cluster's options):
 *   counters.failovers.inc(n)          a partition's primary changed because its broker died
 *   counters.isrChanges.inc('shrink')  an accepted ISR change ('shrink' | 'expand')
 *   counters.groupRebalances.inc(g)    a consumer group's generation was bumped
 *   counters.rebalanceMoves.inc()      a move step changed where a replica or a partition's leadership lives
 *   counters.leadershipTransfers.inc(n) the automatic leadership balance started n transfers
 */
import type { PartitionStatus } from '@tessera/protocol';
import { registerCollectors, type HttpService } from '@tessera/service';

type Registry = HttpService['registry'];

export type IsrChange = 'shrink' | 'expand';

export interface CounterHook {
  inc(by?: number): void;
}

export interface CoordinatorCounters {
  failovers: CounterHook;
  isrChanges: { inc(change: IsrChange, by?: number): void };
  groupRebalances: { inc(group: string, by?: number): void };
  rebalanceMoves: CounterHook;
  leadershipTransfers: CounterHook;
}

export interface GaugeSources {
  brokersByState(): { alive: number; dead: number };
  partitionsByState(): Record<PartitionStatus, number>;
  /** Every group the coordinator knows, with its current member count. */
  groupMembers(): Array<{ group: string; members: number }>;
  /** Most minus fewest primaries over the live, not draining brokers. */
  primarySpread(): number;
  /** Push subscriptions by state: delivering, paused by a user, suspended (their creator lacks access, or the target policy refuses their URL). */
  subscriptionsByState(): { active: number; paused: number; suspended: number };
}

interface MetricValue {
  value: number;
  labels: Record<string, string>;
}

/** Prometheus label values of the partition states: `under-replicated` becomes `under_replicated`. */
export const PARTITION_STATE_LABELS: Record<PartitionStatus, string> = {
  online: 'online',
  'under-replicated': 'under_replicated',
  offline: 'offline',
};

/** A counter keyed by one label value ('' for an unlabeled counter); counts only go up. */
class Counts {
  private readonly values = new Map<string, number>();
  constructor(initial: readonly string[] = []) {
    for (const key of initial) this.values.set(key, 0);
  }
  inc(key: string, by = 1): void {
    // A counter that goes down would read as a process restart to rate() and increase().
    if (!(by >= 0)) throw new Error(`counter increment must be >= 0, got ${by}`);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }
  get(key: string): number {
    return this.values.get(key) ?? 0;
  }
  keys(): string[] {
    return [...this.values.keys()];
  }
}

export function registerCoordinatorMetrics(registry: Registry, sources: GaugeSources): CoordinatorCounters {
  const failovers = new Counts(['']);
  const isrChanges = new Counts(['shrink', 'expand']);
  const groupRebalances = new Counts();
  const rebalanceMoves = new Counts(['']);
  const leadershipTransfers = new Counts(['']);

  const add = (name: string, help: string, type: 'gauge' | 'counter', values: () => MetricValue[]) => {
    const metric = {
      name,
      help,
      type,
      aggregator: 'sum',
      get: async () => ({ name, help, type, aggregator: 'sum', values: values() }),
      reset: () => undefined,
    };
    registerCollectors(registry, [metric]);
  };

  add('tessera_coordinator_brokers', 'Registered brokers by state (alive, dead)', 'gauge', () => {
    const counts = sources.brokersByState();
    return [
      { value: counts.alive, labels: { state: 'alive' } },
      { value: counts.dead, labels: { state: 'dead' } },
    ];
  });
  add('tessera_coordinator_partitions', 'Partitions by state (online, under_replicated, offline)', 'gauge', () => {
    const counts = sources.partitionsByState();
    return (Object.keys(PARTITION_STATE_LABELS) as PartitionStatus[]).map((status) => ({
      value: counts[status] ?? 0,
      labels: { state: PARTITION_STATE_LABELS[status] },
    }));
  });
  add('tessera_coordinator_group_members', 'Members of each consumer group', 'gauge', () =>
    sources.groupMembers().map((g) => ({ value: g.members, labels: { group: g.group } })),
  );
  add('tessera_coordinator_subscriptions', 'Push subscriptions by state (active, paused, suspended: their creator lacks access, or the target policy refuses their URL)', 'gauge', () => {
    const counts = sources.subscriptionsByState();
    return (['active', 'paused', 'suspended'] as const).map((state) => ({ value: counts[state], labels: { state } }));
  });
  add('tessera_coordinator_failovers_total', 'Partitions whose primary changed because its broker died', 'counter', () => [
    { value: failovers.get(''), labels: {} },
  ]);
  add('tessera_coordinator_isr_changes_total', 'Accepted ISR changes asked by primaries, by change (shrink, expand)', 'counter', () =>
    isrChanges.keys().map((change) => ({ value: isrChanges.get(change), labels: { change } })),
  );
  add('tessera_coordinator_group_rebalances_total', 'Consumer group generation bumps, by group', 'counter', () => {
    // Known groups show 0 before their first rebalance in this process (e.g. after a restart).
    const groups = new Set([...sources.groupMembers().map((g) => g.group), ...groupRebalances.keys()]);
    return [...groups].sort().map((group) => ({ value: groupRebalances.get(group), labels: { group } }));
  });
  add('tessera_coordinator_rebalance_moves_total', 'Move steps (rebalance, drain, dead secondary replacement) that changed where a replica or the leadership lives', 'counter', () => [
    { value: rebalanceMoves.get(''), labels: {} },
  ]);
  add('tessera_coordinator_primaries_spread', 'Most minus fewest partitions led by a live, not draining broker (the leadership balance keeps it at 1 or 0)', 'gauge', () => [
    { value: sources.primarySpread(), labels: {} },
  ]);
  add('tessera_coordinator_leadership_balance_transfers_total', 'Leadership transfers started by the automatic leadership balance', 'counter', () => [
    { value: leadershipTransfers.get(''), labels: {} },
  ]);

  return {
    failovers: { inc: (by = 1) => failovers.inc('', by) },
    isrChanges: { inc: (change, by = 1) => isrChanges.inc(change, by) },
    groupRebalances: { inc: (group, by = 1) => groupRebalances.inc(group, by) },
    rebalanceMoves: { inc: (by = 1) => rebalanceMoves.inc('', by) },
    leadershipTransfers: { inc: (by = 1) => leadershipTransfers.inc('', by) },
  };
}
