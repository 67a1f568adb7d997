// Proves a push subscription is suspended while its creator may not read its topic (or write its
// dead-letter topic) and reinstated when it may again: on each change of principals and ACLs, and
// at start when authentication was turned on or off; and while the target policy refuses its URL,
// which a coordinator started with another policy ships to the brokers under a new version; and
// that a principal sees only the subscriptions on topics it may consume from. A real
// coordinator in this process (ephemeral port, temp data dir) answers the API, and plain HTTP calls
// stand in for a broker's heartbeat; the subscriptions are stored rows, as an earlier run left them
// (creating one needs live brokers for its topic: the integration test does that).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { BrokerHeartbeatResponse, ClusterEvent, Subscription, SubscriptionsStateResponse } from '@tessera/protocol';
import { defaultConfig, startCoordinator, type CoordinatorConfig, type RunningCoordinator } from '../index.js';
import { Store, type SubscriptionRow } from '../store/store.js';

const ADMIN_SECRET = 'admin-secret-of-this-test';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-subscription-access-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The stored subscriptions target loopback, which the tests allow (as `tessera dev` does). */
async function coordinator(dataDir: string, overrides: Partial<CoordinatorConfig> = {}): Promise<RunningCoordinator> {
  const running = await startCoordinator(
    defaultConfig({ port: 0, dataDir, logLevel: 'silent', bootstrapAdminSecret: ADMIN_SECRET, subscriptionAllowedTargets: 'loopback', ...overrides }),
  );
  let closed = false;
  cleanups.push(() => (closed ? undefined : running.close()));
  return {
    url: running.url,
    close: async () => {
      closed = true;
      await running.close();
    },
  };
}

