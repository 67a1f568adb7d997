/**
 * `pnpm bench:crc32c`: CRC-32C throughput of the library the codec uses (`@node-rs/crc32`,
 * native SIMD) against a pure-JavaScript table implementation (`@aws-crypto/crc32c`), on
 * the batch sizes the data path sees. A measurement, not a test: run it on a quiet machine.
 */
import { parseArgs } from 'node:util';
import os from 'node:os';
import { crc32c as awsCrc32c } from '@aws-crypto/crc32c';
import { crc32c as nativeCrc32c } from '@node-rs/crc32';

const { values } = parseArgs({ options: { 'megabytes-per-size': { type: 'string', default: '256' } } });
const bytesPerSize = Number(values['megabytes-per-size']) * 1024 * 1024;
if (!Number.isFinite(bytesPerSize) || bytesPerSize <= 0) throw new Error('--megabytes-per-size must be a positive number');

const implementations: Array<[string, (buffer: Buffer) => number]> = [
  ['@node-rs/crc32 (native)', (buffer) => nativeCrc32c(buffer)],
  ['@aws-crypto/crc32c (JS)', (buffer) => awsCrc32c(buffer)],
];

// Both must give the standard check value before anything is timed.
for (const [name, crc] of implementations) {
  const check = crc(Buffer.from('123456789')) >>> 0;
  if (check !== 0xe3069283) throw new Error(`${name} gives ${check.toString(16)} for "123456789", not e3069283`);
}

console.error(`load average ${os.loadavg()[0]!.toFixed(2)} on ${os.cpus().length} CPUs`);
for (const size of [100, 16 * 1024, 1024 * 1024]) {
  const buffer = Buffer.alloc(size);
  for (let i = 0; i < size; i++) buffer[i] = (i * 31) & 0xff;
  for (const [name, crc] of implementations) {
    // The slow implementation gets a tenth of the bytes, so a run stays short.
    const calls = Math.max(1, Math.floor((name.includes('JS') ? bytesPerSize / 10 : bytesPerSize) / size));
    for (let i = 0; i < Math.min(calls, 1_000); i++) crc(buffer);
    const started = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) crc(buffer);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(`${name.padEnd(26)} ${String(size).padStart(8)} B  ${((seconds / calls) * 1e9).toFixed(0).padStart(10)} ns/call  ${((calls * size) / seconds / 1e6).toFixed(0).padStart(6)} MB/s`);
  }
}
