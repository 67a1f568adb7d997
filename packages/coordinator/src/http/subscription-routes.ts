/**
 * The push subscriptions API: create, list, describe, pause, resume, delete, and the state the
 * brokers fetch. Creating needs `consume` on the topic (the access rule) and, with a
 * dead-letter topic, `produce` on it too (checked here, since the brokers write there on the
 * creator's behalf); describing, changing or deleting one needs `consume` on its topic, and the
 * list holds only the subscriptions on topics the caller may consume (all for a cluster admin),
 * since a webhook URL often carries the receiver's credentials and the last errors echo its
 * answers. The creator is recorded: the subscription delivers only while it keeps that access
 * (`SubscriptionManager`).
 */
import { COORDINATOR_ROUTES as R, TesseraError, createSubscriptionRequest, parseOrThrow, subscriptionName } from '@tessera/protocol';
import type { Caller, Context, HttpService, Requirement } from '@tessera/service';
import type { Creator, SubscriptionManager } from '../subscriptions/subscriptions.js';

export interface SubscriptionRouteDeps {
  subscriptions: SubscriptionManager;
  /** Throws FORBIDDEN unless the request's caller meets `requirement`. */
  authorize: (ctx: Context, requirement: Requirement) => void;
}

export function registerSubscriptionRoutes(service: HttpService, deps: SubscriptionRouteDeps): void {
  const { router } = service;
  const { subscriptions } = deps;
  const nameParam = (ctx: Context) => parseOrThrow(subscriptionName, ctx.params.subscription, 'subscription name');
  /** The subscription named in the path, once the caller may consume its topic. */
  const owned = (ctx: Context) => {
    const subscription = subscriptions.get(nameParam(ctx));
    deps.authorize(ctx, { kind: 'topic', operation: 'consume', topics: [subscription.topic] });
    return subscription;
  };
  /** Whether the caller may consume `topic` (a cluster admin, a member, anyone with authentication off may). */
  const mayConsume = (ctx: Context, topic: string) => {
    try {
      deps.authorize(ctx, { kind: 'topic', operation: 'consume', topics: [topic] });
      return true;
    } catch (error) {
      if (error instanceof TesseraError && error.code === 'FORBIDDEN') return false;
      throw error;
    }
  };

  router.post(R.subscriptions, async (ctx) => {
    const request = parseOrThrow(createSubscriptionRequest, ctx.state.body);
    if (request.deadLetterTopic !== undefined) deps.authorize(ctx, { kind: 'topic', operation: 'produce', topics: [request.deadLetterTopic] });
    const caller = ctx.state.caller as Caller | undefined;
    const creator: Creator = caller?.kind === 'principal' ? { kind: 'principal', name: caller.name } : { kind: caller?.kind ?? 'anonymous' };
    ctx.status = 201;
    ctx.body = await subscriptions.create(request, creator);
  });
  router.get(R.subscriptions, (ctx) => {
    ctx.body = subscriptions.list((subscription) => mayConsume(ctx, subscription.topic));
  });
  router.get(R.subscription, (ctx) => {
    ctx.body = subscriptions.describe(owned(ctx).name);
  });
  router.post(R.subscriptionPause, (ctx) => {
    ctx.body = subscriptions.setState(owned(ctx).name, 'paused');
  });
  router.post(R.subscriptionResume, (ctx) => {
    ctx.body = subscriptions.setState(owned(ctx).name, 'active');
  });
  router.delete(R.subscription, (ctx) => {
    subscriptions.delete(owned(ctx).name);
    ctx.status = 204;
  });
  router.get(R.subscriptionsState, (ctx) => {
    ctx.body = subscriptions.state();
  });
}
