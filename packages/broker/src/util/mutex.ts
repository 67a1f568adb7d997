/** Runs async sections one at a time, in call order (serializes flushes and catch-up batches of a partition). */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(section: () => Promise<T> | T): Promise<T> {
    const result = this.tail.then(section);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  /** Resolves once every section queued so far has finished. */
  idle(): Promise<void> {
    return this.tail.then(() => undefined);
  }
}
