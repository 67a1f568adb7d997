/**
 * Idempotent produce: the rules of one producer's sequence numbers in one partition, as pure
 * functions of the producer's entry and a batch header (checked against cases in
 * producer-state.test.ts), and `PartitionProducers`, the entries of one partition replica.
 *
 * The state is derived from the batch headers alone (producerId, producerEpoch, baseSequence,
 * lastOffsetDelta) and the offsets the batches were stored at: a primary checks a batch before
 * it stamps it and records it once accepted; a follower records every batch it appends. So the
 * state replicates with the log and needs no message of its own; a truncation removes what the
 * removed batches had added.
 *
 * The rules are Kafka's (ProducerStateManager): an entry keeps its producer's epoch and the spans
 * of its last PRODUCER_BATCHES_KEPT batches. A batch of an older epoch is fenced; a batch of a
 * newer epoch must start at sequence 0; a batch equal to one of the spans kept is a duplicate,
 * answered with the offsets it got the first time; otherwise its first sequence must follow the
 * last one. A producer the partition does not know (never seen, or expired) may start at any
 * sequence, so a producer idle for longer than the expiry goes on where it was.
 *
 * Idempotency keys (curl users, `Idempotency-Key` on the JSON produce route) ride on the same
 * state: the route stamps the batch with a producer id derived from the key (in a range the
 * coordinator never hands out, from KEYED_PRODUCER_ID_BASE) at sequence 0, and every record
 * carries the key as a header. The entry of such an id remembers the key itself (read from the
 * first record of the batch, the only decoding this state ever does, and only for keyed
 * batches), so a request is a duplicate only when its key is the same string, not merely the
 * same hash; a different key with the same id replaces the entry. Keyed entries expire after the
 * idempotency window instead of the producer expiry.
 */
import { createHash } from 'node:crypto';
import { IDEMPOTENCY_KEY_HEADER, addSequence, decodeRecordBatch } from '@tessera/protocol';

/** Batches of one producer remembered per partition (Kafka's limit on a producer's in-flight requests). */
export const PRODUCER_BATCHES_KEPT = 5;

/** Producer ids from here on are derived from idempotency keys; the coordinator hands out ids below it. */
export const KEYED_PRODUCER_ID_BASE = 2 ** 52;

/** What the producer-state rules read of a batch header. */
export interface SequencedBatch {
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  lastOffsetDelta: number;
  /** The idempotency key of a keyed batch (producer id from KEYED_PRODUCER_ID_BASE). */
  key?: string;
}

/** The producer id of an idempotency key: 52 bits of its SHA-256 above KEYED_PRODUCER_ID_BASE (a safe integer). */
export function keyedProducerId(key: string): number {
  const digest = createHash('sha256').update(key, 'utf8').digest();
  return KEYED_PRODUCER_ID_BASE + (digest.readUIntBE(0, 6) * 16 + (digest[6] >> 4));
}

/** One stored batch of a producer: its sequence numbers and where it was stored. */
export interface BatchSpan {
  firstSeq: number;
  lastSeq: number;
  baseOffset: number;
  lastOffset: number;
}

/** One producer's state in one partition. Never mutated: every change makes a new entry. */
export interface ProducerEntry {
  epoch: number;
  /** The spans of its last batches, oldest first; never empty. */
  batches: readonly BatchSpan[];
  /** When this replica last stored a batch of it (its wall clock), for the expiry. */
  lastUpdateMs: number;
  /** The idempotency key of a keyed producer id. */
  key?: string;
}

export type SequenceVerdict =
  | { kind: 'append' }
  | { kind: 'duplicate'; baseOffset: number; lastOffset: number }
  | { kind: 'fenced'; message: string }
  | { kind: 'out-of-order'; message: string };

/** What a primary does with `batch` given its producer's entry (undefined: unknown or expired). */
export function checkSequence(entry: ProducerEntry | undefined, batch: SequencedBatch): SequenceVerdict {
  if (entry === undefined) return { kind: 'append' };
  if (batch.key !== undefined) {
    // A keyed request is stored once per key; another key of the same id takes the entry over.
    const span = entry.batches[entry.batches.length - 1];
    return entry.key === batch.key ? { kind: 'duplicate', baseOffset: span.baseOffset, lastOffset: span.lastOffset } : { kind: 'append' };
  }
  const { producerId, producerEpoch, baseSequence } = batch;
  if (producerEpoch < entry.epoch) {
    return { kind: 'fenced', message: `producer ${producerId} epoch ${producerEpoch} is fenced: the partition has seen epoch ${entry.epoch}` };
  }
  if (producerEpoch > entry.epoch) {
    if (baseSequence === 0) return { kind: 'append' };
    return {
      kind: 'out-of-order',
      message: `producer ${producerId}: the first batch of epoch ${producerEpoch} must start at sequence 0, not ${baseSequence}`,
    };
  }
  const lastSeq = addSequence(baseSequence, batch.lastOffsetDelta);
  for (const span of entry.batches) {
    if (span.firstSeq === baseSequence && span.lastSeq === lastSeq) {
      return { kind: 'duplicate', baseOffset: span.baseOffset, lastOffset: span.lastOffset };
    }
  }
  const expected = addSequence(entry.batches[entry.batches.length - 1].lastSeq, 1);
  if (baseSequence === expected) return { kind: 'append' };
  return {
    kind: 'out-of-order',
    message: `producer ${producerId} epoch ${producerEpoch}: expected sequence ${expected}, got ${baseSequence}..${lastSeq}`,
  };
}

