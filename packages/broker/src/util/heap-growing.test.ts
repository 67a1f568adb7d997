import { describe, expect, it } from 'vitest';
import { heapGrowingGiven } from './heap-growing.js';

describe('heapGrowingGiven', () => {
  it('sees a growing factor the process was started with, in either spelling', () => {
    expect(heapGrowingGiven(['--heap-growing-percent=50'])).toBe(true);
    expect(heapGrowingGiven(['--enable-source-maps', '--heap_growing_percent=0'])).toBe(true);
  });

  it('does not mistake other V8 flags for one', () => {
    expect(heapGrowingGiven([])).toBe(false);
    expect(heapGrowingGiven(['--max-old-space-size=512', '--heap-growing-percentage=5', '--trace-gc'])).toBe(false);
  });
});
