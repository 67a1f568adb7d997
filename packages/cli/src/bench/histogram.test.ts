// Proves percentiles from the bounded histogram are within its 1% bucket width.
import { describe, expect, it } from 'vitest';
import { LatencyHistogram } from './histogram.js';

describe('LatencyHistogram', () => {
  it('answers percentiles within 1%', () => {
    const histogram = new LatencyHistogram();
    for (let ms = 1; ms <= 1000; ms++) histogram.recordMs(ms);
    expect(histogram.percentileMs(0.5)).toBeGreaterThanOrEqual(500);
    expect(histogram.percentileMs(0.5)).toBeLessThanOrEqual(505);
    expect(histogram.percentileMs(0.99)).toBeGreaterThanOrEqual(990);
    expect(histogram.percentileMs(0.99)).toBeLessThanOrEqual(1000);
    expect(histogram.maxMs).toBe(1000);
    expect(histogram.count).toBe(1000);
  });

  it('is NaN when empty and exact for one sample', () => {
    const histogram = new LatencyHistogram();
    expect(histogram.percentileMs(0.5)).toBeNaN();
    histogram.recordMs(0.25);
    expect(histogram.percentileMs(0.99)).toBe(0.25);
  });
});