/**
 * The entry after `batch` was stored at `baseOffset..lastOffset`. Applying a batch the entry
 * already holds (at or below its last offset) changes nothing, so a primary that recorded a
 * batch when it accepted it can let its log record it again on append.
 */
export function applyBatch(
  entry: ProducerEntry | undefined,
  batch: SequencedBatch,
  baseOffset: number,
  lastOffset: number,
  nowMs: number,
): ProducerEntry {
  const span: BatchSpan = { firstSeq: batch.baseSequence, lastSeq: addSequence(batch.baseSequence, batch.lastOffsetDelta), baseOffset, lastOffset };
  if (entry !== undefined && entry.batches[entry.batches.length - 1].lastOffset >= baseOffset) return entry;
  if (batch.key !== undefined) return { epoch: batch.producerEpoch, batches: [span], lastUpdateMs: nowMs, key: batch.key };
  // The log is the truth: a batch the primary accepted starts a new entry when its epoch differs
  // (a newer epoch, or an older one the primary accepted because it had expired the entry).
  if (entry === undefined || entry.epoch !== batch.producerEpoch) return { epoch: batch.producerEpoch, batches: [span], lastUpdateMs: nowMs };
  const batches = entry.batches.length < PRODUCER_BATCHES_KEPT ? [...entry.batches, span] : [...entry.batches.slice(1), span];
  return { epoch: entry.epoch, batches, lastUpdateMs: nowMs };
}

/** The entry once the log is cut at `toOffset` (the batches from there on removed); undefined when none of its batches is left. */
export function truncateEntry(entry: ProducerEntry, toOffset: number): ProducerEntry | undefined {
  if (entry.batches[entry.batches.length - 1].lastOffset < toOffset) return entry;
  const batches = entry.batches.filter((span) => span.lastOffset < toOffset);
  return batches.length === 0 ? undefined : { ...entry, batches };
}

export function isExpired(entry: ProducerEntry, nowMs: number, expiryMs: number, keyWindowMs = expiryMs): boolean {
  return nowMs - entry.lastUpdateMs >= (entry.key === undefined ? expiryMs : keyWindowMs);
}

/** The producer fields of the batch at the start of `bytes`, or undefined when it has no producer id (-1). */
export function sequencedBatch(bytes: Buffer): SequencedBatch | undefined {
  // producerId is an int64 at byte 43: negative exactly when its high word is.
  const high = bytes.readInt32BE(43);
  if (high < 0) return undefined;
  const producerId = high * 2 ** 32 + bytes.readUInt32BE(47);
  const batch: SequencedBatch = {
    producerId,
    producerEpoch: bytes.readInt16BE(51),
    baseSequence: bytes.readInt32BE(53),
    lastOffsetDelta: bytes.readInt32BE(23),
  };
  if (producerId >= KEYED_PRODUCER_ID_BASE) {
    const header = decodeRecordBatch(bytes).records[0]?.headers.find((h) => h.key === IDEMPOTENCY_KEY_HEADER);
    // Stored by the JSON route with the key on every record; without it the id counts as a plain producer.
    if (header?.value != null) batch.key = header.value.toString('utf8');
  }
  return batch;
}

/** A persisted entry: the row of `producers` in broker.db. */
export interface ProducerRow {
  producer_id: number;
  epoch: number;
  last_update_ms: number;
  /** The spans: encodeSpans' bytes, or JSON text in a row a broker of storage schema 3 wrote. */
  batches: Uint8Array | string;
  idempotency_key: string | null;
}

/** The first byte of encodeSpans' bytes: the version of their layout. */
const SPANS_LAYOUT = 1;
/** Bytes per span: firstSeq and lastSeq (int32), baseOffset and lastOffset (float64, exact for safe integers). */
const SPAN_BYTES = 24;

/**
 * The spans of an entry as stored in its row: a layout byte, then per span its two sequence
 * numbers and two offsets, big-endian. A flush writes a row for every producer it moved, so
 * this is on the hot path: JSON text cost a broker 6 % of its event loop with 192 partitions.
 */
export function encodeSpans(spans: readonly BatchSpan[]): Buffer {
  const bytes = Buffer.allocUnsafe(1 + spans.length * SPAN_BYTES);
  bytes[0] = SPANS_LAYOUT;
  let at = 1;
  for (const span of spans) {
    bytes.writeInt32BE(span.firstSeq, at);
    bytes.writeInt32BE(span.lastSeq, at + 4);
    bytes.writeDoubleBE(span.baseOffset, at + 8);
    bytes.writeDoubleBE(span.lastOffset, at + 16);
    at += SPAN_BYTES;
  }
  return bytes;
}

