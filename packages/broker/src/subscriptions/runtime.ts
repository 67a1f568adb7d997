/**
 * What the deliveries of one subscription on this broker share: its settings and secret, one
 * HTTP connection pool of its own (so a slow receiver holds only its own connections), the
 * bound on its requests in flight, its metrics and the dead-letter writer.
 */
import { isIP } from 'node:net';
import { Agent } from 'undici';
import { TargetPolicy, type SubscriptionsStateResponse } from '@tessera/protocol';
import type { DeadLetterWriter } from './dead-letter.js';
import type { SubscriptionMetrics } from './metrics.js';

export type HeldSubscription = SubscriptionsStateResponse['subscriptions'][number];

/** At most `limit` holders at once; waiters are served in arrival order. */
export class Slots {
  private held = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  /** Rejects with the signal's reason once it aborted, even when a slot is free: no holder starts after a stop. */
  async acquire(signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) throw signal.reason;
    if (this.held >= this.limit) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          const index = this.waiting.indexOf(wake);
          if (index >= 0) this.waiting.splice(index, 1);
          reject(signal.reason);
        };
        const wake = () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        if (signal.aborted) return onAbort();
        this.waiting.push(wake);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    } else {
      this.held++;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter, so `held` stays counted.
      if (next) next();
      else this.held--;
    };
  }
}

export class SubscriptionRuntime {
  readonly agent: Agent;
  readonly slots: Slots;
  readonly target: URL;
  readonly keyPrefix: Buffer | null;
  /**
   * Why every attempt is refused without a request: a target given as an IP address the
   * policy does not allow (a host name is checked at each connection, by the lookup).
   */
  readonly refusedTarget: string | null;
  readonly secret: string;
  /** What the runtime was built from: a change of any of it builds a new one. */
  readonly fingerprint: string;

  constructor(
    readonly subscription: HeldSubscription,
    readonly policy: TargetPolicy,
    readonly metrics: SubscriptionMetrics,
    readonly deadLetters: DeadLetterWriter,
  ) {
    this.fingerprint = fingerprintOf(subscription, policy.spec);
    this.secret = subscription.secret;
    this.target = new URL(subscription.url);
    // An IPv6 literal's hostname keeps its brackets ([::1]); the address is what is inside.
    const host = this.target.hostname.replace(/^\[(.*)\]$/, '$1');
    this.refusedTarget = isIP(host) !== 0 && !policy.allowsAddress(host) ? `${host} is not an allowed target address` : null;
    this.keyPrefix = subscription.filterKeyPrefix === null ? null : Buffer.from(subscription.filterKeyPrefix, 'utf8');
    this.slots = new Slots(subscription.maxInFlight);
    metrics.start(subscription.name);
    this.agent = new Agent({
      connections: subscription.maxInFlight,
      pipelining: 1,
      keepAliveTimeout: 4_000,
      // Every connection resolves its host again and refuses addresses the policy does not allow.
      connect: { timeout: subscription.timeoutMs, lookup: policy.lookup() as never },
    });
  }

  close(): Promise<void> {
    return this.agent.destroy();
  }
}

export function fingerprintOf(subscription: HeldSubscription, policySpec: string): string {
  return JSON.stringify([subscription, policySpec]);
}
