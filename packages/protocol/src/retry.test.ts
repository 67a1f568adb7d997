// Proves the retry policy retries retriable failures, stops at once on the others, and caps its waits.
import { describe, expect, it } from 'vitest';
import { TesseraError } from './errors.js';
import { backoffMs, retry } from './retry.js';

const fast = { initialMs: 1, maxMs: 2, jitter: 0 };

describe('retry', () => {
  it('retries retriable errors until the call succeeds', async () => {
    let calls = 0;
    const result = await retry(async () => {
      calls++;
      if (calls < 3) throw new TesseraError('UNAVAILABLE', 'not yet');
      return 'done';
    }, fast);
    expect(result).toBe('done');
    expect(calls).toBe(3);
  });

  it('gives up at once on a non-retriable error', async () => {
    let calls = 0;
    await expect(
      retry(async () => {
        calls++;
        throw new TesseraError('INVALID_REQUEST', 'bad');
      }, fast),
    ).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    expect(calls).toBe(1);
  });

  it('stops after the configured retries and calls onRetry before each wait', async () => {
    const seen: number[] = [];
    await expect(
      retry(
        async () => {
          throw new TesseraError('TIMEOUT', 'slow');
        },
        { ...fast, retries: 2, onRetry: (_error, attempt) => void seen.push(attempt) },
      ),
    ).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(seen).toEqual([0, 1]);
  });

  it('gives up with the last error instead of waiting past its deadline', async () => {
    let calls = 0;
    const started = Date.now();
    await expect(
      retry(
        async () => {
          calls++;
          throw new TesseraError('UNAVAILABLE', `attempt ${calls}`);
        },
        { initialMs: 20, maxMs: 20, jitter: 0, retries: Infinity, deadlineMs: performance.now() + 70 },
      ),
    ).rejects.toThrow(/attempt [34]/);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('grows the wait exponentially up to the cap', () => {
    const policy = { retries: 10, initialMs: 10, multiplier: 2, maxMs: 100, jitter: 0 };
    expect([0, 1, 2, 3, 4, 5].map((attempt) => backoffMs(attempt, policy))).toEqual([10, 20, 40, 80, 100, 100]);
  });
});
