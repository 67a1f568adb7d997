/**
 * The frame: how a request or answer carries record batches over HTTP without turning
 * them into JSON. Body = uint32 BE head length, the head (UTF-8 JSON), then the tail:
 * the byte parts the head lists (each with its `bytes`), concatenated in head order.
 * The head is validated with a zod schema (`schemas.ts`) before use; `splitTail`
 * proves the listed sizes add up to the tail exactly.
 */
import { TesseraError } from '../errors.js';

export const FRAME_CONTENT_TYPE = 'application/vnd.tessera.frame';
/** Largest head a frame may carry; the batches themselves are in the tail. */
export const MAX_FRAME_HEAD_BYTES = 1024 * 1024;
const LENGTH_PREFIX_BYTES = 4;

/** The chunks to write, in order: the length-prefixed head, then every part as it is (no copy). */
export function encodeFrame(head: object, parts: readonly Buffer[]): Buffer[] {
  const json = JSON.stringify(head);
  const headBytes = Buffer.byteLength(json, 'utf8');
  const first = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES + headBytes);
  first.writeUInt32BE(headBytes, 0);
  first.write(json, LENGTH_PREFIX_BYTES, 'utf8');
  return [first, ...parts];
}

/** Bytes of a frame made of `chunks` (for a content-length). */
export function frameLength(chunks: readonly Buffer[]): number {
  let total = 0;
  for (const chunk of chunks) total += chunk.length;
  return total;
}

/** Splits a frame body into its parsed (not yet validated) head and its tail (a view, no copy). */
export function decodeFrame(body: Buffer): { head: unknown; tail: Buffer } {
  if (body.length < LENGTH_PREFIX_BYTES) throw badFrame(`${body.length} bytes, too short for the head length`);
  const headBytes = body.readUInt32BE(0);
  if (headBytes > MAX_FRAME_HEAD_BYTES) throw badFrame(`head of ${headBytes} bytes (at most ${MAX_FRAME_HEAD_BYTES})`);
  if (LENGTH_PREFIX_BYTES + headBytes > body.length) {
    throw badFrame(`head says ${headBytes} bytes, the body has ${body.length - LENGTH_PREFIX_BYTES} after the length`);
  }
  let head: unknown;
  try {
    head = JSON.parse(body.toString('utf8', LENGTH_PREFIX_BYTES, LENGTH_PREFIX_BYTES + headBytes));
  } catch (error) {
    throw badFrame(`head is not JSON (${(error as Error).message})`);
  }
  return { head, tail: body.subarray(LENGTH_PREFIX_BYTES + headBytes) };
}

/** Cuts the tail into the parts whose sizes the head lists, in order; they must cover it exactly. */
export function splitTail(tail: Buffer, sizes: readonly number[]): Buffer[] {
  let total = 0;
  for (const size of sizes) total += size;
  if (total !== tail.length) {
    throw badFrame(`head lists ${total} bytes of parts, the tail holds ${tail.length}`);
  }
  const parts: Buffer[] = [];
  let at = 0;
  for (const size of sizes) {
    parts.push(tail.subarray(at, at + size));
    at += size;
  }
  return parts;
}

function badFrame(message: string): TesseraError {
  return new TesseraError('INVALID_REQUEST', `malformed frame: ${message}`);
}
