/**
 * Kafka's variable-length integers: zigzag-encoded, seven bits a byte, least significant
 * group first. `varint` fields hold 32-bit values (at most 5 bytes); `varlong` fields hold
 * 64-bit ones (at most 10 bytes), which Tessera keeps within the integers a JavaScript
 * number holds exactly.
 */
import { TesseraError } from '../errors.js';

const TWO_POW_31 = 2 ** 31;

function zigzag(value: number): number {
  // Multiplication instead of shifts, so values beyond 32 bits (varlong) stay exact.
  return value >= 0 ? value * 2 : -value * 2 - 1;
}

/** Bytes the zigzag varint of `value` takes. */
export function varintSize(value: number): number {
  let unsigned = zigzag(value);
  let size = 1;
  while (unsigned >= 0x80) {
    unsigned = Math.floor(unsigned / 128);
    size++;
  }
  return size;
}

/** Writes the zigzag varint of `value` at `at`; returns the position after it. */
export function writeVarint(buf: Buffer, at: number, value: number): number {
  let unsigned = zigzag(value);
  if (unsigned < TWO_POW_31) {
    while (unsigned >= 0x80) {
      buf[at++] = (unsigned & 0x7f) | 0x80;
      unsigned >>>= 7;
    }
    buf[at++] = unsigned;
    return at;
  }
  while (unsigned >= 0x80) {
    buf[at++] = (unsigned % 128) | 0x80;
    unsigned = Math.floor(unsigned / 128);
  }
  buf[at++] = unsigned;
  return at;
}

/**
 * A cursor over a buffer that reads varints and fails with INVALID_REQUEST (never a
 * RangeError or a wrong number) when the bytes run out or a varint is too long.
 */
export class VarintReader {
  constructor(
    readonly buf: Buffer,
    public at: number,
    /** Reads never go at or past this position. */
    readonly end: number,
  ) {}

  /** A signed 32-bit zigzag varint. */
  varint(what: string): number {
    return this.read(what, 5);
  }

  /** A signed 64-bit zigzag varlong, refused beyond the safe integer range. */
  varlong(what: string): number {
    return this.read(what, 10);
  }

  private read(what: string, maxBytes: number): number {
    let unsigned = 0;
    let multiplier = 1;
    for (let i = 0; i < maxBytes; i++) {
      if (this.at >= this.end) throw malformed(`truncated ${what}`);
      const byte = this.buf[this.at++]!;
      unsigned += (byte & 0x7f) * multiplier;
      if ((byte & 0x80) === 0) {
        if (unsigned > Number.MAX_SAFE_INTEGER) throw malformed(`${what} out of range`);
        // Undo the zigzag: even → non-negative, odd → negative.
        return unsigned % 2 === 0 ? unsigned / 2 : -(unsigned + 1) / 2;
      }
      multiplier *= 128;
    }
    throw malformed(`${what} varint longer than ${maxBytes} bytes`);
  }

  /** `length` bytes as a view of the underlying buffer (no copy). */
  bytes(length: number, what: string): Buffer {
    if (length < 0 || this.at + length > this.end) throw malformed(`truncated ${what}`);
    const view = this.buf.subarray(this.at, this.at + length);
    this.at += length;
    return view;
  }

  skip(length: number, what: string): void {
    if (length < 0 || this.at + length > this.end) throw malformed(`truncated ${what}`);
    this.at += length;
  }
}

export function malformed(message: string): TesseraError {
  return new TesseraError('INVALID_REQUEST', message);
}
