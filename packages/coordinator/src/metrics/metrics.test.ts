import { createMetrics } from '@tessera/service';
import { describe, expect, it } from 'vitest';
import { registerCoordinatorMetrics, type GaugeSources } from './metrics.js';

function setup(sources: Partial<GaugeSources> = {}) {
  const { registry } = createMetrics('coordinator');
  const counters = registerCoordinatorMetrics(registry, {
    brokersByState: () => ({ alive: 0, dead: 0 }),
    partitionsByState: () => ({ online: 0, 'under-replicated': 0, offline: 0 }),
    groupMembers: () => [],
    primarySpread: () => 0,
    subscriptionsByState: () => ({ active: 0, paused: 0, suspended: 0 }),
    ...sources,
  });
  return { counters, scrape: () => registry.metrics() };
}

describe('coordinator metrics', () => {
  it('exports every state and every counter at 0 before anything happened', async () => {
    const text = await setup().scrape();
    for (const line of [
      'tessera_coordinator_brokers{state="alive"} 0',
      'tessera_coordinator_brokers{state="dead"} 0',
      'tessera_coordinator_partitions{state="online"} 0',
      'tessera_coordinator_partitions{state="under_replicated"} 0',
      'tessera_coordinator_partitions{state="offline"} 0',
      'tessera_coordinator_failovers_total 0',
      'tessera_coordinator_isr_changes_total{change="shrink"} 0',
      'tessera_coordinator_isr_changes_total{change="expand"} 0',
      'tessera_coordinator_rebalance_moves_total 0',
      'tessera_coordinator_primaries_spread 0',
      'tessera_coordinator_leadership_balance_transfers_total 0',
      'tessera_coordinator_subscriptions{state="active"} 0',
      'tessera_coordinator_subscriptions{state="paused"} 0',
      'tessera_coordinator_subscriptions{state="suspended"} 0',
    ]) {
      expect(text).toContain(line);
    }
    expect(text).toContain('# TYPE tessera_coordinator_rebalance_moves_total counter');
    expect(text).toContain('# TYPE tessera_coordinator_group_members gauge');
  });

  it('reads gauges from the live state at scrape time', async () => {
    let alive = 1;
    const { scrape } = setup({
      brokersByState: () => ({ alive, dead: 3 - alive }),
      partitionsByState: () => ({ online: 4, 'under-replicated': 2, offline: 1 }),
      primarySpread: () => 3,
      subscriptionsByState: () => ({ active: 5, paused: 1, suspended: 2 }),
      groupMembers: () => [
        { group: 'billing', members: 2 },
        { group: 'audit', members: 0 },
      ],
    });
    alive = 2;
    const text = await scrape();
    expect(text).toContain('tessera_coordinator_brokers{state="alive"} 2');
    expect(text).toContain('tessera_coordinator_brokers{state="dead"} 1');
    expect(text).toContain('tessera_coordinator_partitions{state="under_replicated"} 2');
    expect(text).toContain('tessera_coordinator_group_members{group="billing"} 2');
    expect(text).toContain('tessera_coordinator_primaries_spread 3');
    expect(text).toContain('tessera_coordinator_subscriptions{state="suspended"} 2');
    expect(text).toContain('tessera_coordinator_group_members{group="audit"} 0');
    // A known group shows its rebalance counter at 0 before its first rebalance.
    expect(text).toContain('tessera_coordinator_group_rebalances_total{group="audit"} 0');
  });

  it('counts through the hooks, by label', async () => {
    const { counters, scrape } = setup({ groupMembers: () => [{ group: 'billing', members: 1 }] });
    counters.failovers.inc(3);
    counters.failovers.inc(0);
    counters.isrChanges.inc('shrink');
    counters.isrChanges.inc('shrink');
    counters.isrChanges.inc('expand');
    counters.groupRebalances.inc('billing');
    counters.groupRebalances.inc('gone');
    counters.rebalanceMoves.inc();
    counters.leadershipTransfers.inc(2);
    const text = await scrape();
    expect(text).toContain('tessera_coordinator_failovers_total 3');
    expect(text).toContain('tessera_coordinator_isr_changes_total{change="shrink"} 2');
    expect(text).toContain('tessera_coordinator_isr_changes_total{change="expand"} 1');
    expect(text).toContain('tessera_coordinator_group_rebalances_total{group="billing"} 1');
    expect(text).toContain('tessera_coordinator_group_rebalances_total{group="gone"} 1');
    expect(text).toContain('tessera_coordinator_rebalance_moves_total 1');
    expect(text).toContain('tessera_coordinator_leadership_balance_transfers_total 2');
  });

  it('refuses to count down', () => {
    const { counters } = setup();
    expect(() => counters.rebalanceMoves.inc(-1)).toThrow(/>= 0/);
  });
});
