/**
 * `pnpm bench:http-clients`: what one HTTP call costs with each of the project's two clients,
 * `JsonHttpClient` (got, the control plane) and `DataHttpClient` (undici, the data path), against
 * one real koa service of `@tessera/service` on loopback: sequential calls (the latency of one
 * call) and 64 concurrent callers (the throughput of one process). Both send the same small JSON
 * body over kept-alive connections. A measurement, not a test: run it on a quiet machine.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import type { AddressInfo } from 'node:net';
import { DataHttpClient, JsonHttpClient } from '@tessera/protocol';
import { createHttpService, createLogger } from '@tessera/service';

const { values } = parseArgs({ options: { calls: { type: 'string', default: '20000' } } });
const calls = Number(values.calls);
if (!Number.isInteger(calls) || calls <= 0) throw new Error('--calls must be a positive integer');

const service = createHttpService({ service: 'broker', logger: createLogger('broker', {}, { level: 'silent' }), isReady: () => true });
service.router.post('/echo', (ctx) => {
  ctx.body = { received: ctx.state.body };
});
const server = await service.listen(0, '127.0.0.1');
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/echo`;
const body = { partitions: [{ topic: 'orders', partition: 3, offset: 12345 }], maxRecords: 500 };

const got = new JsonHttpClient({ timeoutMs: 5_000, maxSockets: 64 });
const undici = new DataHttpClient({ timeoutMs: 5_000, connectionsPerOrigin: 64 });
const clients: Array<[string, () => Promise<unknown>]> = [
  ['got (JsonHttpClient)', () => got.post(url, body)],
  ['undici (DataHttpClient)', () => undici.postJson(url, body)],
];

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function sequential(call: () => Promise<unknown>, n: number): Promise<{ p50: number; p99: number; perSecond: number }> {
  const latencies: number[] = [];
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await call();
    latencies.push(performance.now() - t);
  }
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), perSecond: n / seconds };
}

async function concurrent(call: () => Promise<unknown>, n: number, callers: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (next++ < n) await call();
    }),
  );
  return n / ((performance.now() - started) / 1000);
}

console.error(`load average ${os.loadavg()[0]!.toFixed(2)} on ${os.cpus().length} CPUs, ${calls} calls per measurement`);
// Alternating rounds, so a change in the machine's load hits both clients alike.
for (let round = 1; round <= 2; round++) {
  for (const [name, call] of clients) {
    await sequential(call, Math.min(1_000, calls)); // warm-up: connections, JIT
    const one = await sequential(call, calls);
    const many = await concurrent(call, calls, 64);
    console.log(
      `round ${round}  ${name.padEnd(24)} one at a time: p50 ${(one.p50 * 1000).toFixed(0)} µs, p99 ${(one.p99 * 1000).toFixed(0)} µs, ${one.perSecond.toFixed(0)} calls/s;  64 concurrent: ${many.toFixed(0)} calls/s`,
    );
  }
}
got.close();
await undici.close();
await service.close();
