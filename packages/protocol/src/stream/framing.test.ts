// The streams' framing: messages come out whole and in order however the bytes are
// cut into chunks, and a length no message may have closes the stream.
import { describe, expect, it } from 'vitest';
import { MessageReader, MessageTooLarge, encodeMessage } from './framing.js';

function randomBytes(length: number, seed: number): Buffer {
  const bytes = Buffer.alloc(length);
  let x = seed;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

describe('stream framing', () => {
  it('gives back every message, id and body, whatever the chunk boundaries', () => {
    const sent = Array.from({ length: 50 }, (_, i) => ({ id: 0xffffff00 + i, body: randomBytes((i * 977) % 5000, i) }));
    const wire = Buffer.concat(sent.flatMap((message) => encodeMessage(message.id, undefined, [message.body.subarray(0, 7), message.body.subarray(7)])));
    for (const seed of [1, 2, 3, 4, 5]) {
      const reader = new MessageReader(1 << 20);
      const received: Array<{ id: number; body: Buffer }> = [];
      let at = 0;
      let x = seed;
      while (at < wire.length) {
        x = (x * 1103515245 + 12345) >>> 0;
        const size = 1 + (x % 700);
        received.push(...reader.push(wire.subarray(at, at + size)));
        at += size;
      }
      expect(received.map((m) => m.id)).toEqual(sent.map((m) => m.id));
      received.forEach((message, i) => expect(message.body.equals(sent[i]!.body)).toBe(true));
    }
  });

  it('reads an empty body', () => {
    const reader = new MessageReader(10);
    expect(reader.push(Buffer.concat(encodeMessage(7, undefined, [])))).toEqual([{ id: 7, mac: Buffer.alloc(0), body: Buffer.alloc(0) }]);
  });

  it('refuses a message larger than the limit, and a length too short for an id', () => {
    expect(() => new MessageReader(100).push(Buffer.concat(encodeMessage(1, undefined, [Buffer.alloc(101)])))).toThrow(MessageTooLarge);
    expect(new MessageReader(100).push(Buffer.concat(encodeMessage(1, undefined, [Buffer.alloc(100)])))).toHaveLength(1);
    const tooShort = Buffer.from([0, 0, 0, 3, 0, 0, 0, 1]);
    expect(() => new MessageReader(100).push(tooShort)).toThrow(MessageTooLarge);
  });
});
