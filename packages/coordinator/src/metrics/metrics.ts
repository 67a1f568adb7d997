/**
 * Coordinator metrics on the service's prom-client registry. The coordinator package
 * does not depend on prom-client itself, so these are registered as plain collector
 * objects (name, help, type, get()) that the registry reads at scrape time: gauges
 * are computed from the live state, counters count in memory since the process started.
 */
import type { HttpService } from '@tessera/service';

type Registry = HttpService['registry'];

export interface CoordinatorCounters {
  failovers: number;
  isrChanges: number;
  groupRebalances: number;
}

export interface GaugeSources {
  brokersByState(): Record<string, number>;
  partitionsByState(): Record<string, number>;
}

interface MetricValue {
  value: number;
  labels: Record<string, string>;
}

export function registerCoordinatorMetrics(registry: Registry, sources: GaugeSources): CoordinatorCounters {
  const counters: CoordinatorCounters = { failovers: 0, isrChanges: 0, groupRebalances: 0 };
  const add = (name: string, help: string, type: 'gauge' | 'counter', values: () => MetricValue[]) => {
    const metric = {
      name,
      help,
      type,
      aggregator: 'sum',
      get: async () => ({ name, help, type, aggregator: 'sum', values: values() }),
      reset: () => undefined,
    };
    registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
  };
  const byLabel = (label: string, counts: Record<string, number>) =>
    Object.entries(counts).map(([state, value]) => ({ value, labels: { [label]: state } }));
  add('tessera_coordinator_brokers', 'Registered brokers by state (alive, dead)', 'gauge', () =>
    byLabel('state', sources.brokersByState()),
  );
  add('tessera_coordinator_partitions', 'Partitions by state (online, under-replicated, offline)', 'gauge', () =>
    byLabel('state', sources.partitionsByState()),
  );
  add('tessera_coordinator_failovers_total', 'Partitions whose primary changed because a broker died', 'counter', () => [
    { value: counters.failovers, labels: {} },
  ]);
  add('tessera_coordinator_isr_changes_total', 'Accepted ISR changes asked by primaries', 'counter', () => [
    { value: counters.isrChanges, labels: {} },
  ]);
  add('tessera_coordinator_group_rebalances_total', 'Consumer group generation bumps', 'counter', () => [
    { value: counters.groupRebalances, labels: {} },
  ]);
  return counters;
}
