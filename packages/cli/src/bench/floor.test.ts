// `tessera bench floor` measures for real (child processes, fdatasync, SQLite) with few rounds:
// the report must be complete and consistent, and the directory left as it was found.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fakeRuntime } from '../test-support.js';
import { runFloor, type FloorResult } from './floor.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe('bench floor', () => {
  it('reports round trip, fdatasync, SQLite commit and replicated write percentiles, the one-at-a-time sum, and cleans up', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-floor-'));
    dirs.push(dir);
    const io = fakeRuntime(undefined);
    await runFloor(io.runtime, { dir, rounds: 50, json: true });
    const result = JSON.parse(io.stdout()) as FloorResult;
    expect(result).toMatchObject({ mode: 'floor', dir, rounds: 50 });
    for (const latency of [result.roundTripMs, result.fdatasyncMs, result.sqliteCommitMs, result.replicatedWriteMs]) {
      expect(latency.p50).toBeGreaterThan(0);
      expect(latency.p99).toBeGreaterThanOrEqual(latency.p50);
      expect(latency.max).toBeGreaterThanOrEqual(latency.p99);
    }
    expect(result.roundTripCpuMicros.client).toBeGreaterThan(0);
    expect(result.roundTripCpuMicros.server).toBeGreaterThan(0);
    expect(result.oneAtATimeFloorMs).toBeCloseTo(2 * result.roundTripMs.p50 + result.sqliteCommitMs.p50, 9);
    // Each process of the replicated write did work for every record: the primary and the
    // secondary each committed it, so neither can have spent less than nothing, nor nothing.
    expect(result.replicatedWriteCpuMicros.client).toBeGreaterThan(0);
    expect(result.replicatedWriteCpuMicros.primary).toBeGreaterThan(0);
    expect(result.replicatedWriteCpuMicros.secondary).toBeGreaterThan(0);
    // Both replicas' databases (with their WAL and shared-memory files) are gone.
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('prints the report as fields', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-floor-'));
    dirs.push(dir);
    const io = fakeRuntime(undefined);
    await runFloor(io.runtime, { dir, rounds: 20 });
    const labels = io.stdout().split('\n').filter((line) => line !== '').map((line) => line.split(':')[0]);
    expect(labels).toEqual(['mode', 'dir', 'rounds', 'round trip', 'round trip cpu', 'fdatasync', 'sqlite commit', 'one at a time', 'replicated write', 'replicated cpu', 'load average']);
  });
});
