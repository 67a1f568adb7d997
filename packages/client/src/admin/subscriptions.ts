/**
 * Push subscriptions through the coordinator (`client.subscriptions`): the cluster POSTs each
 * record of a topic to an HTTP endpoint, signed, in order per partition, retried, and sends a
 * record that keeps failing to a dead-letter topic. One request per call, no retries.
 */
import {
  COORDINATOR_ROUTES,
  createSubscriptionRequest,
  parseOrThrow,
  subscriptionName,
  type CreateSubscriptionRequest,
  type CreatedSubscription,
  type Subscription,
  type SubscriptionDescription,
  type SubscriptionListResponse,
} from '@tessera/protocol';
import type { Connection } from '../connection/connection.js';

export class Subscriptions {
  constructor(private readonly connection: Connection) {}

  /** Creates a subscription; the answer holds its signing secret, shown this once. */
  async create(request: CreateSubscriptionRequest): Promise<CreatedSubscription> {
    const body = parseOrThrow(createSubscriptionRequest, request, 'subscription');
    return this.connection.coordinator<CreatedSubscription>('POST', COORDINATOR_ROUTES.subscriptions, {}, body);
  }

  /** The subscriptions on topics the caller may consume from (every one for a cluster admin). */
  async list(): Promise<Subscription[]> {
    return (await this.connection.coordinator<SubscriptionListResponse>('GET', COORDINATOR_ROUTES.subscriptions)).subscriptions;
  }

  /** Settings, state, and per partition: the delivering broker, next offset, lag, attempts and last error; needs consume on its topic. */
  describe(name: string): Promise<SubscriptionDescription> {
    return this.connection.coordinator<SubscriptionDescription>('GET', COORDINATOR_ROUTES.subscription, { subscription: this.name(name) });
  }

  pause(name: string): Promise<Subscription> {
    return this.connection.coordinator<Subscription>('POST', COORDINATOR_ROUTES.subscriptionPause, { subscription: this.name(name) }, {});
  }

  resume(name: string): Promise<Subscription> {
    return this.connection.coordinator<Subscription>('POST', COORDINATOR_ROUTES.subscriptionResume, { subscription: this.name(name) }, {});
  }

  async delete(name: string): Promise<void> {
    await this.connection.coordinator<unknown>('DELETE', COORDINATOR_ROUTES.subscription, { subscription: this.name(name) });
  }

  private name(name: string): string {
    return parseOrThrow(subscriptionName, name, 'subscription name');
  }
}
