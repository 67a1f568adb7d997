// Parsing every --offset form and --to-datetime time, and where a read starts from each (clamped into the log).
import { describe, expect, it } from 'vitest';
import { parseOffsetSpec, parseTime, startOffset } from './position.js';

describe('parseOffsetSpec', () => {
  it('parses each form', () => {
    expect(parseOffsetSpec('42')).toEqual({ kind: 'offset', offset: 42 });
    expect(parseOffsetSpec('0')).toEqual({ kind: 'offset', offset: 0 });
    expect(parseOffsetSpec('earliest')).toEqual({ kind: 'earliest' });
    expect(parseOffsetSpec('latest')).toEqual({ kind: 'latest' });
    expect(parseOffsetSpec('-10')).toEqual({ kind: 'from-end', count: 10 });
    expect(parseOffsetSpec('@1700000000000')).toEqual({ kind: 'time', timestampMs: 1_700_000_000_000 });
    expect(parseOffsetSpec('@2026-01-31T12:00:00Z')).toEqual({ kind: 'time', timestampMs: Date.UTC(2026, 0, 31, 12) });
  });

  it('refuses anything else with a message naming the forms', () => {
    for (const bad of ['', 'first', '1.5', '--3', '@', '@yesterday', '99999999999999999', '+3']) {
      expect(() => parseOffsetSpec(bad), bad).toThrow(/expected|valid time|before 1970/);
    }
  });
});

describe('parseTime', () => {
  it('reads epoch ms, and ISO times with or without a zone (UTC when none)', () => {
    expect(parseTime('0')).toBe(0);
    expect(parseTime('2026-01-31')).toBe(Date.UTC(2026, 0, 31));
    expect(parseTime('2026-01-31T12:30')).toBe(Date.UTC(2026, 0, 31, 12, 30));
    expect(parseTime('2026-01-31T12:30:05.250Z')).toBe(Date.UTC(2026, 0, 31, 12, 30, 5, 250));
    expect(parseTime('2026-01-31T12:30:00+02:00')).toBe(Date.UTC(2026, 0, 31, 10, 30));
  });

  it('refuses malformed and impossible times', () => {
    expect(() => parseTime('31/01/2026')).toThrow(/ISO 8601/);
    expect(() => parseTime('2026-13-45')).toThrow(/not a valid time/);
  });
});

describe('startOffset', () => {
  const partition = { logStartOffset: 10, highWatermark: 50 };
  it('resolves each form and clamps into [log start, HW]', () => {
    expect(startOffset({ kind: 'earliest' }, partition)).toBe(10);
    expect(startOffset({ kind: 'latest' }, partition)).toBe(50);
    expect(startOffset({ kind: 'offset', offset: 20 }, partition)).toBe(20);
    expect(startOffset({ kind: 'offset', offset: 5 }, partition)).toBe(10);
    expect(startOffset({ kind: 'offset', offset: 500 }, partition)).toBe(50);
    expect(startOffset({ kind: 'from-end', count: 5 }, partition)).toBe(45);
    expect(startOffset({ kind: 'from-end', count: 500 }, partition)).toBe(10);
    expect(startOffset({ kind: 'time', timestampMs: 1 }, { ...partition, atTime: 33 })).toBe(33);
  });
});
