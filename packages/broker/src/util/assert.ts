/** Invariant checks: the protocol's, so every package throws the same InvariantError (which stops a service loudly). */
export { InvariantError, assert } from '@tessera/protocol';
