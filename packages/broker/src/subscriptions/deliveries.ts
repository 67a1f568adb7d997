/**
 * The push subscriptions this broker delivers: it holds the coordinator's subscription state
 * (fetched at start and whenever a heartbeat answer carries a newer `subscriptionsVersion`)
 * and, every tick, runs one `PartitionDelivery` for each active subscription and each of its
 * topic's partitions this broker leads, and stops those it no longer leads. So delivery moves
 * with failover and rebalancing, and resumes from the group offset the last primary committed.
 */
import {
  COORDINATOR_ROUTES,
  TargetPolicy,
  type JsonHttpClient,
  type SubscriptionReport,
  type SubscriptionsStateResponse,
} from '@tessera/protocol';
import type { Logger } from '@tessera/service';
import type { Partition, PartitionSet } from '../partition/index.js';
import type { DeadLetterWriter } from './dead-letter.js';
import type { SubscriptionMetrics } from './metrics.js';
import { PartitionDelivery } from './partition-delivery.js';
import { SubscriptionRuntime, fingerprintOf } from './runtime.js';

/** How often the loops are matched against the partitions led here. */
const TICK_MS = 250;

export interface SubscriptionDeliveriesOptions {
  replicas: PartitionSet;
  /** Signed as this broker: the state holds every subscription's secret. */
  http: JsonHttpClient;
  coordinatorUrl: string;
  timeoutMs: number;
  metrics: SubscriptionMetrics;
  deadLetters: DeadLetterWriter;
  logger: Logger;
}

export class SubscriptionDeliveries {
  private state: SubscriptionsStateResponse | undefined;
  /** The state's active subscriptions. */
  private active: SubscriptionsStateResponse['subscriptions'] = [];
  private readonly runtimes = new Map<string, SubscriptionRuntime>();
  /** Running deliveries by `${subscription}/${partition}`. */
  private readonly running = new Map<string, PartitionDelivery>();
  /**
   * Deliveries told to stop that have not ended yet (an attempt in flight, the last commit), by
   * the same key: the partition's next delivery starts only after, from the offset they committed.
   */
  private readonly stopping = new Map<string, PartitionDelivery>();
  /**
   * Where stopped deliveries ended whose last commit was not stored, by the same key: the next
   * delivery of that subscription partition on the same replica starts from the higher of this
   * and the stored offset, so a commit that failed at the stop (an ISR change, a full disk) does
   * not make it repeat what the receiver acknowledged. At most one entry per subscription
   * partition (a suspended subscription is absent from the state, yet resumes from it); dropped
   * when used, when its replica is closed, and once the stored offset reached it.
   */
  private readonly resumeAt = new Map<string, { replica: Partition; group: string; createdMs: number; offset: number }>();
  private timer: NodeJS.Timeout | undefined;
  private fetching: Promise<void> | undefined;
  private again = false;
  private closed = false;

  constructor(private readonly options: SubscriptionDeliveriesOptions) {}

  start(): void {
    this.timer = setInterval(() => this.reconcile(), TICK_MS);
  }

  /** A heartbeat answer's `subscriptionsVersion`: fetches the state when it differs from the one held. */
  seen(version: number | undefined): void {
    if (version === undefined || version === this.state?.version) return;
    if (this.fetching) this.again = true;
    else this.fetching = this.fetch().finally(() => (this.fetching = undefined));
  }

