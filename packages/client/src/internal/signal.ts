/** Small waiting helpers shared by the producer and the consumer. */

/**
 * A wake-up call for a loop that sleeps between rounds: `wait(ms)` resolves after `ms`
 * or on the next `notify()`, whichever comes first. A `notify()` while nobody waits is
 * kept, so the next `wait()` returns at once and no change is slept through.
 */
export class Wakeup {
  private readonly listeners = new Set<() => void>();
  private signaled = false;

  wait(ms: number, options: { signal?: AbortSignal; unref?: boolean } = {}): Promise<void> {
    if (this.signaled) {
      this.signaled = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const { signal } = options;
      if (signal?.aborted) return resolve();
      const timer = setTimeout(done, ms);
      if (options.unref === true) timer.unref();
      this.listeners.add(done);
      signal?.addEventListener('abort', done, { once: true });
      const listeners = this.listeners;
      function done(): void {
        clearTimeout(timer);
        listeners.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      }
    });
  }

  notify(): void {
    if (this.listeners.size === 0) {
      this.signaled = true;
      return;
    }
    for (const listener of [...this.listeners]) listener();
  }
}

/**
 * Resolves after `ms` or as soon as `signal` aborts (never rejects). Waits that work a
 * caller awaits depends on keep Node alive; background loops pass `unref` so they never do.
 */
export function delay(ms: number, signal?: AbortSignal, options: { unref?: boolean } = {}): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    if (options.unref === true) timer.unref();
    signal?.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}
