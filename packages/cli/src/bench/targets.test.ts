// `tessera bench targets` judges each run against its target: the thresholds are the issue's
// (docs/operations.md, "Benchmarks"), and 192 partitions is judged against the 6-partition run.
import { describe, expect, it } from 'vitest';
import type { BenchResult } from './run.js';
import { OPEN_FILES_SLACK, judge, judgeOpenFiles, renderTargets, type TargetsReport } from './targets.js';

function result(overrides: Partial<BenchResult>): BenchResult {
  return {
    mode: 'produce',
    topic: 't',
    partitions: 6,
    messages: 1_000,
    sizeBytes: 100,
    maxInFlight: 1_000,
    warmup: 0,
    seconds: 1,
    recordsPerSecond: 1,
    megabytesPerSecond: 0,
    failed: 0,
    loadAverage: { before: 0, after: 0, cpus: 2 },
    cpu: [
      { process: 'broker-1', cpuSeconds: 1, microsPerRecord: 3.25 },
      { process: 'broker-2', cpuSeconds: 1, microsPerRecord: 4.5 },
      { process: 'bench', cpuSeconds: 1, microsPerRecord: 2 },
    ],
    ...overrides,
  };
}

const run = (name: string, overrides: Partial<BenchResult>) => ({ name, command: `tessera bench ${name}`, target: 'a target', result: result(overrides) });