  private async fetch(): Promise<void> {
    try {
      do {
        this.again = false;
        this.state = await this.options.http.get<SubscriptionsStateResponse>(this.options.coordinatorUrl + COORDINATOR_ROUTES.subscriptionsState, {
          timeoutMs: this.options.timeoutMs,
        });
        this.applyState();
        this.reconcile();
      } while (this.again && !this.closed);
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'cannot fetch the subscriptions; keeping the last ones');
    }
  }

  /** A new state arrived: a subscription whose settings changed (or that was paused or deleted) stops everywhere first. */
  private applyState(): void {
    if (this.closed || !this.state) return;
    const policy = this.state.allowedTargets;
    this.active = this.state.subscriptions.filter((s) => s.state === 'active');
    const byName = new Map(this.active.map((s) => [s.name, s]));
    for (const [name, runtime] of this.runtimes) {
      const next = byName.get(name);
      if (!next || fingerprintOf(next, policy) !== runtime.fingerprint) this.dropRuntime(name);
    }
  }

  /** Starts and stops deliveries to match the active subscriptions and the partitions led here (every tick). */
  private reconcile(): void {
    if (this.closed || !this.state) return;
    const policy = this.state.allowedTargets;
    const wanted = new Set<string>();
    for (const subscription of this.active) {
      let runtime = this.runtimes.get(subscription.name);
      for (const replica of this.options.replicas.all()) {
        if (replica.topic !== subscription.topic || replica.isClosed || replica.role !== 'primary') continue;
        const key = `${subscription.name}/${replica.partition}`;
        wanted.add(key);
        // A loop that ended by itself (the partition was lost and led here again within a tick) is started again.
        const running = this.running.get(key);
        // A loop that found its group marked deleted is not started again: the subscription is
        // gone, and this broker will hear so with its next state.
        if (running?.finished === false || running?.groupDeleted === true || this.stopping.has(key)) continue;
        if (!runtime) {
          runtime = new SubscriptionRuntime(subscription, new TargetPolicy(policy), this.options.metrics, this.options.deadLetters);
          this.runtimes.set(subscription.name, runtime);
        }
        const logger = this.options.logger.child({ subscription: subscription.name, topic: replica.topic, partition: replica.partition });
        logger.info('delivering this partition to its subscription');
        const resume = this.resumeAt.get(key);
        this.resumeAt.delete(key);
        // Only where it was taken: another replica object is another log (or a log that moved away and back).
        const resumeAt = resume !== undefined && resume.replica === replica && resume.group === subscription.group && resume.createdMs === subscription.createdMs ? resume.offset : undefined;
        this.running.set(key, new PartitionDelivery(runtime, replica, logger, resumeAt));
      }
    }
    for (const [key, delivery] of this.running) {
      if (!wanted.has(key)) void this.stop(key, delivery, 'finish');
    }
    // A deleted (or suspended) subscription's series go once its loops here have ended (their last counts included).
    const known = new Set(this.state.subscriptions.map((s) => s.name));
    for (const key of this.stopping.keys()) known.add(key.slice(0, key.lastIndexOf('/')));
    this.options.metrics.retain(known);
    for (const [key, resume] of this.resumeAt) {
      if (resume.replica.isClosed || (resume.replica.store.groupOffset(resume.group)?.offset ?? -1) >= resume.offset) this.resumeAt.delete(key);
    }
  }

  /** Stops a running delivery, keeping it in `stopping` until it has ended (and where it ended, when that was not stored). */
  private stop(key: string, delivery: PartitionDelivery, inFlight: 'finish' | 'abort'): Promise<void> {
    this.running.delete(key);
    this.stopping.set(key, delivery);
    return delivery.stop(inFlight).finally(() => {
      if (this.stopping.get(key) === delivery) this.stopping.delete(key);
      // A deleted subscription's group is marked deleted: there is nothing to go on from.
      if (inFlight === 'finish' && !delivery.progressStored && !delivery.groupDeleted) {
        this.resumeAt.set(key, { replica: delivery.replica, group: delivery.group, createdMs: delivery.createdMs, offset: delivery.nextOffset });
      }
    });
  }

  private dropRuntime(name: string): void {
    const runtime = this.runtimes.get(name);
    this.runtimes.delete(name);
    const stopping: Array<Promise<void>> = [];
    for (const [key, delivery] of this.running) {
      if (key.startsWith(`${name}/`)) stopping.push(this.stop(key, delivery, 'finish'));
    }
    void Promise.allSettled(stopping).then(() => runtime?.close());
  }

  /** Each delivery's progress, for the heartbeat. */
  reports(): SubscriptionReport[] {
    return [...this.running.values()].map((delivery) => delivery.report());
  }

  lag(): Array<{ subscription: string; topic: string; partition: number; lag: number }> {
    return [...this.running.values()].map((delivery) => {
      const r = delivery.report();
      return { subscription: r.name, topic: delivery.topic, partition: r.partition, lag: Math.max(0, r.highWatermark - r.offset) };
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    // A shutdown waits for no receiver: the attempts in flight are cut short (the next primary delivers them again).
    const ending = [...this.running, ...this.stopping].map(([key, delivery]) => this.stop(key, delivery, 'abort'));
    await Promise.allSettled(ending);
    await Promise.allSettled([...this.runtimes.values()].map((runtime) => runtime.close()));
    this.runtimes.clear();
  }
}
