// Proves a frame carries its JSON head and byte parts unchanged, and that every malformed
// frame (short, lying head length, head not JSON, parts not adding up) is INVALID_REQUEST.
import { describe, expect, it } from 'vitest';
import { TesseraError } from '../errors.js';
import { fetchFrameHead, produceFrameHead } from '../schemas.js';
import { parseOrThrow } from '../validate.js';
import { decodeFrame, encodeFrame, frameLength, MAX_FRAME_HEAD_BYTES, splitTail } from './frame.js';

function refused(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(TesseraError);
    expect((error as TesseraError).code).toBe('INVALID_REQUEST');
    return (error as Error).message;
  }
  throw new Error('expected the frame to be refused');
}

describe('frame', () => {
  it('round-trips a head and its parts', () => {
    const parts = [Buffer.from([0, 1, 2]), Buffer.alloc(0), Buffer.from('ü€', 'utf8')];
    const head = { partitions: [{ topic: 't', partition: 0, bytes: 3 }, { topic: 'ü', partition: 1, bytes: 0 }, { topic: 't', partition: 2, bytes: parts[2]!.length }] };
    const chunks = encodeFrame(head, parts);
    const body = Buffer.concat(chunks);
    expect(frameLength(chunks)).toBe(body.length);
    expect(body.readUInt32BE(0)).toBe(Buffer.byteLength(JSON.stringify(head)));
    const decoded = decodeFrame(body);
    expect(decoded.head).toEqual(head);
    expect(splitTail(decoded.tail, head.partitions.map((p) => p.bytes))).toEqual(parts);
  });

  it('refuses short bodies, lying lengths, heads that are not JSON and parts that do not add up', () => {
    expect(refused(() => decodeFrame(Buffer.from([0, 0])))).toMatch(/malformed frame: 2 bytes/);
    const lying = Buffer.concat(encodeFrame({ a: 1 }, []));
    lying.writeUInt32BE(100, 0);
    expect(refused(() => decodeFrame(lying))).toMatch(/head says 100 bytes/);
    const huge = Buffer.alloc(8);
    huge.writeUInt32BE(MAX_FRAME_HEAD_BYTES + 1, 0);
    expect(refused(() => decodeFrame(huge))).toMatch(/head of \d+ bytes/);
    const notJson = Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from('{x]')]);
    expect(refused(() => decodeFrame(notJson))).toMatch(/head is not JSON/);
    expect(refused(() => splitTail(Buffer.alloc(5), [2, 2]))).toMatch(/lists 4 bytes of parts, the tail holds 5/);
    expect(refused(() => splitTail(Buffer.alloc(3), [2, 2]))).toMatch(/lists 4 bytes/);
  });
});

describe('frame head schemas', () => {
  it('accept a produce head and refuse a repeated partition or an empty part', () => {
    expect(parseOrThrow(produceFrameHead, { partitions: [{ topic: 'a', partition: 0, bytes: 70 }] })).toEqual({
      partitions: [{ topic: 'a', partition: 0, bytes: 70 }],
    });
    expect(() =>
      parseOrThrow(produceFrameHead, { partitions: [{ topic: 'a', partition: 0, bytes: 70 }, { topic: 'a', partition: 0, bytes: 70 }] }),
    ).toThrow(/at most once/);
    expect(() => parseOrThrow(produceFrameHead, { partitions: [{ topic: 'a', partition: 0, bytes: 0 }] })).toThrow(/bytes/);
    expect(() => parseOrThrow(produceFrameHead, { partitions: [{ topic: 'a b', partition: 0, bytes: 1 }] })).toThrow(/topic/);
  });

  it('accept a fetch head with a per-partition error', () => {
    const head = {
      partitions: [
        { topic: 'a', partition: 0, highWatermark: 5, logStartOffset: 0, bytes: 100 },
        { topic: 'a', partition: 1, highWatermark: 0, logStartOffset: 0, bytes: 0, error: { code: 'NOT_PRIMARY', message: 'x', retriable: true, primary: null } },
      ],
    };
    expect(parseOrThrow(fetchFrameHead, head)).toEqual(head);
  });
});
