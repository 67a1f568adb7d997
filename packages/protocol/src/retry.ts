/**
 * The one retry policy of Tessera, used by the producer, the consumer and every
 * service-to-service call: exponential backoff with jitter and a cap, stopping at
 * once on an error that retrying cannot fix.
 */
import { isRetriable } from './errors.js';

export interface RetryOptions {
  /** Attempts after the first one. */
  retries: number;
  initialMs: number;
  multiplier: number;
  maxMs: number;
  /** 0..1: each wait is randomly shortened by up to this fraction. */
  jitter: number;
}

export const DEFAULT_RETRY: RetryOptions = { retries: 8, initialMs: 50, multiplier: 2, maxMs: 2_000, jitter: 0.2 };

export function backoffMs(attempt: number, options: RetryOptions = DEFAULT_RETRY): number {
  const base = Math.min(options.maxMs, options.initialMs * options.multiplier ** attempt);
  return Math.round(base * (1 - options.jitter * Math.random()));
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface RetryCallOptions extends Partial<RetryOptions> {
  /** Decides whether an error is worth another attempt (default: `isRetriable`). */
  shouldRetry?: (error: unknown) => boolean;
  /** Called before each wait, e.g. to refresh metadata after NOT_PRIMARY. */
  onRetry?: (error: unknown, attempt: number) => void | Promise<void>;
  signal?: AbortSignal;
  /**
   * Gives up (throwing the last error) instead of waiting past this time, in `performance.now()`
   * milliseconds (a monotonic clock, so a wall-clock step neither cuts a timeout short nor
   * stretches it): for loops bound by a delivery or commit timeout rather than a count.
   */
  deadlineMs?: number;
}

/** Runs `fn` until it succeeds, an error is not retriable, or the retries are used up. */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryCallOptions = {}): Promise<T> {
  const policy: RetryOptions = { ...DEFAULT_RETRY, ...definedOnly(options) };
  const shouldRetry = options.shouldRetry ?? isRetriable;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      if (attempt >= policy.retries || !shouldRetry(error) || options.signal?.aborted) throw error;
      const waitMs = backoffMs(Math.min(attempt, 30), policy);
      if (options.deadlineMs !== undefined && performance.now() + waitMs >= options.deadlineMs) throw error;
      await options.onRetry?.(error, attempt);
      await sleep(waitMs, options.signal);
    }
  }
}

function definedOnly(options: Partial<RetryOptions>): Partial<RetryOptions> {
  const out: Partial<RetryOptions> = {};
  for (const key of ['retries', 'initialMs', 'multiplier', 'maxMs', 'jitter'] as const) {
    if (options[key] !== undefined) out[key] = options[key];
  }
  return out;
}
