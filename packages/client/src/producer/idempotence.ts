/**
 * The idempotent producer's identity and sequence numbers. The producer id and epoch come from
 * the coordinator (`POST /producers`) the first time a batch needs them; every partition numbers
 * its batches from 0 under that identity (a batch of n records takes n sequence numbers), once,
 * when the batch is encoded, so a retried batch is the same bytes with the same numbers and the
 * partition's primary answers it with the offsets it stored it at the first time.
 *
 * What the producer does when a batch's fate breaks the numbering:
 * - OUT_OF_ORDER_SEQUENCE or PRODUCER_FENCED (the partition refuses the numbering), or TIMEOUT
 *   (the batch may or may not be stored, so the next number may or may not follow): the batch
 *   fails with that error and the identity is dropped: the next batch of every partition gets a
 *   new producer id and starts again at sequence 0 (a batch in flight meanwhile finishes under
 *   the old one). Kafka bumps the epoch instead; a new id does the same here, since an
 *   idempotent producer has no transactions to fence.
 * - Any other non-retriable error (a refusal: FORBIDDEN, PAYLOAD_TOO_LARGE, …) of a batch sent
 *   once: nothing was stored, so the partition takes the same numbers again for its next batch.
 *   If the batch had been sent more than once, an earlier attempt may have been stored, so the
 *   identity is dropped as above (reusing its numbers could make different records look like a
 *   duplicate).
 *
 * While the coordinator does not answer, batches that need the identity share one request: it is
 * tried again as long as any of them still waits, and each batch waits until its own deadline.
 */
import {
  addSequence,
  isRetriable,
  isTesseraError,
  retry,
  TesseraError,
  type InitProducerResponse,
  COORDINATOR_ROUTES,
  type RetryOptions,
} from '@tessera/protocol';
import type { Connection } from '../connection/connection.js';

/** A producer id and epoch, and which identity of this producer it is (a new one after every reset). */
export interface ProducerIdentity extends InitProducerResponse {
  generation: number;
}

/** Where a partition is in the numbering of the identity `generation`. */
export interface PartitionSequence {
  generation: number;
  next: number;
}

/** The sequence numbers one batch took. */
export interface BatchSequence {
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  generation: number;
}

/** A batch waiting for the identity until its own deadline. */
interface IdentityWaiter {
  resolve(identity: ProducerIdentity): void;
  reject(error: unknown): void;
  deadlineTimer: NodeJS.Timeout;
}

/** The one `POST /producers` of a generation in progress, and the batches waiting for its answer. */
interface IdentityRequest {
  generation: number;
  waiters: Set<IdentityWaiter>;
  /** Whether an attempt is out (rather than the wait before the next one). */
  attempting: boolean;
  lastError: unknown;
  /** Cuts the wait before the next attempt short once no batch waits any more. */
  stop: AbortController;
}

export class IdempotenceManager {
  private identity: ProducerIdentity | undefined;
  private request: IdentityRequest | undefined;
  private generation = 0;

  constructor(
    private readonly connection: Connection,
    private readonly retryOptions: RetryOptions,
  ) {}

  /**
   * The current identity, asked of the coordinator when there is none. Waits until `deadlineMs`
   * (`performance.now()` milliseconds) at most, then fails with TIMEOUT; the request goes on
   * while another batch waits, and an identity it gets later is kept for the next batch.
   */
  current(deadlineMs: number): Promise<ProducerIdentity> {
    if (this.identity !== undefined) return Promise.resolve(this.identity);
    const request = this.request ?? this.startRequest();
    return new Promise((resolve, reject) => {
      const waiter: IdentityWaiter = {
        resolve,
        reject,
        deadlineTimer: setTimeout(() => this.gaveUp(request, waiter), Math.max(0, deadlineMs - performance.now())),
      };
      request.waiters.add(waiter);
    });
  }