describe('bench targets: judging', () => {
  it('holds each produce run to its records/s: 120k at 100 B, 60k at 1 KiB, 250k with more than 1,000 in flight', () => {
    const verdicts = judge([
      run('p100 under', { recordsPerSecond: 119_999 }),
      run('p100 at', { recordsPerSecond: 120_000 }),
      run('p1k under', { sizeBytes: 1024, recordsPerSecond: 59_999 }),
      run('p1k at', { sizeBytes: 1024, recordsPerSecond: 60_000 }),
      run('pu100 under', { maxInFlight: 100_000, recordsPerSecond: 249_999 }),
      run('pu100 at', { maxInFlight: 100_000, recordsPerSecond: 250_000 }),
    ]);
    expect(verdicts.map((v) => [v.name, v.met])).toEqual([
      ['p100 under', false],
      ['p100 at', true],
      ['p1k under', false],
      ['p1k at', true],
      ['pu100 under', false],
      ['pu100 at', true],
    ]);
    expect(verdicts[1]!.figure).toBe('120,000 records/s');
  });

  it('judges 192 partitions against the 6-partition run of 100 B with 1,000 in flight', () => {
    const six = run('p100', { recordsPerSecond: 100_000 });
    const [, under] = judge([six, run('p192', { partitions: 192, recordsPerSecond: 79_999 })]);
    const [, at] = judge([six, run('p192', { partitions: 192, recordsPerSecond: 80_000 })]);
    expect(under).toMatchObject({ met: false, figure: '79,999 records/s (80 %)' });
    expect(at).toMatchObject({ met: true, figure: '80,000 records/s (80 %)' });
    // Without the 6-partition run there is nothing to judge against.
    expect(judge([run('p192', { partitions: 192, recordsPerSecond: 80_000 })])[0]!.met).toBeNull();
  });

  it('holds one at a time to p50 0.4 and p99 1.2 ms, end to end to p99 4.5 ms, consume to 300k/s', () => {
    const latency = (p50: number, p99: number) => run('latency', { mode: 'latency', ackLatencyMs: { p50, p99, max: p99 } });
    const e2e = (p99: number) => run('e2e', { mode: 'e2e', e2eLatencyMs: { p50: 1, p99, max: p99 } });
    const verdicts = judge([latency(0.4, 1.2), latency(0.41, 1.0), latency(0.3, 1.21), e2e(4.5), e2e(4.51), run('consume', { mode: 'consume', recordsPerSecond: 300_000 }), run('consume', { mode: 'consume', recordsPerSecond: 299_999 })]);
    expect(verdicts.map((v) => v.met)).toEqual([true, false, false, true, false, true, false]);
    expect(verdicts[0]!.figure).toBe('p50 0.400 ms, p99 1.200 ms');
  });

  it(`counts open files as independent of the partitions when no broker grew by more than ${OPEN_FILES_SLACK}`, () => {
    const before = [
      { process: 'broker-1', openFiles: 40 },
      { process: 'broker-2', openFiles: 41 },
    ];
    expect(judgeOpenFiles(before, [{ process: 'broker-1', openFiles: 40 + OPEN_FILES_SLACK }, { process: 'broker-2', openFiles: 39 }]).met).toBe(true);
    expect(judgeOpenFiles(before, [{ process: 'broker-1', openFiles: 40 + OPEN_FILES_SLACK + 1 }, { process: 'broker-2', openFiles: 39 }]).met).toBe(false);
    // A broker whose /metrics gave no figure is not judged; with none readable there is no verdict.
    expect(judgeOpenFiles(before, [{ process: 'broker-1', openFiles: null }, { process: 'broker-2', openFiles: 45 }]).met).toBe(true);
    expect(judgeOpenFiles(before, [{ process: 'broker-1', openFiles: null }]).met).toBeNull();
  });

  it('prints one row per target, the brokers\' and the bench\'s CPU per record, the count met and the commands', () => {
    const report: TargetsReport = {
      mode: 'targets',
      scale: 1,
      runs: judge([run('p100', { recordsPerSecond: 130_000 }), run('e2e', { mode: 'e2e', e2eLatencyMs: { p50: 2, p99: 9, max: 12 } })]),
      openFiles: judgeOpenFiles([{ process: 'broker-1', openFiles: 39 }], [{ process: 'broker-1', openFiles: 40 }]),
      loadAverage: { before: 0.1, after: 1.5, cpus: 2 },
    };
    const text = renderTargets(report);
    const rows = text.split('\n');
    expect(rows[0]).toMatch(/^RUN\s+TARGET\s+RESULT\s+MET\s+CPU PER RECORD, BROKERS \/ BENCH$/);
    expect(rows[1]).toMatch(/^p100\s+a target\s+130,000 records\/s\s+yes\s+3\.3–4\.5 \/ 2\.0 µs$/);
    expect(rows[2]).toMatch(/^e2e\s+a target\s+p99 9\.000 ms\s+no\s+/);
    expect(rows[3]).toMatch(/^open files per broker\s+independent of the partition count\s+39 → 40\s+yes$/);
    expect(text).toContain('targets met:  2 of 3\n');
    expect(text).toContain('  tessera bench p100\n');
    expect(text).not.toContain('floor');
  });

  it('shows the floor beside the figures when it was measured', () => {
    const summary = (p50: number, p99: number) => ({ p50, p99, max: p99 });
    const report: TargetsReport = {
      mode: 'targets',
      scale: 1,
      runs: judge([run('p100', { recordsPerSecond: 130_000 })]),
      openFiles: judgeOpenFiles([], []),
      floor: {
        mode: 'floor',
        dir: '/var/lib/tessera',
        rounds: 2_000,
        roundTripMs: summary(0.02, 0.1),
        roundTripCpuMicros: { client: 30, server: 30 },
        fdatasyncMs: summary(0.25, 0.4),
        sqliteCommitMs: summary(0.15, 0.3),
        oneAtATimeFloorMs: 0.19,
        replicatedWriteMs: summary(0.43, 1.5),
        replicatedWriteCpuMicros: { client: 60, primary: 180, secondary: 130 },
        loadAverage: { before: 0, after: 0, cpus: 2 },
      },
      loadAverage: { before: 0.1, after: 1.5, cpus: 2 },
    };
    expect(renderTargets(report)).toContain('floor, no tessera code: replicated write p50 0.430 ms, p99 1.500 ms; fdatasync p50 0.250 ms (in /var/lib/tessera)\n');
  });
});
