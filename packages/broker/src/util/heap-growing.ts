/**
 * How far V8 lets the broker's old generation grow between two full collections.
 *
 * V8 counts the bytes of Buffers allocated since the last full collection against the old
 * generation's limit, and starts a full (mark-compact) collection once the room left under that
 * limit is smaller than the young generation. After a full collection the limit is the live size
 * times a factor it picks from its own speed figures, about 2 for a broker: with about 22 MB live
 * that leaves about 24 MB of room, less 16 MB of young generation, so 8 MB of Buffers start the
 * next one. A broker reads every record it stores into Buffers (the socket's chunks, then the
 * joined request), so at 1 KiB records it ran a full collection every 150–250 ms, 12–16 per
 * `bench produce` run (docs/operations.md, "Full collections started by Buffers": with the
 * factor below, 25 % more records/s at 1 KiB and a quarter less broker CPU per run).
 *
 * A fixed factor of 4 (`--heap-growing-percent=300`) leaves room for about 50 MB of Buffers
 * between two full collections. The cost is memory: the old generation may reach four times its
 * live size before it is collected.
 */
import v8 from 'node:v8';

const BROKER_HEAP_GROWING_PERCENT = 300;

/** True when the process was started with a growing factor of its own, which is then kept. */
export function heapGrowingGiven(execArgv: readonly string[]): boolean {
  return execArgv.some((arg) => /^--heap[-_]growing[-_]percent(=|$)/.test(arg));
}

/** Sets the broker's growing factor unless the process was started with one. */
export function setBrokerHeapGrowing(execArgv: readonly string[] = process.execArgv): void {
  if (!heapGrowingGiven(execArgv)) v8.setFlagsFromString(`--heap-growing-percent=${BROKER_HEAP_GROWING_PERCENT}`);
}
