/**
 * The producer's `send()` calls that have not settled, counted by generation rather than
 * one by one, so `flush()` can wait for exactly those that came before it: a flush closes
 * the current generation and waits until it and every older one have no send left. A send
 * costs a counter, not an entry in a set (adding and deleting set entries was a tenth of the
 * producer's time with 100,000 records in flight).
 */
export class UnsettledSends {
  /** The generation new sends join; a flush moves on to the next one. */
  private generation = 0;
  /** Unsettled sends of the current generation. */
  private current = 0;
  /** Unsettled sends of closed generations (only those with some left), oldest first. */
  private readonly closed = new Map<number, number>();
  private waiters: Array<{ upTo: number; resolve: () => void }> = [];

  /** A send begins; pass what this returns to `settled()` when it is over. */
  started(): number {
    this.current++;
    return this.generation;
  }

  /** `sends` sends that `started()` returned `generation` to are over (acknowledged, failed or refused). */
  settled(generation: number, sends = 1): void {
    if (generation === this.generation) {
      // No flush waits for the current generation: each one closed the generation before it.
      this.current -= sends;
      return;
    }
    const left = this.closed.get(generation)! - sends;
    if (left > 0) {
      this.closed.set(generation, left);
      return;
    }
    this.closed.delete(generation);
    // Generations close in increasing order, so the first key is the oldest one still open.
    const oldest = this.closed.keys().next().value ?? this.generation;
    this.waiters = this.waiters.filter((waiter) => {
      if (waiter.upTo >= oldest) return true;
      waiter.resolve();
      return false;
    });
  }

  /** Resolves once every send begun before this call is over. */
  drained(): Promise<void> {
    if (this.current === 0 && this.closed.size === 0) return Promise.resolve();
    const upTo = this.generation;
    if (this.current > 0) this.closed.set(upTo, this.current);
    this.current = 0;
    this.generation++;
    return new Promise<void>((resolve) => this.waiters.push({ upTo, resolve }));
  }
}