  /**
   * Asks the coordinator for an identity, again after every retriable error while any batch
   * waits. Starts without waiters: its caller adds one in the same turn of the event loop,
   * before any attempt can end.
   */
  private startRequest(): IdentityRequest {
    const request: IdentityRequest = { generation: this.generation, waiters: new Set(), attempting: false, lastError: undefined, stop: new AbortController() };
    this.request = request;
    const attempt = async () => {
      request.attempting = true;
      try {
        return await this.connection.coordinator<InitProducerResponse>('POST', COORDINATOR_ROUTES.producers, {}, {});
      } catch (error) {
        request.lastError = error;
        throw error;
      } finally {
        request.attempting = false;
      }
    };
    retry(attempt, {
      ...this.retryOptions,
      retries: Infinity,
      // No deadline of its own: the request ends when the last of its waiters' deadlines passes.
      shouldRetry: (error) => {
        if (!isRetriable(error)) return false;
        if (request.waiters.size > 0) return true;
        // Ending: a batch asking from now on starts a new request rather than hear this error.
        if (this.request === request) this.request = undefined;
        return false;
      },
      signal: request.stop.signal,
    }).then(
      (answer) => {
        const identity = { producerId: answer.producerId, producerEpoch: answer.producerEpoch, generation: request.generation };
        // After a reset, the answer only serves the batches that asked before it.
        if (this.generation === request.generation) this.identity = identity;
        this.ended(request, (waiter) => waiter.resolve(identity));
      },
      // A retriable error ends the request only once no batch waits, so waiters see only a refusal.
      (error: unknown) => this.ended(request, (waiter) => waiter.reject(error)),
    );
    return request;
  }

  /** A waiter's deadline passed: it fails, and the request stops once no batch waits any more. */
  private gaveUp(request: IdentityRequest, waiter: IdentityWaiter): void {
    request.waiters.delete(waiter);
    const lastError = request.lastError instanceof Error ? ` (last error: ${request.lastError.message})` : '';
    waiter.reject(new TesseraError('TIMEOUT', `no producer id from the coordinator by the batch's deadline${lastError}`, {}, { cause: request.lastError }));
    if (request.waiters.size > 0) return;
    // An attempt already out is let finish: its identity is kept, and a batch asking meanwhile
    // waits for it rather than starting a second request. Between attempts, the request ends now.
    if (!request.attempting) {
      request.stop.abort();
      if (this.request === request) this.request = undefined;
    }
  }

  /** The request ended: every batch still waiting hears of it. */
  private ended(request: IdentityRequest, settle: (waiter: IdentityWaiter) => void): void {
    if (this.request === request) this.request = undefined;
    for (const waiter of request.waiters) {
      clearTimeout(waiter.deadlineTimer);
      settle(waiter);
    }
    request.waiters.clear();
  }

  /** Numbers a batch of `records` records of a partition (mutates `sequence`). */
  take(identity: ProducerIdentity, sequence: PartitionSequence, records: number): BatchSequence {
    if (sequence.generation !== identity.generation) {
      sequence.generation = identity.generation;
      sequence.next = 0;
    }
    const baseSequence = sequence.next;
    sequence.next = addSequence(baseSequence, records);
    return { producerId: identity.producerId, producerEpoch: identity.producerEpoch, baseSequence, generation: identity.generation };
  }

  /**
   * After a batch failed for good: gives its numbers back to the partition (a refusal of a batch
   * sent once) or drops the identity (see the module comment). `attempts` is how often it was sent.
   */
  failed(taken: BatchSequence, sequence: PartitionSequence, error: unknown, attempts: number): void {
    const broken =
      isTesseraError(error, 'OUT_OF_ORDER_SEQUENCE') || isTesseraError(error, 'PRODUCER_FENCED') || isTesseraError(error, 'TIMEOUT') || attempts > 1;
    if (broken) {
      this.reset();
    } else if (sequence.generation === taken.generation) {
      sequence.next = taken.baseSequence;
    }
  }

  /** Drops the identity: the next batch gets a new producer id. */
  reset(): void {
    this.generation++;
    this.identity = undefined;
    this.request = undefined;
  }
}
