/** The push subscriptions' metrics on each broker (for the partitions it delivers). */
import { registerCollectors, type HttpService } from '@tessera/service';
import { CollectedGauge, CounterMetric, HistogramMetric } from '../metrics/broker-metrics.js';

export const DELIVERY_OUTCOMES = ['delivered', 'dead_lettered', 'filtered'] as const;
export const ATTEMPT_RESULTS = ['ok', 'http_error', 'timeout', 'network_error'] as const;
export type AttemptResult = (typeof ATTEMPT_RESULTS)[number];

const DELIVERY_BUCKETS_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class SubscriptionMetrics {
  /** outcome: delivered (a 2xx), dead_lettered (attempts used up), filtered (skipped by the key prefix). */
  readonly deliveries = new CounterMetric('tessera_subscription_deliveries_total', 'Records a push subscription is done with, by outcome');
  /** result: ok, http_error (not 2xx), timeout, network_error (refused, reset, not an allowed address). */
  readonly attempts = new CounterMetric('tessera_subscription_delivery_attempts_total', 'HTTP delivery attempts of push subscriptions, by result');
  readonly deliveryLatency = new HistogramMetric(
    'tessera_subscription_delivery_seconds',
    'Duration of one delivery attempt (request to answer, or to the failure)',
    DELIVERY_BUCKETS_SECONDS,
    true,
  );

  /** The series of a subscription this broker delivers, at 0 until they move (a dashboard shows 0, not "no data"). */
  start(subscription: string): void {
    for (const outcome of DELIVERY_OUTCOMES) this.deliveries.zero({ subscription, outcome });
    for (const result of ATTEMPT_RESULTS) this.attempts.zero({ subscription, result });
    this.deliveryLatency.zero({ subscription });
  }

  /**
   * Keeps the series of the subscriptions in `known` (those in the state the brokers get: active
   * or paused) and drops the others': a deleted subscription's series would otherwise be exported
   * until the broker restarts, one set more for every subscription ever made. A suspended one is
   * not in that state either: its series go too, and start again at 0 once it is reinstated.
   */
  retain(known: ReadonlySet<string>): void {
    const gone = (labels: Record<string, unknown>) => !known.has(String(labels.subscription));
    this.deliveries.remove(gone);
    this.attempts.remove(gone);
    this.deliveryLatency.remove(gone);
  }

  register(service: HttpService, lag: () => Array<{ subscription: string; topic: string; partition: number; lag: number }>): void {
    const gauge = new CollectedGauge('tessera_subscription_lag_records', 'High watermark minus the next offset to deliver, per subscription and partition delivered here', () =>
      lag().map((p) => ({ value: p.lag, labels: { subscription: p.subscription, topic: p.topic, partition: p.partition } })),
    );
    registerCollectors(service.registry, [this.deliveries, this.attempts, this.deliveryLatency, gauge]);
  }
}
