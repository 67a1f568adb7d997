// Proves the delivery signature verifies only the body and timestamp it signed, and that the
// target policy refuses private, loopback and link-local addresses unless they are listed.
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DEAD_LETTER_HEADERS, TargetPolicy, createSubscriptionRequest, deadLetterHeaders, signDelivery, verifyDelivery } from './subscriptions.js';

describe('delivery signatures', () => {
  it('is HMAC-SHA256 over "<t>.<body>" and verifies only the same body, secret and a recent timestamp', () => {
    const body = '{"offset":1}';
    const header = signDelivery('s3cret', body, 1_700_000_000_000);
    const expected = createHmac('sha256', 's3cret').update(`1700000000000.${body}`).digest('hex');
    expect(header).toBe(`t=1700000000000,v1=${expected}`);
    expect(verifyDelivery('s3cret', body, header, 60_000, 1_700_000_030_000)).toBe(true);
    expect(verifyDelivery('s3cret', '{"offset":2}', header, 60_000, 1_700_000_030_000)).toBe(false);
    expect(verifyDelivery('other', body, header, 60_000, 1_700_000_030_000)).toBe(false);
    // A replay after the tolerance is refused.
    expect(verifyDelivery('s3cret', body, header, 60_000, 1_700_000_090_000)).toBe(false);
    expect(verifyDelivery('s3cret', body, 'garbage')).toBe(false);
  });
});

describe('target policy', () => {
  it('allows public addresses only by default', () => {
    const policy = new TargetPolicy('public');
    expect(policy.allowsAddress('93.184.216.34')).toBe(true);
    expect(policy.allowsAddress('2606:2800:220:1:248:1893:25c8:1946')).toBe(true);
    for (const address of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', 'fd00::1', 'fe80::1', '::ffff:127.0.0.1', '::ffff:10.0.0.1']) {
      expect(policy.allowsAddress(address), address).toBe(false);
    }
  });

  it('adds loopback, CIDR ranges and host names when listed', async () => {
    const policy = new TargetPolicy('loopback, 10.20.0.0/16, hooks.internal');
    expect(policy.allowsAddress('127.0.0.1')).toBe(true);
    expect(policy.allowsAddress('::1')).toBe(true);
    expect(policy.allowsAddress('10.20.5.5')).toBe(true);
    expect(policy.allowsAddress('10.21.0.1')).toBe(false);
    expect(policy.allowsAddress('93.184.216.34')).toBe(false);
    expect(policy.allowsHostName('HOOKS.internal')).toBe(true);
    await expect(policy.checkUrl('http://127.0.0.1:8080/x')).resolves.toBeUndefined();
    await expect(policy.checkUrl('http://10.0.0.1/x')).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    await expect(policy.checkUrl('http://user:pw@127.0.0.1/x')).rejects.toThrow(/credentials/);
    await expect(policy.checkUrl('file:///etc/passwd')).rejects.toThrow(/http/);
  });

  it('refuses a malformed policy', () => {
    expect(() => new TargetPolicy('10.0.0.0/99')).toThrow(/CIDR/);
    expect(() => new TargetPolicy('no spaces allowed')).toThrow(/not public/);
  });
});

describe('create request', () => {
  it('fills defaults and refuses maxAttempts without a dead-letter topic', () => {
    const parsed = createSubscriptionRequest.parse({ name: 's', topic: 't', url: 'http://127.0.0.1/' });
    expect(parsed).toMatchObject({ backoffInitialMs: 500, maxInFlight: 16, timeoutMs: 10_000, fromBeginning: false });
    expect(createSubscriptionRequest.safeParse({ name: 's', topic: 't', url: 'http://127.0.0.1/', maxAttempts: 2 }).success).toBe(false);
    expect(createSubscriptionRequest.safeParse({ name: 's', topic: 't', url: 'http://127.0.0.1/', deadLetterTopic: 't' }).success).toBe(false);
  });
});

describe('dead-letter headers', () => {
  it('say where the record came from and why, with the error cut to 1,000 characters and a null status empty', () => {
    const before = Date.now();
    const pushed = deadLetterHeaders({ topic: 'orders', partition: 2, offset: 41, attempts: 5, lastStatus: null, error: 'x'.repeat(1_500), subscription: 'hook' });
    expect(pushed).toMatchObject({
      [DEAD_LETTER_HEADERS.topic]: 'orders',
      [DEAD_LETTER_HEADERS.partition]: '2',
      [DEAD_LETTER_HEADERS.offset]: '41',
      [DEAD_LETTER_HEADERS.attempts]: '5',
      [DEAD_LETTER_HEADERS.lastStatus]: '',
      [DEAD_LETTER_HEADERS.error]: 'x'.repeat(1_000),
      [DEAD_LETTER_HEADERS.subscription]: 'hook',
    });
    expect(Number(pushed[DEAD_LETTER_HEADERS.timestamp])).toBeGreaterThanOrEqual(before);
    expect(pushed).not.toHaveProperty(DEAD_LETTER_HEADERS.group);
    const pulled = deadLetterHeaders({ topic: 'orders', partition: 0, offset: 7, attempts: 3, error: 'boom', group: 'billing' });
    expect(pulled[DEAD_LETTER_HEADERS.group]).toBe('billing');
    expect(pulled).not.toHaveProperty(DEAD_LETTER_HEADERS.lastStatus);
    expect(pulled).not.toHaveProperty(DEAD_LETTER_HEADERS.subscription);
  });
});
