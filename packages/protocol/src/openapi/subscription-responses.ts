/**
 * Response bodies of the push subscriptions API, for the OpenAPI description; checked at
 * compile time against the types of `subscriptions.ts` like `responses.ts` does for `wire.ts`.
 */
import { z } from 'zod';
import type * as subscriptions from '../subscriptions.js';
import { int, type Out, type Same } from './responses.js';

export const subscription = z.object({
  name: z.string(),
  topic: z.string(),
  url: z.string(),
  filterKeyPrefix: z.string().nullable(),
  maxAttempts: int.nullable().describe('null: a record is retried until it is delivered'),
  backoffInitialMs: int,
  backoffMaxMs: int,
  deadLetterTopic: z.string().nullable(),
  maxInFlight: int,
  timeoutMs: int,
  state: z.enum(['active', 'paused']).describe('what pause and resume set'),
  suspended: z
    .object({
      reason: z.string(),
      sinceMs: int.describe('wall clock, ms since the Unix epoch'),
    })
    .nullable()
    .describe(
      'set while the principal that created the subscription may no longer consume from its topic (or produce to its dead-letter topic), ' +
        "or while the coordinator's allowed targets refuse its URL (judged at each coordinator start): " +
        'nothing is delivered, whatever the state, and the offsets are kept; cleared when the access is granted (or the target allowed) again',
    ),
  group: z.string().describe("the consumer group whose committed offsets are the subscription's progress"),
  createdMs: int,
  createdBy: z.string(),
});

export const createdSubscription = subscription.extend({
  secret: z.string().describe('the HMAC-SHA256 signing secret of the deliveries, shown this once'),
});

export const subscriptionListResponse = z.object({ subscriptions: z.array(subscription) });

export const subscriptionDescription = subscription.extend({
  lag: int,
  partitions: z.array(
    z.object({
      partition: int,
      broker: int.nullable().describe('the broker delivering it (the primary), null before its first report'),
      offset: int.nullable().describe('the next offset to deliver'),
      highWatermark: int.nullable(),
      lag: int.nullable(),
      attempts: int.describe('attempts made on the record being delivered (0 when idle)'),
      lastStatus: int.nullable(),
      lastError: z.string().nullable(),
      delivered: int,
      deadLettered: int,
    }),
  ),
});

export const SUBSCRIPTION_SCHEMAS_MATCH_TYPES: [
  Same<Out<typeof subscription>, subscriptions.Subscription>,
  Same<Out<typeof createdSubscription>, subscriptions.CreatedSubscription>,
  Same<Out<typeof subscriptionListResponse>, subscriptions.SubscriptionListResponse>,
  Same<Out<typeof subscriptionDescription>, subscriptions.SubscriptionDescription>,
] = [true, true, true, true];
