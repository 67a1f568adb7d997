/** A subscription as the coordinator hands it to a broker, for tests: defaults that deliver at once, `overrides` on top. */
import type { HeldSubscription } from '../subscriptions/runtime.js';

export type HeldSubscriptionOverrides = Partial<HeldSubscription>;

export function heldSubscription(url: string, overrides: HeldSubscriptionOverrides = {}): HeldSubscription {
  return {
    name: 's',
    topic: 't',
    url,
    filterKeyPrefix: null,
    maxAttempts: null,
    backoffInitialMs: 10,
    backoffMaxMs: 100,
    deadLetterTopic: null,
    maxInFlight: 2,
    timeoutMs: 2_000,
    state: 'active',
    suspended: null,
    group: 'subscription.s.0',
    createdMs: 0,
    createdBy: 'test',
    secret: 'secret',
    startOffsets: {},
    ...overrides,
  };
}
