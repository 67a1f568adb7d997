/**
 * Invariant checks. A broken invariant is a programmer error: it throws (and, outside a
 * request, stops the process loudly) instead of letting a log be corrupted.
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
