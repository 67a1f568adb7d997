import { createMetrics, type HttpService } from '@tessera/service';
import { describe, expect, it } from 'vitest';
import { SubscriptionMetrics } from '../subscriptions/metrics.js';
import { BrokerMetrics, type MetricsSources } from './broker-metrics.js';

function setup(sources: Partial<MetricsSources> = {}) {
  const { registry } = createMetrics('broker');
  const metrics = new BrokerMetrics();
  // register() only reads the service's registry.
  metrics.register({ registry } as HttpService, {
    longPollsOpen: () => 0,
    replicationLag: () => [],
    groupLag: () => [],
    partitions: () => [],
    replicas: () => [],
    ...sources,
  });
  return { metrics, scrape: () => registry.metrics() };
}

describe('broker metrics', () => {
  it('counts records and bytes by topic', async () => {
    const { metrics, scrape } = setup();
    metrics.recordsProduced.inc({ topic: 'orders' }, 3);
    metrics.recordsProduced.inc({ topic: 'orders' }, 2);
    metrics.bytesProduced.inc({ topic: 'orders' }, 10);
    metrics.recordsFetched.inc({ topic: 'audit' }, 1);
    const text = await scrape();
    expect(text).toContain('tessera_broker_records_produced_total{topic="orders"} 5');
    expect(text).toContain('tessera_broker_bytes_produced_total{topic="orders"} 10');
    expect(text).toContain('tessera_broker_records_fetched_total{topic="audit"} 1');
    expect(text).toContain('# TYPE tessera_broker_records_produced_total counter');
  });

  it('exports histograms with cumulative buckets, sum and count', async () => {
    const { metrics, scrape } = setup();
    metrics.writeBatchRecords.observe(1);
    metrics.writeBatchRecords.observe(50);
    metrics.writeBatchRecords.observe(500);
    const text = await scrape();
    expect(text).toContain('tessera_broker_write_batch_records_bucket{le="1"} 1');
    expect(text).toContain('tessera_broker_write_batch_records_bucket{le="100"} 2');
    expect(text).toContain('tessera_broker_write_batch_records_bucket{le="1000"} 3');
    expect(text).toContain('tessera_broker_write_batch_records_bucket{le="+Inf"} 3');
    expect(text).toContain('tessera_broker_write_batch_records_sum 551');
    expect(text).toContain('tessera_broker_write_batch_records_count 3');
    expect(text).toContain('tessera_broker_produce_latency_seconds_count 0');
    expect(text).toContain('tessera_broker_replication_latency_seconds_count 0');
  });

  it('reads replica, lag and long-poll gauges at scrape time', async () => {
    const { scrape } = setup({
      longPollsOpen: () => 4,
      replicationLag: () => [{ topic: 'orders', partition: 0, lag: 7 }],
      groupLag: () => [{ group: 'billing', topic: 'orders', partition: 0, lag: 12, lagSeconds: 2.5 }],
      partitions: () => [
        { role: 'primary', underReplicated: true },
        { role: 'secondary', underReplicated: false },
      ],
      replicas: () => [
        { topic: 'orders', partition: 0, role: 'primary', epoch: 2, leo: 40, hw: 33 },
        { topic: 'orders', partition: 1, role: 'secondary', epoch: 1, leo: 9, hw: 9 },
      ],
    });
    const text = await scrape();
    for (const line of [
      'tessera_broker_long_polls_open 4',
      'tessera_broker_replication_lag_records{topic="orders",partition="0"} 7',
      'tessera_broker_group_lag_records{group="billing",topic="orders",partition="0"} 12',
      'tessera_broker_group_lag_seconds{group="billing",topic="orders",partition="0"} 2.5',
      'tessera_broker_partitions{role="primary"} 1',
      'tessera_broker_partitions{role="secondary"} 1',
      'tessera_broker_under_replicated_partitions 1',
      'tessera_broker_replica_log_end_offset{topic="orders",partition="0"} 40',
      'tessera_broker_replica_high_watermark{topic="orders",partition="0"} 33',
      'tessera_broker_replica_epoch{topic="orders",partition="1"} 1',
      'tessera_broker_replica_role{topic="orders",partition="0",role="primary"} 1',
      'tessera_broker_replica_role{topic="orders",partition="0",role="secondary"} 0',
      'tessera_broker_replica_role{topic="orders",partition="1",role="secondary"} 1',
    ]) {
      expect(text).toContain(line);
    }
  });

  it("exports a delivering subscription's outcome and result series at 0 before anything happened, and counts from there", async () => {
    const { registry } = createMetrics('broker');
    const subscriptions = new SubscriptionMetrics();
    subscriptions.register({ registry } as HttpService, () => []);
    subscriptions.start('hook');
    let text = await registry.metrics();
    expect(text).toContain('tessera_subscription_deliveries_total{subscription="hook",outcome="dead_lettered"} 0');
    expect(text).toContain('tessera_subscription_delivery_attempts_total{subscription="hook",result="timeout"} 0');
    expect(text).toContain('tessera_subscription_delivery_seconds_count{subscription="hook"} 0');
    expect(text).not.toMatch(/tessera_subscription_delivery_seconds_count \d/); // no series without the label
    subscriptions.deliveryLatency.observe(0.02, { subscription: 'hook' });
    subscriptions.deliveryLatency.observe(3, { subscription: 'other' });
    subscriptions.deliveries.inc({ subscription: 'hook', outcome: 'delivered' });
    subscriptions.start('hook'); // a new runtime of the same subscription keeps the counts
    text = await registry.metrics();
    expect(text).toContain('tessera_subscription_deliveries_total{subscription="hook",outcome="delivered"} 1');
    expect(text).toContain('tessera_subscription_delivery_seconds_bucket{subscription="hook",le="0.025"} 1');
    expect(text).toContain('tessera_subscription_delivery_seconds_bucket{subscription="other",le="0.025"} 0');
    expect(text).toContain('tessera_subscription_delivery_seconds_count{subscription="other"} 1');
  });

  it("drops a subscription's series once it is no longer in the cluster's state (deleted), and keeps the others'", async () => {
    const { registry } = createMetrics('broker');
    const subscriptions = new SubscriptionMetrics();
    subscriptions.register({ registry } as HttpService, () => []);
    subscriptions.start('kept');
    subscriptions.start('deleted');
    subscriptions.deliveries.inc({ subscription: 'deleted', outcome: 'delivered' });
    subscriptions.deliveryLatency.observe(0.02, { subscription: 'deleted' });
    subscriptions.retain(new Set(['kept']));
    const text = await registry.metrics();
    expect(text).not.toContain('subscription="deleted"');
    expect(text).toContain('tessera_subscription_deliveries_total{subscription="kept",outcome="delivered"} 0');
    expect(text).toContain('tessera_subscription_delivery_attempts_total{subscription="kept",result="ok"} 0');
    expect(text).toContain('tessera_subscription_delivery_seconds_count{subscription="kept"} 0');
  });
});