/** The spans of a stored row (either encoding); throws on bytes of any other layout. */
export function decodeSpans(stored: Uint8Array | string): BatchSpan[] {
  if (typeof stored === 'string') return JSON.parse(stored) as BatchSpan[];
  const bytes = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
  if (bytes.length === 0 || bytes[0] !== SPANS_LAYOUT || (bytes.length - 1) % SPAN_BYTES !== 0) {
    throw new Error(`stored producer spans of ${bytes.length} bytes have an unknown layout (first byte ${bytes[0]})`);
  }
  const spans: BatchSpan[] = [];
  for (let at = 1; at < bytes.length; at += SPAN_BYTES) {
    spans.push({
      firstSeq: bytes.readInt32BE(at),
      lastSeq: bytes.readInt32BE(at + 4),
      baseOffset: bytes.readDoubleBE(at + 8),
      lastOffset: bytes.readDoubleBE(at + 16),
    });
  }
  return spans;
}

/**
 * The producer entries of one partition replica. Changes are remembered until `takeChanges()`,
 * which the log turns into writes of the same transaction as the batches that caused them.
 */
export class PartitionProducers {
  private readonly entries = new Map<number, ProducerEntry>();
  private readonly changed = new Set<number>();

  constructor(
    readonly expiryMs: number,
    readonly keyWindowMs: number,
    rows: readonly ProducerRow[] = [],
  ) {
    for (const row of rows) {
      let batches: BatchSpan[];
      try {
        batches = decodeSpans(row.batches);
      } catch (error) {
        throw new Error(`producer ${row.producer_id}: ${(error as Error).message}`, { cause: error });
      }
      if (batches.length === 0) continue;
      const entry: ProducerEntry = { epoch: row.epoch, batches, lastUpdateMs: row.last_update_ms };
      if (row.idempotency_key !== null) entry.key = row.idempotency_key;
      this.entries.set(row.producer_id, entry);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  /** The producer's live entry: undefined when unknown or expired. */
  entry(producerId: number, nowMs: number): ProducerEntry | undefined {
    const entry = this.entries.get(producerId);
    return entry === undefined || isExpired(entry, nowMs, this.expiryMs, this.keyWindowMs) ? undefined : entry;
  }

  check(batch: SequencedBatch, nowMs: number): SequenceVerdict {
    return checkSequence(this.entry(batch.producerId, nowMs), batch);
  }

  /** Records a stored batch; returns the entry it replaced, for `restore`. */
  apply(batch: SequencedBatch, baseOffset: number, lastOffset: number, nowMs: number): ProducerEntry | undefined {
    const before = this.entries.get(batch.producerId);
    // An expired entry not swept yet is gone for `check`: a batch accepted on that ground starts
    // a new entry rather than joining spans that could answer a later batch as a duplicate.
    const after = applyBatch(this.entry(batch.producerId, nowMs), batch, baseOffset, lastOffset, nowMs);
    if (after !== before) {
      this.entries.set(batch.producerId, after);
      this.changed.add(batch.producerId);
    }
    return before;
  }

  /** Puts back the entry `apply` replaced (a primary refusing a request whose earlier batch it had accepted). */
  restore(producerId: number, entry: ProducerEntry | undefined): void {
    if (entry === undefined) this.entries.delete(producerId);
    else this.entries.set(producerId, entry);
    this.changed.add(producerId);
  }

  /** Forgets what the batches from `toOffset` on had added. */
  truncate(toOffset: number): void {
    for (const [producerId, entry] of this.entries) {
      const after = truncateEntry(entry, toOffset);
      if (after === entry) continue;
      if (after === undefined) this.entries.delete(producerId);
      else this.entries.set(producerId, after);
      this.changed.add(producerId);
    }
  }

  /** Forgets every producer: a log that starts again empty holds none of their batches. */
  clear(): void {
    for (const producerId of this.entries.keys()) this.changed.add(producerId);
    this.entries.clear();
  }

  /** Drops every expired entry. */
  expire(nowMs: number): void {
    for (const [producerId, entry] of this.entries) {
      if (!isExpired(entry, nowMs, this.expiryMs, this.keyWindowMs)) continue;
      this.entries.delete(producerId);
      this.changed.add(producerId);
    }
  }

  /** The producers changed since the last call, with their entry now (undefined: deleted). */
  takeChanges(): Array<[producerId: number, entry: ProducerEntry | undefined]> {
    if (this.changed.size === 0) return [];
    const changes: Array<[number, ProducerEntry | undefined]> = [];
    for (const producerId of this.changed) changes.push([producerId, this.entries.get(producerId)]);
    this.changed.clear();
    return changes;
  }
}
