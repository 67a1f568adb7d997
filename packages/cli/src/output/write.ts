/**
 * Writing to stdout with backpressure, and noticing when the reader went away
 * (`tessera consume | head`): EPIPE ends the command quietly instead of crashing it.
 */
import type { Writable } from 'node:stream';

export class OutputClosedError extends Error {
  constructor(cause?: unknown) {
    super('output closed', { cause });
    this.name = 'OutputClosedError';
  }
}

/**
 * Writes `text` and resolves once it was handed to the OS (so a caller may commit what
 * it printed), rejects with OutputClosedError when the reader closed the pipe.
 */
export function writeOut(stream: Writable, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (stream.destroyed || stream.writableEnded) return reject(new OutputClosedError());
    stream.write(text, (error) => {
      if (error) reject(isClosedPipe(error) ? new OutputClosedError(error) : error);
      else resolve();
    });
  });
}

export function isClosedPipe(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || code === 'ERR_STREAM_WRITE_AFTER_END';
}

/** Prints a value as one JSON document followed by a newline. */
export function jsonLine(value: unknown): string {
  return JSON.stringify(value) + '\n';
}
