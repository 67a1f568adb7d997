/**
 * A latency histogram in bounded memory: logarithmic buckets 1% wide, so a
 * percentile is exact to within 1% however many samples a benchmark records.
 */
import { formatLatencyMs } from '../output/format.js';

export interface LatencySummary {
  p50: number;
  p99: number;
  max: number;
}

/** `p50 1.234 ms, p99 5.678 ms, max 9.1 ms`, as every bench report prints a latency. */
export function formatLatencySummary(latency: LatencySummary): string {
  return `p50 ${formatLatencyMs(latency.p50)}, p99 ${formatLatencyMs(latency.p99)}, max ${formatLatencyMs(latency.max)}`;
}

const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
/** Covers 1 µs .. about 1000 s. */
const BUCKETS = Math.ceil(Math.log(1e9) / LOG_GROWTH) + 2;

export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  maxMicros = 0;
  minMicros = Infinity;
  private sumMicros = 0;

  recordMicros(micros: number): void {
    const value = Math.max(0, micros);
    const index = value <= 1 ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(value) / LOG_GROWTH));
    this.counts[index]!++;
    this.count++;
    this.sumMicros += value;
    if (value > this.maxMicros) this.maxMicros = value;
    if (value < this.minMicros) this.minMicros = value;
  }

  recordMs(ms: number): void {
    this.recordMicros(ms * 1000);
  }

  /** The value below which `fraction` (0..1) of the samples fall, in milliseconds (NaN when empty). */
  percentileMs(fraction: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil(fraction * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) {
        const upper = i === 0 ? 1 : GROWTH ** i;
        return Math.min(upper, this.maxMicros) / 1000;
      }
    }
    return this.maxMicros / 1000;
  }

  /** p50, p99 and max in milliseconds. */
  summary(): LatencySummary {
    return { p50: this.percentileMs(0.5), p99: this.percentileMs(0.99), max: this.maxMs };
  }

  get maxMs(): number {
    return this.count === 0 ? NaN : this.maxMicros / 1000;
  }

  get meanMs(): number {
    return this.count === 0 ? NaN : this.sumMicros / this.count / 1000;
  }
}
