// The stated reset policy below the log start, the way back from beyond the end, and the start option rules.
import { describe, expect, it } from 'vitest';
import { offsetResetPolicy, outOfRangeOffset, startPosition } from './positions.js';

describe('outOfRangeOffset', () => {
  it('below the log start: earliest → log start, latest → HW, error → stop', () => {
    expect(outOfRangeOffset('earliest', 3, 10, 50)).toBe(10);
    expect(outOfRangeOffset('latest', 3, 10, 50)).toBe(50);
    expect(outOfRangeOffset('error', 3, 10, 50)).toBeUndefined();
  });

  it('beyond the end goes back to the HW whatever the policy (nothing that exists is skipped)', () => {
    for (const policy of ['earliest', 'latest', 'error'] as const) expect(outOfRangeOffset(policy, 70, 10, 50)).toBe(50);
  });
});

describe('start options', () => {
  it('defaults to latest, takes fromBeginning as earliest, and refuses a contradiction', () => {
    expect(startPosition({})).toBe('latest');
    expect(startPosition({ fromBeginning: true })).toBe('earliest');
    expect(startPosition({ startAt: { timestamp: 5 } })).toEqual({ timestamp: 5 });
    expect(startPosition({ startAt: 'earliest', fromBeginning: true })).toBe('earliest');
    expect(() => startPosition({ startAt: 'latest', fromBeginning: true })).toThrow(/contradicts/);
    expect(() => startPosition({ startAt: 'first' as never })).toThrow(/startAt/);
  });

  it('offsetReset defaults to earliest and refuses unknown policies', () => {
    expect(offsetResetPolicy(undefined)).toBe('earliest');
    expect(offsetResetPolicy('error')).toBe('error');
    expect(() => offsetResetPolicy('none' as never)).toThrow(/offsetReset must be one of/);
  });
});
