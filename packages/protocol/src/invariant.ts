/**
 * Invariant checks. A broken invariant is a programmer error: it throws an
 * InvariantError (which no caller treats as retriable, and which stops a service
 * loudly) instead of letting a log or a batch be corrupted.
 */
export class InvariantError extends Error {
  constructor(message: string) {
    super(`invariant violated: ${message}`);
    this.name = 'InvariantError';
  }
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantError(message);
}
