// The pure rules of positions: clamping into [log start, HW] and the target of every reset mode.
import { describe, expect, it } from 'vitest';
import { clampOffset, listOffsetsRequest, resetOffsetFor, resetOffsetsRequest } from './positions.js';

describe('clampOffset', () => {
  it('keeps an offset inside [log start, HW] and moves one outside to the nearer end', () => {
    expect(clampOffset(5, 2, 10)).toBe(5);
    expect(clampOffset(0, 2, 10)).toBe(2);
    expect(clampOffset(11, 2, 10)).toBe(10);
    expect(clampOffset(10, 2, 10)).toBe(10);
  });
});

describe('resetOffsetFor', () => {
  const partition = { current: 6, logStartOffset: 2, highWatermark: 10 };
  it('answers each mode, clamped', () => {
    expect(resetOffsetFor({ to: 'earliest' }, partition)).toBe(2);
    expect(resetOffsetFor({ to: 'latest' }, partition)).toBe(10);
    expect(resetOffsetFor({ to: 'offset', offset: 7 }, partition)).toBe(7);
    expect(resetOffsetFor({ to: 'offset', offset: 70 }, partition)).toBe(10);
    expect(resetOffsetFor({ to: 'offset', offset: 0 }, partition)).toBe(2);
    expect(resetOffsetFor({ to: 'timestamp', timestamp: 1 }, { ...partition, atTimestamp: 4 })).toBe(4);
    expect(resetOffsetFor({ to: 'shift', by: -3 }, partition)).toBe(3);
    expect(resetOffsetFor({ to: 'shift', by: -30 }, partition)).toBe(2);
    expect(resetOffsetFor({ to: 'shift', by: 3 }, partition)).toBe(9);
    expect(resetOffsetFor({ to: 'shift', by: 30 }, partition)).toBe(10);
  });

  it('shifts a partition without a committed offset from the log start', () => {
    expect(resetOffsetFor({ to: 'shift', by: 2 }, { ...partition, current: null })).toBe(4);
  });

  it('refuses a time reset without the time lookup (a programmer error)', () => {
    expect(() => resetOffsetFor({ to: 'timestamp', timestamp: 1 }, partition)).toThrow(/time lookup/);
  });
});

describe('request schemas', () => {
  it('accept the documented shapes and refuse others', () => {
    expect(listOffsetsRequest.safeParse({ partitions: [{ topic: 't', partition: 0, at: 'earliest' }] }).success).toBe(true);
    expect(listOffsetsRequest.safeParse({ partitions: [{ topic: 't', partition: 0, at: { timestamp: 5 } }] }).success).toBe(true);
    expect(listOffsetsRequest.safeParse({ partitions: [{ topic: 't', partition: 0, at: 'first' }] }).success).toBe(false);
    expect(listOffsetsRequest.safeParse({ partitions: [{ topic: 't', partition: 0, at: { timestamp: -1 } }] }).success).toBe(false);
    expect(resetOffsetsRequest.safeParse({ topic: 't', target: { to: 'shift', by: -5 }, execute: false }).success).toBe(true);
    expect(resetOffsetsRequest.safeParse({ topic: 't', target: { to: 'offset', offset: -1 }, execute: true }).success).toBe(false);
    expect(resetOffsetsRequest.safeParse({ topic: 't', target: { to: 'earliest' } }).success).toBe(false);
  });
});
