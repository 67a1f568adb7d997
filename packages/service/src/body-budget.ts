/**
 * The bytes of request bodies a service reads or holds at once, over all its connections: the
 * HTTP edge's request bodies and a broker's data stream messages count against one budget.
 * Before a caller is identified and its call authorized, a body is read in full; without one
 * bound for them all, slow senders on many connections (or many transports) could fill the
 * memory. A body that does not fit is refused UNAVAILABLE (retriable) without being read; one
 * body is always admitted while none is held, whatever its size.
 */
import { TesseraError, assert, type SharedBodyBudget } from '@tessera/protocol';

export class BodyBudget implements SharedBodyBudget {
  private held = 0;

  constructor(readonly maxBytes: number) {
    assert(Number.isSafeInteger(maxBytes) && maxBytes > 0, `a body budget of ${maxBytes} bytes`);
  }

  /** Bytes held now. */
  get heldBytes(): number {
    return this.held;
  }

  tryTake(bytes: number): boolean {
    assert(Number.isSafeInteger(bytes) && bytes >= 0, `${bytes} bytes taken from the body budget`);
    if (this.held > 0 && this.held + bytes > this.maxBytes) return false;
    this.held += bytes;
    return true;
  }

  release(bytes: number): void {
    assert(Number.isSafeInteger(bytes) && bytes >= 0 && bytes <= this.held, `${bytes} bytes given back to a body budget holding ${this.held}`);
    this.held -= bytes;
  }

  refusal(): BodyBudgetFull {
    return new BodyBudgetFull(this.held);
  }
}

/**
 * The refusal of a body that does not fit the budget: UNAVAILABLE (retriable) on the wire, like
 * a service that cannot serve right now, but one any caller can cause at will (by sending large
 * bodies slowly), so it is logged as a refusal, not as a failure with its stack (refusalOf).
 */
export class BodyBudgetFull extends TesseraError {
  constructor(heldBytes: number) {
    super('UNAVAILABLE', `too many request bodies are being read (${heldBytes} bytes); retry`);
    this.name = 'BodyBudgetFull';
  }
}
