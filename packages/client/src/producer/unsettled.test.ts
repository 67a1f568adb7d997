import { describe, expect, it } from 'vitest';
import { UnsettledSends } from './unsettled.js';

/** Whether `promise` has resolved by the time the microtasks queued now have run. */
async function isDone(promise: Promise<void>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe('UnsettledSends', () => {
  it('a flush waits for exactly the sends begun before it, whatever order they settle in', async () => {
    const sends = new UnsettledSends();
    const early = [sends.started(), sends.started(), sends.started()];
    const first = sends.drained();
    const middle = sends.started();
    const second = sends.drained();
    const late = sends.started();

    sends.settled(early[2]!);
    sends.settled(late); // after both flushes: waited for by neither
    sends.settled(early[0]!);
    expect(await isDone(first)).toBe(false);
    sends.settled(early[1]!);
    expect(await isDone(first)).toBe(true);
    expect(await isDone(second)).toBe(false);
    sends.settled(middle);
    expect(await isDone(second)).toBe(true);
  });

  it('a later flush does not finish before an earlier generation is settled', async () => {
    const sends = new UnsettledSends();
    const old = sends.started();
    const first = sends.drained();
    const newer = sends.started();
    const second = sends.drained();
    sends.settled(newer);
    expect(await isDone(second)).toBe(false);
    sends.settled(old);
    expect(await isDone(first)).toBe(true);
    expect(await isDone(second)).toBe(true);
  });

  it('settles several sends of a generation at once, as a batch does', async () => {
    const sends = new UnsettledSends();
    const generation = sends.started();
    sends.started();
    sends.started();
    const flush = sends.drained();
    sends.settled(generation, 2);
    expect(await isDone(flush)).toBe(false);
    sends.settled(generation, 1);
    expect(await isDone(flush)).toBe(true);
  });

  it('a flush with nothing unsettled, or only sends after the last flush settled, is done at once', async () => {
    const sends = new UnsettledSends();
    expect(await isDone(sends.drained())).toBe(true);
    const one = sends.started();
    sends.settled(one);
    expect(await isDone(sends.drained())).toBe(true);
    const waiting = sends.drained();
    expect(await isDone(waiting)).toBe(true);
  });
});
