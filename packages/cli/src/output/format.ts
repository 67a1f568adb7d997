/** Number and duration formatting shared by produce, consume and bench summaries. */

export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return '-';
  return perSecond >= 100 ? formatCount(perSecond) : perSecond.toFixed(1);
}

export function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/** A latency in milliseconds, with microsecond precision below 10 ms. */
export function formatLatencyMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  return ms < 10 ? `${ms.toFixed(3)} ms` : `${ms.toFixed(1)} ms`;
}

export function formatMegabytesPerSecond(bytesPerSecond: number): string {
  return `${(bytesPerSecond / (1024 * 1024)).toFixed(2)} MB/s`;
}

/** `1 record`, `2 records`, `1,000 records`; `pluralWord` for irregular plurals (`primary`, `primaries`). */
export function plural(n: number, word: string, pluralWord = `${word}s`): string {
  return `${formatCount(n)} ${n === 1 ? word : pluralWord}`;
}
