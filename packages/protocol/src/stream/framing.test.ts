// The streams' framing: messages come out whole and in order however the bytes are
// cut into chunks, a message its reader does not admit is dropped as it arrives, never held,
// and counted as skipped once its last byte is dropped, and a length no message may have closes the stream.
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

  it('skips a message it does not admit, and reads the next, whatever the chunk boundaries', () => {
    const sent = Array.from({ length: 20 }, (_, i) => ({ id: i + 1, body: randomBytes(100 + i * 401, i) }));
    const wire = Buffer.concat(sent.flatMap((message) => encodeMessage(message.id, undefined, [message.body])));
    for (const size of [1, 7, 8, 9, 1_000, 65_536]) {
      const offered: Array<[number, number]> = [];
      // Every third message is not admitted.
      const reader = new MessageReader(1 << 20, 0, (id, bodyBytes) => {
        offered.push([id, bodyBytes]);
        return id % 3 !== 0;
      });
      const received: Array<{ id: number; body: Buffer }> = [];
      for (let at = 0; at < wire.length; at += size) received.push(...reader.push(wire.subarray(at, at + size)));
      expect(offered).toEqual(sent.map((m) => [m.id, m.body.length]));
      const admitted = sent.filter((m) => m.id % 3 !== 0);
      expect(received.map((m) => m.id)).toEqual(admitted.map((m) => m.id));
      received.forEach((message, i) => expect(message.body.equals(admitted[i]!.body)).toBe(true));
      expect(reader.hasPartial).toBe(false);
      expect(reader.skippedMessages).toBe(sent.length - admitted.length);
    }
  });

  it('holds none of a large message it skips, and says it is partial until its last byte', () => {
    const reader = new MessageReader(1 << 20, 0, () => false);
    const wire = Buffer.concat(encodeMessage(1, undefined, [Buffer.alloc(500_000, 1)]));
    for (let at = 0; at < wire.length - 1; at += 10_000) {
      expect(reader.push(wire.subarray(at, Math.min(at + 10_000, wire.length - 1)))).toEqual([]);
      expect(reader.bufferedBytes).toBe(0);
      expect(reader.hasPartial).toBe(true);
      expect(reader.skippedMessages).toBe(0);
    }
    expect(reader.push(wire.subarray(wire.length - 1))).toEqual([]);
    expect(reader.hasPartial).toBe(false);
    expect(reader.skippedMessages).toBe(1);
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
