// Proves a call's linked signal lets go of the long-lived signal it was made under once the call
// ended (no abort listener left, and nothing else kept on it: Node 20 keeps every signal
// `AbortSignal.any` made in a list on its sources, under a symbol key, for the sources' lifetime),
// that the parent's abort still ends a call in flight with the parent's reason, and that the
// deadline ends it with what `AbortSignal.timeout` gives, so callers classify it as before.
import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { linkedAbort } from './linked-abort.js';

/** Resolves once `signal` aborted (at once when it has), with its reason. */
function aborted(signal: AbortSignal): Promise<unknown> {
  if (signal.aborted) return Promise.resolve(signal.reason);
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(signal.reason), { once: true }));
}

describe('linkedAbort', () => {
  it('leaves nothing on the parent once each call ended, however many calls it outlives', () => {
    const parent = new AbortController().signal;
    const listenersBefore = getEventListeners(parent, 'abort').length;
    const keysBefore = Reflect.ownKeys(parent);
    for (let i = 0; i < 1_000; i++) {
      const call = linkedAbort(parent, 60_000);
      expect(call.signal.aborted).toBe(false);
      call.dispose();
    }
    expect(getEventListeners(parent, 'abort').length).toBe(listenersBefore);
    expect(Reflect.ownKeys(parent)).toEqual(keysBefore);
  });

  it('ends a call in flight when the parent aborts, with its reason, and lets go of the parent', async () => {
    const parent = new AbortController();
    const listenersBefore = getEventListeners(parent.signal, 'abort').length;
    const call = linkedAbort(parent.signal, 60_000);
    expect(getEventListeners(parent.signal, 'abort').length).toBe(listenersBefore + 1);
    const reason = new Error('stopped');
    parent.abort(reason);
    expect(await aborted(call.signal)).toBe(reason);
    expect(call.timedOut).toBe(false);
    expect(getEventListeners(parent.signal, 'abort').length).toBe(listenersBefore);
    call.dispose();
  });

  it('is aborted at once under a parent that already aborted', () => {
    const parent = new AbortController();
    parent.abort(new Error('stopped before'));
    const call = linkedAbort(parent.signal, 60_000);
    expect(call.signal.aborted).toBe(true);
    expect(call.signal.reason).toBe(parent.signal.reason);
    expect(getEventListeners(parent.signal, 'abort').length).toBe(0);
    call.dispose();
  });

  it('ends at its deadline with the TimeoutError AbortSignal.timeout gives, with or without a parent', async () => {
    const expected = (await aborted(AbortSignal.timeout(1))) as DOMException;
    const parent = new AbortController();
    for (const call of [linkedAbort(parent.signal, 20), linkedAbort(undefined, 20)]) {
      const reason = (await aborted(call.signal)) as DOMException;
      expect(reason).toBeInstanceOf(DOMException);
      expect(reason.name).toBe(expected.name);
      expect(reason.name).toBe('TimeoutError');
      expect(reason.message).toBe(expected.message);
      expect(reason.code).toBe(expected.code);
      expect(call.timedOut).toBe(true);
      call.dispose();
    }
    expect(getEventListeners(parent.signal, 'abort').length).toBe(0);
    expect(parent.signal.aborted).toBe(false);
  });

  it('does not abort after it was disposed, neither at the deadline nor with the parent', async () => {
    const parent = new AbortController();
    const call = linkedAbort(parent.signal, 20);
    call.dispose();
    call.dispose();
    await new Promise((resolve) => setTimeout(resolve, 60));
    parent.abort(new Error('stopped later'));
    expect(call.signal.aborted).toBe(false);
    expect(call.timedOut).toBe(false);
  });
});
