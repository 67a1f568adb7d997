/**
 * Positions on the command line: `--offset N|earliest|latest|-N|@TIME` of `tessera consume`
 * and the times of `groups reset-offsets --to-datetime`, parsed into values, and where a read
 * starts from them. Pure, so every form is unit-tested.
 */
import { InvalidArgumentError } from 'commander';
import { resetOffsetFor } from '@tessera/protocol';

export type OffsetSpec =
  | { kind: 'earliest' }
  | { kind: 'latest' }
  | { kind: 'offset'; offset: number }
  /** N records before the end (the high watermark). */
  | { kind: 'from-end'; count: number }
  | { kind: 'time'; timestampMs: number };

const ISO_DATE = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?)?(Z|[+-]\d{2}:?\d{2})?$/;

/**
 * A time: epoch milliseconds (digits) or an ISO 8601 date-time (`2026-01-31T12:00:00Z`; one
 * without a zone is UTC, so a command means the same on every machine).
 */
export function parseTime(text: string): number {
  const trimmed = text.trim();
  if (/^\d{1,16}$/.test(trimmed)) return checkedTime(Number(trimmed), text);
  if (!ISO_DATE.test(trimmed)) {
    throw new InvalidArgumentError('expected epoch milliseconds or an ISO 8601 time like 2026-01-31T12:00:00Z.');
  }
  const hasZone = /(Z|[+-]\d{2}:?\d{2})$/.test(trimmed) && /[T ]/.test(trimmed);
  const normalized = trimmed.replace(' ', 'T');
  const ms = Date.parse(hasZone ? normalized : /T/.test(normalized) ? `${normalized}Z` : `${normalized}T00:00:00Z`);
  if (Number.isNaN(ms)) throw new InvalidArgumentError(`${text} is not a valid time.`);
  return checkedTime(ms, text);
}

function checkedTime(ms: number, text: string): number {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new InvalidArgumentError(`${text} is before 1970 or too large.`);
  return ms;
}

/** `N` (an offset), `earliest`, `latest`, `-N` (N before the end) or `@TIME` (epoch ms or ISO time). */
export function parseOffsetSpec(text: string): OffsetSpec {
  const trimmed = text.trim();
  if (trimmed === 'earliest' || trimmed === 'beginning') return { kind: 'earliest' };
  if (trimmed === 'latest' || trimmed === 'end') return { kind: 'latest' };
  if (trimmed.startsWith('@')) return { kind: 'time', timestampMs: parseTime(trimmed.slice(1)) };
  const match = /^(-?)(\d{1,16})$/.exec(trimmed);
  if (match !== null) {
    const value = Number(match[2]);
    if (Number.isSafeInteger(value)) return match[1] === '-' ? { kind: 'from-end', count: value } : { kind: 'offset', offset: value };
  }
  throw new InvalidArgumentError('expected an offset N, earliest, latest, -N (N before the end) or @TIME (epoch ms or ISO time).');
}

/**
 * Where a read of one partition starts: the spec resolved against the partition's log start and
 * high watermark (and, for a time, the broker's answer to the time lookup), clamped into
 * [log start, HW]: an offset outside the log starts at its nearer end.
 */
export function startOffset(spec: OffsetSpec, partition: { logStartOffset: number; highWatermark: number; atTime?: number }): number {
  const { logStartOffset, highWatermark, atTime } = partition;
  // The same rules as a group reset, with the HW as the "current" offset a -N counts back from.
  const position = { current: highWatermark, logStartOffset, highWatermark, ...(atTime === undefined ? {} : { atTimestamp: atTime }) };
  switch (spec.kind) {
    case 'earliest':
    case 'latest':
      return resetOffsetFor({ to: spec.kind }, position);
    case 'offset':
      return resetOffsetFor({ to: 'offset', offset: spec.offset }, position);
    case 'from-end':
      return resetOffsetFor({ to: 'shift', by: -spec.count }, position);
    case 'time':
      return resetOffsetFor({ to: 'timestamp', timestamp: spec.timestampMs }, position);
  }
}
