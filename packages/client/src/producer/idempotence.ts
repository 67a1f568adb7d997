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
 */
import { addSequence, isTesseraError, retry, type InitProducerResponse, COORDINATOR_ROUTES, type RetryOptions } from '@tessera/protocol';
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

export class IdempotenceManager {
  private identity: ProducerIdentity | undefined;
  private pending: Promise<ProducerIdentity> | undefined;
  private generation = 0;

  constructor(
    private readonly connection: Connection,
    private readonly retryOptions: RetryOptions,
  ) {}

  /** The current identity, asked of the coordinator (retried until `deadlineMs`) when there is none. */
  async current(deadlineMs: number): Promise<ProducerIdentity> {
    if (this.identity !== undefined) return this.identity;
    if (this.pending === undefined) {
      const generation = this.generation;
      const request = retry(() => this.connection.coordinator<InitProducerResponse>('POST', COORDINATOR_ROUTES.producers, {}, {}), {
        ...this.retryOptions,
        retries: Infinity,
        deadlineMs,
      }).then((answer) => {
        const identity = { producerId: answer.producerId, producerEpoch: answer.producerEpoch, generation };
        if (this.generation === generation) this.identity = identity;
        return identity;
      });
      this.pending = request;
      void request.then(
        () => this.pending === request && (this.pending = undefined),
        () => this.pending === request && (this.pending = undefined),
      );
    }
    return this.pending;
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
    this.pending = undefined;
  }
}
