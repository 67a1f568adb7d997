/**
 * The signal of one call made under a longer-lived one (a loop's or a consumer's stop signal):
 * it aborts when the longer-lived signal does or when the call's own deadline passes, and lets go
 * of the longer-lived signal once the call ended.
 *
 * Not `AbortSignal.any([parent, AbortSignal.timeout(ms)])`: Node 20 keeps every signal made so in
 * the parent's list of dependants for as long as the parent lives, even after the call ended and
 * its signal was collected, so a loop that makes one per request under a signal that lives for
 * days grows without bound.
 */

export interface LinkedAbort {
  /**
   * Aborts with the parent's reason when the parent aborts, or, when the deadline passes first,
   * with the reason `AbortSignal.timeout` gives (a DOMException named `TimeoutError`), so callers
   * tell the two apart as they did with it.
   */
  readonly signal: AbortSignal;
  /** True when the deadline aborted the signal (and not the parent before it). */
  readonly timedOut: boolean;
  /** Stops listening to the parent and clears the deadline: call it once the call ended. Idempotent. */
  dispose(): void;
}

/** A signal for one call under `parent` (none: only the deadline) that aborts after `timeoutMs` at the latest. */
export function linkedAbort(parent: AbortSignal | undefined, timeoutMs: number): LinkedAbort {
  const controller = new AbortController();
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  const onParentAbort = (): void => {
    dispose();
    controller.abort(parent?.reason);
  };
  function dispose(): void {
    clearTimeout(timer);
    parent?.removeEventListener('abort', onParentAbort);
  }
  if (parent?.aborted === true) {
    controller.abort(parent.reason);
  } else {
    timer = setTimeout(() => {
      timedOut = true;
      dispose();
      controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
    }, timeoutMs);
    // As with AbortSignal.timeout: a deadline alone keeps no process alive (the call it bounds does).
    timer.unref();
    parent?.addEventListener('abort', onParentAbort, { once: true });
  }
  return {
    signal: controller.signal,
    get timedOut() {
      return timedOut;
    },
    dispose,
  };
}
