/**
 * Parsers for numeric flags. Each throws commander's InvalidArgumentError, so a bad
 * number becomes one line: `tessera: option '--partitions <n>' argument 'x' is invalid. ...`.
 */
import { InvalidArgumentError } from 'commander';

export function parseInteger(text: string, { min, max }: { min: number; max: number }): number {
  const trimmed = text.trim();
  if (!/^[+-]?\d+$/.test(trimmed)) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}.`);
  const value = Number(trimmed);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(`expected an integer from ${min} to ${max}.`);
  }
  return value;
}

/** A commander argument parser for integers in `[min, max]`. */
export function integer(min: number, max = Number.MAX_SAFE_INTEGER): (text: string) => number {
  return (text: string) => parseInteger(text, { min, max });
}

/** A commander argument parser for decimal numbers above 0 and at most `max` (`0.01`, `2.5`). */
export function positiveDecimal(max: number): (text: string) => number {
  return (text: string) => {
    const trimmed = text.trim();
    const value = /^\d*\.?\d+$/.test(trimmed) ? Number(trimmed) : NaN;
    if (!(value > 0 && value <= max)) throw new InvalidArgumentError(`expected a number above 0 and at most ${max}.`);
    return value;
  };
}

export const positiveInt = integer(1);
export const nonNegativeInt = integer(0);
export const port = integer(1, 65_535);

/** A coordinator URL: http(s) with a host, no path beyond `/`. Returned without a trailing slash. */
export function coordinatorUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidArgumentError('expected a URL like http://127.0.0.1:7070.');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidArgumentError('expected an http:// or https:// URL.');
  }
  return text.replace(/\/+$/, '');
}

/** A non-empty string flag (e.g. a key separator). */
export function nonEmpty(text: string): string {
  if (text.length === 0) throw new InvalidArgumentError('must not be empty.');
  return text;
}
