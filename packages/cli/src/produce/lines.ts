/**
 * Turning stdin into records: a streaming line splitter (never holds more than one
 * partial line) and the rule that maps one line to one record. A line is text; with
 * `--value-format base64` (and `--key-format base64`) the value (key) is the base64 of
 * the bytes to send, so any bytes fit on a line.
 */
import { decodeBase64 } from '@tessera/protocol';

export type TextFormat = 'text' | 'base64';

export interface LineRecord {
  key?: string | Buffer;
  value: string | Buffer;
  partition?: number;
}

export interface LineOptions {
  /** Every record gets this key. */
  key?: string;
  /** The text before the first separator is the key; a line without it is keyless. */
  keySeparator?: string;
  partition?: number;
  /** How the value is written on the line (default text: sent as its UTF-8 bytes). */
  valueFormat?: TextFormat;
  /** How the key is written (the line's or `--key`; default text). */
  keyFormat?: TextFormat;
}

/** The record of one line; throws INVALID_REQUEST when a base64 part is not base64. */
export function lineToRecord(line: string, options: LineOptions): LineRecord {
  let key: string | undefined;
  let value = line;
  if (options.key !== undefined) {
    key = options.key;
  } else if (options.keySeparator !== undefined) {
    const at = line.indexOf(options.keySeparator);
    if (at >= 0) {
      key = line.slice(0, at);
      value = line.slice(at + options.keySeparator.length);
    }
  }
  const record: LineRecord = { value: options.valueFormat === 'base64' ? decodeBase64(value, 'the value') : value };
  if (key !== undefined) record.key = options.keyFormat === 'base64' ? decodeBase64(key, 'the key') : key;
  if (options.partition !== undefined) record.partition = options.partition;
  return record;
}

/**
 * Splits text chunks into lines at `\n`, dropping a `\r` before it. Keeps only the
 * unfinished tail between chunks, so memory stays bounded by the longest line.
 */
export class LineSplitter {
  private tail = '';

  /** The complete lines in `chunk` (with what was left of the previous one). */
  push(chunk: string): string[] {
    const text = this.tail + chunk;
    const lines = text.split('\n');
    this.tail = lines.pop()!;
    return lines.map(stripCarriageReturn);
  }

  /** The last line when the input did not end with a newline. */
  end(): string[] {
    const tail = this.tail;
    this.tail = '';
    return tail.length > 0 ? [stripCarriageReturn(tail)] : [];
  }

  /** Characters held for the unfinished line. */
  get pendingChars(): number {
    return this.tail.length;
  }
}

function stripCarriageReturn(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

/**
 * Lines of a readable stream, pulled one chunk at a time, so a slow consumer of the
 * lines slows the reading (backpressure) instead of buffering all of stdin.
 */
export async function* readLines(input: NodeJS.ReadableStream, maxLineChars = 64 * 1024 * 1024): AsyncGenerator<string> {
  const splitter = new LineSplitter();
  input.setEncoding('utf8');
  for await (const chunk of input) {
    for (const line of splitter.push(chunk as string)) yield line;
    if (splitter.pendingChars > maxLineChars) throw new Error(`a line is longer than ${maxLineChars} characters`);
  }
  yield* splitter.end();
}
