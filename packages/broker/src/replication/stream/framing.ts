/**
 * The messages of the replication stream (see stream-server.ts): `[u32 length][u32 id][body]`,
 * big-endian, where `length` counts the id and the body. A request's body is a replicate frame
 * (`batch/frame.ts`), an answer's body is JSON; an answer carries its request's id, so answers
 * may come back in any order.
 */

/** What an upgrade asks for, and the path it asks at (a GET with `Upgrade:`). */
export const REPLICATION_STREAM_PROTOCOL = 'tessera-replicate/1';
export const REPLICATION_STREAM_PATH = '/internal/replicate-stream';

const LENGTH_BYTES = 4;
const ID_BYTES = 4;
/** The largest id; the one after it is 1 again (ids only tell apart the calls in flight). */
export const MAX_MESSAGE_ID = 0xffffffff;

/** The chunks of one message (written as they are: no copy of the body). */
export function encodeMessage(id: number, body: readonly Buffer[]): Buffer[] {
  let length = ID_BYTES;
  for (const chunk of body) length += chunk.length;
  const head = Buffer.allocUnsafe(LENGTH_BYTES + ID_BYTES);
  head.writeUInt32BE(length, 0);
  head.writeUInt32BE(id, LENGTH_BYTES);
  return [head, ...body];
}

export class MessageTooLarge extends Error {
  constructor(bytes: number, maxBodyBytes: number) {
    super(`a message of ${bytes} bytes is larger than ${maxBodyBytes}`);
    this.name = 'MessageTooLarge';
  }
}

/**
 * Cuts the bytes read from a stream into whole messages. A message that says it is larger than
 * `maxBodyBytes` (or too short to hold an id) throws MessageTooLarge: the stream can no longer
 * be trusted and must be closed. Chunks are joined only when a message spans them.
 */
export class MessageReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Bytes of the message being read (prefix included), once its prefix is known. */
  private needed: number | undefined;

  constructor(private readonly maxBodyBytes: number) {}

  push(chunk: Buffer): Array<{ id: number; body: Buffer }> {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const messages: Array<{ id: number; body: Buffer }> = [];
    for (;;) {
      if (this.needed === undefined) {
        if (this.buffered < LENGTH_BYTES + ID_BYTES) break;
        const length = this.peekLength();
        if (length < ID_BYTES || length - ID_BYTES > this.maxBodyBytes) throw new MessageTooLarge(length - ID_BYTES, this.maxBodyBytes);
        this.needed = LENGTH_BYTES + length;
      }
      if (this.buffered < this.needed) break;
      const message = this.take(this.needed);
      this.needed = undefined;
      messages.push({ id: message.readUInt32BE(LENGTH_BYTES), body: message.subarray(LENGTH_BYTES + ID_BYTES) });
    }
    return messages;
  }

  private peekLength(): number {
    const first = this.chunks[0]!;
    if (first.length >= LENGTH_BYTES) return first.readUInt32BE(0);
    return Buffer.concat(this.chunks, LENGTH_BYTES).readUInt32BE(0);
  }

  /** The next `bytes` bytes, consumed (a view when the first chunk holds them all). */
  private take(bytes: number): Buffer {
    const first = this.chunks[0]!;
    let taken: Buffer;
    if (first.length >= bytes) {
      taken = first.subarray(0, bytes);
      if (first.length === bytes) this.chunks.shift();
      else this.chunks[0] = first.subarray(bytes);
    } else {
      const joined = Buffer.concat(this.chunks, this.buffered);
      taken = joined.subarray(0, bytes);
      this.chunks = joined.length === bytes ? [] : [joined.subarray(bytes)];
    }
    this.buffered -= bytes;
    return taken;
  }
}