/** A call as `token`'s principal (none: anonymous, which is also how a broker calls without a cluster secret); throws unless 2xx. */
async function call<T>(base: string, method: string, route: string, token?: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${base}${route}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

async function token(base: string, principal: string, secret: string): Promise<string> {
  const basic = Buffer.from(`${principal}:${secret}`).toString('base64');
  const response = await fetch(`${base}/auth/token`, { method: 'POST', headers: { authorization: `Basic ${basic}` } });
  return ((await response.json()) as { token: string }).token;
}

/** A subscription row as the coordinator stores it (on topic orders, to a loopback URL, unless told). */
function row(
  name: string,
  creator: Pick<SubscriptionRow, 'created_by' | 'creator_kind'>,
  { deadLetterTopic = null, url = 'http://127.0.0.1:9/hook', topic = 'orders' }: { deadLetterTopic?: string | null; url?: string; topic?: string } = {},
): SubscriptionRow {
  const config = { url, filterKeyPrefix: null, maxAttempts: deadLetterTopic === null ? null : 3, backoffInitialMs: 500, backoffMaxMs: 60_000, deadLetterTopic, maxInFlight: 16, timeoutMs: 10_000 };
  return {
    name,
    topic,
    config: JSON.stringify(config),
    secret: 'whsec_x',
    state: 'active',
    group_id: `subscription.${name}.0`,
    start_offsets: '{}',
    created_ms: 1,
    suspended_reason: null,
    suspended_ms: null,
    ...creator,
  };
}

/** Stores subscriptions in a data dir, as a coordinator that ran there before left them. */
function storeSubscriptions(dataDir: string, rows: SubscriptionRow[]): void {
  const store = new Store(dataDir);
  for (const r of rows) store.saveSubscription(r);
  store.close();
}

describe('subscriptions and their creator’s access', () => {
  it('suspends a subscription while its creator may not consume its topic or produce to its dead-letter topic, and reinstates it', async () => {
    const dataDir = tempDir();
    storeSubscriptions(dataDir, [
      row('by-alice', { created_by: 'alice', creator_kind: 'principal' }),
      row('by-alice-dlq', { created_by: 'alice', creator_kind: 'principal' }, { deadLetterTopic: 'orders-dlq' }),
      row('by-member', { created_by: 'member', creator_kind: 'member' }),
    ]);
    const first = await coordinator(dataDir);
    const { url } = first;
    const admin = await token(url, 'admin', ADMIN_SECRET);
    const get = (name: string) => call<Subscription>(url, 'GET', `/subscriptions/${name}`, admin);
    const delivered = async () => (await call<SubscriptionsStateResponse>(url, 'GET', '/internal/subscriptions')).subscriptions.map((s) => s.name);
    const events = async () => (await call<{ events: ClusterEvent[] }>(url, 'GET', '/cluster/events', admin)).events.filter((e) => e.type.startsWith('subscription_'));

    // alice does not exist (yet): hers are suspended from the start, the cluster member's is not.
    expect((await get('by-alice')).suspended).toEqual({ reason: 'principal alice does not exist', sinceMs: expect.any(Number) });
    expect((await get('by-alice')).state).toBe('active');
    expect((await get('by-member')).suspended).toBeNull();
    expect(await delivered()).toEqual(['by-member']);
    // Operators see it in the metrics (an alert fires on suspended subscriptions).
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain('tessera_coordinator_subscriptions{state="suspended"} 2');
    expect(metrics).toContain('tessera_coordinator_subscriptions{state="active"} 1');
    expect(await events()).toMatchObject([
      { type: 'subscription_suspended', name: 'by-alice', topic: 'orders', createdBy: 'alice', reason: 'principal alice does not exist' },
      { type: 'subscription_suspended', name: 'by-alice-dlq', reason: 'principal alice does not exist' },
    ]);
    const suspendedSinceMs = (await get('by-alice')).suspended!.sinceMs;

    // alice with consume on the topic: the one without dead letters delivers; the other needs produce there too.
    await call(url, 'POST', '/users', admin, { name: 'alice' });
    const before = (await call<SubscriptionsStateResponse>(url, 'GET', '/internal/subscriptions')).version;
    await call(url, 'POST', '/acls', admin, { principal: 'alice', resource: 'topic', name: 'orders', operation: 'consume' });
    expect((await get('by-alice')).suspended).toBeNull();
    expect((await get('by-alice-dlq')).suspended).toEqual({ reason: 'principal alice is not allowed to produce to topic orders-dlq', sinceMs: suspendedSinceMs });
    // A new version, so the brokers fetch the change with their next heartbeat.
    expect((await call<SubscriptionsStateResponse>(url, 'GET', '/internal/subscriptions')).version).toBeGreaterThan(before);
    expect(await delivered()).toEqual(['by-alice', 'by-member']);
    // A prefix ACL counts like any other.
    await call(url, 'POST', '/acls', admin, { principal: 'alice', resource: 'topic', name: 'orders-', prefix: true, operation: 'produce' });
    expect(await delivered()).toEqual(['by-alice', 'by-alice-dlq', 'by-member']);
    expect((await events()).slice(2)).toMatchObject([
      { type: 'subscription_reinstated', name: 'by-alice', createdBy: 'alice' },
      { type: 'subscription_reinstated', name: 'by-alice-dlq' },
    ]);

    // The consume ACL removed: both stop.
    await call(url, 'POST', '/acls/remove', admin, { principal: 'alice', resource: 'topic', name: 'orders', operation: 'consume' });
    expect((await get('by-alice')).suspended?.reason).toBe('principal alice is not allowed to consume from topic orders');
    expect(await delivered()).toEqual(['by-member']);
    // Cluster admin allows everything, the topic's consume included.
    await call(url, 'POST', '/acls', admin, { principal: 'alice', resource: 'cluster', name: '', operation: 'admin' });
    expect(await delivered()).toEqual(['by-alice', 'by-alice-dlq', 'by-member']);
    // Deleted: suspended, although its ACLs stay (they count again if the name is created again).
    await call(url, 'DELETE', '/users/alice', admin);
    expect((await get('by-alice')).suspended?.reason).toBe('principal alice does not exist');
    expect(await delivered()).toEqual(['by-member']);
    const suspension = (await get('by-alice')).suspended;

    // Pausing and resuming change what the owner wants, not the suspension.
    expect((await call<Subscription>(url, 'POST', '/subscriptions/by-alice/pause', admin, {})).state).toBe('paused');
    const resumed = await call<Subscription>(url, 'POST', '/subscriptions/by-alice/resume', admin, {});
    expect(resumed).toMatchObject({ state: 'active', suspended: suspension });
    expect(await delivered()).toEqual(['by-member']);

    // The suspension is stored: a restart neither lifts it nor records it again.
    const eventCount = (await events()).length;
    await first.close();
    const restarted = await coordinator(dataDir);
    const adminAgain = await token(restarted.url, 'admin', ADMIN_SECRET);
    expect((await call<Subscription>(restarted.url, 'GET', '/subscriptions/by-alice', adminAgain)).suspended).toEqual(suspension);
    const eventsAfter = (await call<{ events: ClusterEvent[] }>(restarted.url, 'GET', '/cluster/events', adminAgain)).events.filter((e) => e.type.startsWith('subscription_'));
    expect(eventsAfter).toHaveLength(eventCount);

    // An admin lists and deletes a suspended subscription.
    expect((await call<{ subscriptions: Subscription[] }>(restarted.url, 'GET', '/subscriptions', adminAgain)).subscriptions.map((s) => [s.name, s.suspended !== null])).toEqual([
      ['by-alice', true],
      ['by-alice-dlq', true],
      ['by-member', false],
    ]);
    await call(restarted.url, 'DELETE', '/subscriptions/by-alice', adminAgain);
    expect((await call<{ subscriptions: Subscription[] }>(restarted.url, 'GET', '/subscriptions', adminAgain)).subscriptions.map((s) => s.name)).toEqual(['by-alice-dlq', 'by-member']);
  });

  it('suspends the subscriptions created without authentication when the coordinator starts with it, and reinstates them when it starts without', async () => {
    const dataDir = tempDir();
    storeSubscriptions(dataDir, [row('by-anonymous', { created_by: 'anonymous', creator_kind: 'anonymous' })]);
    const withAuth = await coordinator(dataDir);
    const admin = await token(withAuth.url, 'admin', ADMIN_SECRET);
    expect((await call<Subscription>(withAuth.url, 'GET', '/subscriptions/by-anonymous', admin)).suspended?.reason).toBe(
      'it was created without authentication, and authentication is on: no principal answers for it',
    );
    expect((await call<SubscriptionsStateResponse>(withAuth.url, 'GET', '/internal/subscriptions')).subscriptions).toEqual([]);
    await withAuth.close();

    const withoutAuth = await coordinator(dataDir, { auth: false });
    expect((await call<Subscription>(withoutAuth.url, 'GET', '/subscriptions/by-anonymous')).suspended).toBeNull();
    expect((await call<SubscriptionsStateResponse>(withoutAuth.url, 'GET', '/internal/subscriptions')).subscriptions.map((s) => s.name)).toEqual(['by-anonymous']);
    expect((await call<{ events: ClusterEvent[] }>(withoutAuth.url, 'GET', '/cluster/events')).events.map((e) => e.type).filter((t) => t.startsWith('subscription_'))).toEqual([
      'subscription_suspended',
      'subscription_reinstated',
    ]);
  });
});

describe('subscriptions and the target policy', () => {
  it('gives the brokers a new version when the coordinator starts with a stricter --subscription-allowed-targets, ships that policy, and suspends the subscriptions it refuses', async () => {
    const dataDir = tempDir();
    const member = { created_by: 'member', creator_kind: 'member' } as const;
    storeSubscriptions(dataDir, [
      row('to-loopback', member),
      // A host name is judged by what it resolves to, as at creation.
      row('to-localhost', member, { url: 'http://localhost:9/hook' }),
      row('to-public', member, { url: 'https://203.0.113.10/hook' }),
    ]);
    /** What a broker's heartbeat gets back (a broker without a cluster secret calls anonymously). */
    const heartbeat = async (base: string) =>
      (await call<BrokerHeartbeatResponse>(base, 'POST', '/brokers/heartbeat', undefined, { id: 1, url: 'http://127.0.0.1:9', replicas: [] })).subscriptionsVersion;
    const state = (base: string) => call<SubscriptionsStateResponse>(base, 'GET', '/internal/subscriptions');

    const loose = await coordinator(dataDir, { subscriptionAllowedTargets: 'public,loopback' });
    await call(loose.url, 'POST', '/brokers/register', undefined, { id: 1, url: 'http://127.0.0.1:9' });
    const looseVersion = await heartbeat(loose.url);
    expect((await state(loose.url)).allowedTargets).toBe('public,loopback');
    expect((await state(loose.url)).subscriptions.map((s) => s.name)).toEqual(['to-localhost', 'to-loopback', 'to-public']);
    const adminBefore = await token(loose.url, 'admin', ADMIN_SECRET);
    const publicBefore = await call<Subscription>(loose.url, 'GET', '/subscriptions/to-public', adminBefore);
    await loose.close();

    // Restarted with public only: nothing about a subscription changed, yet the version moves, so
    // every broker fetches the state, and with it the policy it enforces on each connection.
    const strict = await coordinator(dataDir, { subscriptionAllowedTargets: 'public' });
    const atStart = await state(strict.url);
    expect(atStart.allowedTargets).toBe('public');
    expect(atStart.version).not.toBe(looseVersion);
    // The stored URLs are judged in the background after the start (their hosts are looked up):
    // what the policy now refuses is suspended, so no broker holds it (a suspension's state and offsets stay).
    await vi.waitFor(async () => expect((await state(strict.url)).subscriptions.map((s) => s.name)).toEqual(['to-public']), { timeout: 10_000, interval: 20 });
    const strictVersion = await heartbeat(strict.url);
    expect(strictVersion).not.toBe(looseVersion);
    expect(await state(strict.url)).toMatchObject({ version: strictVersion, allowedTargets: 'public' });
    const admin = await token(strict.url, 'admin', ADMIN_SECRET);
    const get = (name: string) => call<Subscription>(strict.url, 'GET', `/subscriptions/${name}`, admin);
    expect(await get('to-loopback')).toMatchObject({
      state: 'active',
      suspended: {
        reason: 'its URL is not an allowed target any more: 127.0.0.1 is not an allowed target (allowed: public; the operator sets --subscription-allowed-targets)',
        sinceMs: expect.any(Number),
      },
    });
    expect((await get('to-localhost')).suspended?.reason).toMatch(/^its URL is not an allowed target any more: localhost resolves to .+, which is not an allowed target \(allowed: public;/);
    // The one still allowed is untouched.
    expect(await get('to-public')).toEqual(publicBefore);
    const events = (await call<{ events: ClusterEvent[] }>(strict.url, 'GET', '/cluster/events', admin)).events.filter((e) => e.type.startsWith('subscription_'));
    expect(events.map((e) => [e.type, e.name]).sort()).toEqual([
      ['subscription_suspended', 'to-localhost'],
      ['subscription_suspended', 'to-loopback'],
    ]);
    const suspension = (await get('to-loopback')).suspended;
    await strict.close();

    // The same policy again: no new version, and the suspension stays as it was.
    const again = await coordinator(dataDir, { subscriptionAllowedTargets: 'public' });
    expect(await heartbeat(again.url)).toBe(strictVersion);
    const adminAgain = await token(again.url, 'admin', ADMIN_SECRET);
    expect((await call<Subscription>(again.url, 'GET', '/subscriptions/to-loopback', adminAgain)).suspended).toEqual(suspension);
    await again.close();

    // Loosened again: a new version, and the subscriptions it allows are reinstated.
    const loosened = await coordinator(dataDir, { subscriptionAllowedTargets: 'public,loopback' });
    expect(await heartbeat(loosened.url)).not.toBe(strictVersion);
    await vi.waitFor(
      async () => expect((await state(loosened.url)).subscriptions.map((s) => s.name)).toEqual(['to-localhost', 'to-loopback', 'to-public']),
      { timeout: 10_000, interval: 20 },
    );
  });
});

describe('who sees a subscription', () => {
  it('lists and describes for a principal only the subscriptions on topics it may consume from, and every one for an admin', async () => {
    const dataDir = tempDir();
    const member = { created_by: 'member', creator_kind: 'member' } as const;
    // Webhook URLs often carry the receiver's credentials: only those who may read the topic see them.
    storeSubscriptions(dataDir, [
      row('orders-hook', member, { url: 'http://127.0.0.1:9/hook?token=orders-secret' }),
      row('payments-hook', member, { topic: 'payments', url: 'http://127.0.0.1:9/hook?token=payments-secret' }),
    ]);
    const { url } = await coordinator(dataDir);
    const admin = await token(url, 'admin', ADMIN_SECRET);
    const { secret } = await call<{ secret: string }>(url, 'POST', '/users', admin, { name: 'alice' });
    await call(url, 'POST', '/acls', admin, { principal: 'alice', resource: 'topic', name: 'orders', operation: 'consume' });
    // Produce is not consume: it shows nothing of the topic's subscriptions.
    await call(url, 'POST', '/acls', admin, { principal: 'alice', resource: 'topic', name: 'payments', operation: 'produce' });
    const alice = await token(url, 'alice', secret);
    const names = async (caller: string) => (await call<{ subscriptions: Subscription[] }>(url, 'GET', '/subscriptions', caller)).subscriptions.map((s) => s.name);

    expect(await names(alice)).toEqual(['orders-hook']);
    expect(await call<Subscription>(url, 'GET', '/subscriptions/orders-hook', alice)).toMatchObject({ name: 'orders-hook', url: 'http://127.0.0.1:9/hook?token=orders-secret' });
    // Refused as pausing it is.
    const refused = '403 {"error":{"code":"FORBIDDEN","message":"principal alice is not allowed to consume from topic payments"';
    await expect(call(url, 'GET', '/subscriptions/payments-hook', alice)).rejects.toThrow(refused);
    await expect(call(url, 'POST', '/subscriptions/payments-hook/pause', alice, {})).rejects.toThrow(refused);

    // The cluster admin sees and describes both.
    expect(await names(admin)).toEqual(['orders-hook', 'payments-hook']);
    expect((await call<Subscription>(url, 'GET', '/subscriptions/payments-hook', admin)).url).toBe('http://127.0.0.1:9/hook?token=payments-secret');
    // A principal without any consume sees an empty list, not a refusal.
    const { secret: bobSecret } = await call<{ secret: string }>(url, 'POST', '/users', admin, { name: 'bob' });
    expect(await names(await token(url, 'bob', bobSecret))).toEqual([]);
  });
});
