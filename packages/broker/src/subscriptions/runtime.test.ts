// Proves a subscription's connections go only to addresses its target policy allows (the host is
// resolved again on every connection), and that its in-flight bound holds and lets no holder in
// once its signal aborted.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TargetPolicy } from '@tessera/protocol';
import type { DeadLetterWriter } from './dead-letter.js';
import { SubscriptionMetrics } from './metrics.js';
import { heldSubscription as held } from '../test-support/subscription.js';
import { Slots, SubscriptionRuntime } from './runtime.js';

let server: http.Server;
let port: number;

beforeAll(async () => {
  server = http.createServer((_req, res) => res.writeHead(204).end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});


/** One POST through the runtime's pool, as a delivery sends it. */
async function post(runtime: SubscriptionRuntime): Promise<number> {
  const response = await runtime.agent.request({ origin: runtime.target.origin, path: '/', method: 'POST', body: '{}' });
  await response.body.dump();
  return response.statusCode;
}

describe('a subscription runtime', () => {
  // The deliveries' dead-letter writer is not used by these connections.
  const noDeadLetters = {} as DeadLetterWriter;

  it('refuses to connect to a name that resolves to an address the policy does not allow', async () => {
    const runtime = new SubscriptionRuntime(held(`http://localhost:${port}/`), new TargetPolicy('public'), new SubscriptionMetrics(), noDeadLetters);
    try {
      await expect(post(runtime)).rejects.toThrow(/no allowed target address/);
    } finally {
      await runtime.close();
    }
  });

  it('refuses an IPv6 address the policy does not allow, written as a literal', async () => {
    const runtime = new SubscriptionRuntime(held(`http://[::1]:${port}/`), new TargetPolicy('public'), new SubscriptionMetrics(), noDeadLetters);
    try {
      expect(runtime.refusedTarget).toMatch(/::1 is not an allowed target address/);
    } finally {
      await runtime.close();
    }
  });

  it('connects when the policy allows the address the name resolves to', async () => {
    const runtime = new SubscriptionRuntime(held(`http://localhost:${port}/`), new TargetPolicy('loopback'), new SubscriptionMetrics(), noDeadLetters);
    try {
      expect(await post(runtime)).toBe(204);
    } finally {
      await runtime.close();
    }
  });
});

describe('slots', () => {
  it('lets at most `limit` holders in, the next waiter in order as one is released', async () => {
    const slots = new Slots(2);
    const signal = new AbortController().signal;
    const a = await slots.acquire(signal);
    const b = await slots.acquire(signal);
    const order: string[] = [];
    const c = slots.acquire(signal).then((release) => (order.push('c'), release));
    const d = slots.acquire(signal).then((release) => (order.push('d'), release));
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual([]);
    a();
    a(); // a second release of the same slot changes nothing
    const releaseC = await c;
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(['c']);
    b();
    (await d)();
    releaseC();
    expect(order).toEqual(['c', 'd']);
  });

  it('gives up waiting when its signal aborts', async () => {
    const slots = new Slots(1);
    const release = await slots.acquire(new AbortController().signal);
    const abort = new AbortController();
    const waiting = slots.acquire(abort.signal);
    abort.abort(new Error('stopped'));
    await expect(waiting).rejects.toThrow('stopped');
    release();
    // The aborted waiter took no slot.
    (await slots.acquire(new AbortController().signal))();
  });

  it('lets no holder in once its signal aborted, though a slot is free', async () => {
    const slots = new Slots(1);
    const abort = new AbortController();
    abort.abort(new Error('stopped'));
    await expect(slots.acquire(abort.signal)).rejects.toThrow('stopped');
    // The refused holder took no slot.
    (await slots.acquire(new AbortController().signal))();
  });
});
