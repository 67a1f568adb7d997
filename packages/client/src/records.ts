/**
 * Records as users see them. Keys, values and header values are bytes: a producer takes
 * `Buffer`, `Uint8Array` or a string (sent as its UTF-8 bytes); a consumer hands out
 * Buffers (`record.value.toString()` for text). `codecs` turns other values into bytes
 * and back, e.g. `codecs.json.encode({ id: 1 })` and `codecs.json.decode(record.value)`.
 */

/** What a key, a value or a header value may be given as; a string is sent as UTF-8. */
export type Bytes = Buffer | Uint8Array | string;

/** A record to send. */
export interface ProducerRecord {
  topic: string;
  /** null: a record without a value (a tombstone, for a later compacted topic). */
  value: Bytes | null;
  /** Records with one key go to one partition, in order; keyless records are spread over partitions. */
  key?: Bytes | null;
  headers?: Record<string, Bytes>;
  /** Sends to this partition instead of the one the key picks. */
  partition?: number;
  /** Milliseconds since the Unix epoch (default: the producer's clock when `send()` is called). */
  timestamp?: number;
}

/** Where an acknowledged record was stored. */
export interface RecordMetadata {
  topic: string;
  partition: number;
  offset: number;
}

/** A record as a consumer hands it out. */
export interface ConsumedRecord {
  topic: string;
  partition: number;
  offset: number;
  /** Milliseconds since the Unix epoch, as the producer stamped it. */
  timestamp: number;
  key: Buffer | null;
  value: Buffer | null;
  /** Header values by name (empty when the record has none). */
  headers: Record<string, Buffer>;
}

/** Turns values of type T into bytes and back. */
export interface Codec<T> {
  encode(value: T): Buffer;
  /** Decodes bytes a record carried; null stays null. */
  decode(bytes: Buffer | null): T | null;
}

/** Ready-made codecs: `string` (UTF-8) and `json` (UTF-8 JSON). Anything else: encode it yourself. */
export const codecs = {
  string: {
    encode: (value: string): Buffer => Buffer.from(value, 'utf8'),
    decode: (bytes: Buffer | null): string | null => (bytes === null ? null : bytes.toString('utf8')),
  } satisfies Codec<string>,
  json: {
    encode: (value: unknown): Buffer => Buffer.from(JSON.stringify(value), 'utf8'),
    decode: (bytes: Buffer | null): unknown => (bytes === null ? null : JSON.parse(bytes.toString('utf8'))),
  } satisfies Codec<unknown>,
} as const;

/** The bytes of a key, value or header value given as `Bytes` (a string as UTF-8; no copy of a Buffer or Uint8Array). */
export function toBytes(value: Bytes): Uint8Array {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value instanceof Uint8Array) return value;
  throw new TypeError(`expected a Buffer, a Uint8Array or a string, got ${describe(value)}`);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? `a ${(value as object).constructor?.name ?? 'object'}` : `a ${typeof value}`;
}
