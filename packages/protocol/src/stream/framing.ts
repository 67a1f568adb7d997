/**
 * The messages of Tessera's kept-open streams (the replication stream between brokers, the
 * data stream from clients): `[u32 length][u32 id][mac][body]`, big-endian, where `length`
 * counts everything after it. An answer carries its request's id, so answers may come back in
 * any order. A stream whose messages are sealed (MessageSeal) carries a 32-byte MAC in each;
 * one that is not carries none.
 */
import type { Duplex } from 'node:stream';

const LENGTH_BYTES = 4;
const ID_BYTES = 4;
export const MAC_BYTES = 32;
/** The largest id: a connection whose ids are used up is replaced (ids only grow on a connection). */
export const MAX_MESSAGE_ID = 0xffffffff;

/** The MAC of each message of one connection: who signs requests and answers, and how they are checked. */
export interface MessageSeal {
  sign(direction: 'request' | 'answer', id: number, body: readonly Buffer[]): Buffer;
  check(direction: 'request' | 'answer', id: number, body: Buffer, mac: Buffer): boolean;
}

/** The chunks of one message (written as they are: no copy of the body). */
export function encodeMessage(id: number, mac: Buffer | undefined, body: readonly Buffer[]): Buffer[] {
  let length = ID_BYTES + (mac?.length ?? 0);
  for (const chunk of body) length += chunk.length;
  const head = Buffer.allocUnsafe(LENGTH_BYTES + ID_BYTES);
  head.writeUInt32BE(length, 0);
  head.writeUInt32BE(id, LENGTH_BYTES);
  return mac === undefined ? [head, ...body] : [head, mac, ...body];
}

/**
 * Writes one message in one go (corked: its chunks leave in one write, not one packet each);
 * `onWritten` is called once all of it has been handed to the kernel (or the socket failed).
 */
export function writeMessage(socket: Duplex, id: number, mac: Buffer | undefined, body: readonly Buffer[], onWritten?: () => void): void {
  const chunks = encodeMessage(id, mac, body);
  socket.cork();
  chunks.forEach((chunk, i) => socket.write(chunk, i === chunks.length - 1 ? onWritten : undefined));
  socket.uncork();
}

export class MessageTooLarge extends Error {
  constructor(bytes: number, maxBodyBytes: number) {
    super(`a message of ${bytes} bytes is larger than ${maxBodyBytes}`);
    this.name = 'MessageTooLarge';
  }
}

/**
 * Whether to read a message whose prefix has arrived (its id, and the bytes of its body): false
 * skips it, its bytes are dropped as they arrive and it is never handed out.
 */
export type MessageAdmission = (id: number, bodyBytes: number) => boolean;

/**
 * Cuts the bytes read from a stream into whole messages (with a MAC of `macBytes`, 0 or
 * MAC_BYTES). A message that says it is larger than `maxBodyBytes` (or too short to hold an id
 * and a MAC) throws MessageTooLarge: the stream can no longer be trusted and must be closed.
 * With `admit`, each message is offered once its prefix is read, before its body is held; one
 * it refuses is skipped without being buffered (what admit throws, push throws). Chunks are
 * joined only when a message spans them.
 */
export class MessageReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Bytes still to drop of a message that is being skipped. */
  private skipping = 0;
  /** Bytes of the message being read (prefix included), once its prefix is known. */
  private needed: number | undefined;
  private skippedCount = 0;

  constructor(
    private readonly maxBodyBytes: number,
    private readonly macBytes = 0,
    private readonly admit?: MessageAdmission,
  ) {}

  /** True while part of a message has been read (or skipped) and the rest has not. */
  get hasPartial(): boolean {
    return this.buffered > 0 || this.skipping > 0;
  }

  /**
   * Messages skipped to their last byte so far. A skipped message is never handed out, yet it
   * ends as one that is read does: a reader's user that times each message needs to know.
   */
  get skippedMessages(): number {
    return this.skippedCount;
  }

  /** Bytes held of messages not handed out yet (none of a message being skipped). */
  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): Array<{ id: number; mac: Buffer; body: Buffer }> {
    if (this.skipping > 0) {
      const dropped = Math.min(this.skipping, chunk.length);
      this.skipping -= dropped;
      if (this.skipping === 0) this.skippedCount++;
      chunk = chunk.subarray(dropped);
    }
    const messages: Array<{ id: number; mac: Buffer; body: Buffer }> = [];
    if (chunk.length === 0) return messages;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.needed === undefined) {
        if (this.buffered < LENGTH_BYTES + ID_BYTES) break;
        const prefix = this.peekPrefix();
        const length = prefix.readUInt32BE(0);
        const overhead = ID_BYTES + this.macBytes;
        if (length < overhead || length - overhead > this.maxBodyBytes) throw new MessageTooLarge(length - overhead, this.maxBodyBytes);
        if (this.admit !== undefined && !this.admit(prefix.readUInt32BE(LENGTH_BYTES), length - overhead)) {
          const dropped = Math.min(this.buffered, LENGTH_BYTES + length);
          this.drop(dropped);
          this.skipping = LENGTH_BYTES + length - dropped;
          if (this.skipping === 0) this.skippedCount++;
          continue;
        }
        this.needed = LENGTH_BYTES + length;
      }
      if (this.buffered < this.needed) break;
      const message = this.take(this.needed);
      this.needed = undefined;
      const bodyAt = LENGTH_BYTES + ID_BYTES + this.macBytes;
      messages.push({ id: message.readUInt32BE(LENGTH_BYTES), mac: message.subarray(LENGTH_BYTES + ID_BYTES, bodyAt), body: message.subarray(bodyAt) });
    }
    return messages;
  }

  /** The length and id of the next message (a view when the first chunk holds them). */
  private peekPrefix(): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= LENGTH_BYTES + ID_BYTES) return first;
    return Buffer.concat(this.chunks, LENGTH_BYTES + ID_BYTES);
  }

  /** Drops the next `bytes` bytes (all buffered) without joining chunks. */
  private drop(bytes: number): void {
    let left = bytes;
    while (left > 0) {
      const first = this.chunks[0]!;
      if (first.length <= left) {
        this.chunks.shift();
        left -= first.length;
      } else {
        this.chunks[0] = first.subarray(left);
        left = 0;
      }
    }
    this.buffered -= bytes;
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
