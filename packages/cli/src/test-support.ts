/**
 * Test helpers: a Runtime whose client is a fake and whose streams are in memory.
 * Only imported by *.test.ts files.
 */
import { PassThrough, Readable } from 'node:stream';
import type { TesseraClient } from '@tessera/client';
import { Runtime } from './runtime.js';

export interface FakeIo {
  runtime: Runtime;
  stdout: () => string;
  stderr: () => string;
}

export function fakeRuntime(client: unknown, stdinText = '', stdout: PassThrough = new PassThrough()): FakeIo {
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const stdin = Readable.from([Buffer.from(stdinText)]);
  const runtime = new Runtime(
    { stdin: stdin as unknown as NodeJS.ReadStream, stdout: stdout as unknown as NodeJS.WriteStream, stderr: stderr as unknown as NodeJS.WriteStream },
    'http://127.0.0.1:7070',
  );
  runtime.client = () => client as TesseraClient;
  return { runtime, stdout: () => out, stderr: () => err };
}

/** An admin whose metadata knows `topics`. */
export function fakeAdmin(topics: string[]) {
  return { metadata: async () => ({ version: 1, brokers: [], topics: topics.map((name) => ({ name, partitions: [] })) }) };
}
