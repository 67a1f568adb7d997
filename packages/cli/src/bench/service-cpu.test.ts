// Proves the bench reads CPU seconds from a Prometheus exposition and turns two samples into CPU per record.
import { describe, expect, it } from 'vitest';
import { cpuPerRecord, parseCpuSeconds } from './service-cpu.js';

describe('parseCpuSeconds', () => {
  it('finds process_cpu_seconds_total, with or without labels, and nothing else', () => {
    const text = '# HELP process_cpu_seconds_total Total CPU\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_user_seconds_total 1.5\nprocess_cpu_seconds_total 2.25\n';
    expect(parseCpuSeconds(text)).toBe(2.25);
    expect(parseCpuSeconds('process_cpu_seconds_total{service="broker"} 7e-1\n')).toBe(0.7);
    expect(parseCpuSeconds('process_cpu_user_seconds_total 1\n')).toBeNull();
  });
});

describe('cpuPerRecord', () => {
  it('gives microseconds per record per process, null where a sample is missing', () => {
    const before = [
      { process: 'broker-1', cpuSeconds: 10 },
      { process: 'broker-2', cpuSeconds: null },
    ];
    const after = [
      { process: 'broker-1', cpuSeconds: 12 },
      { process: 'broker-2', cpuSeconds: 5 },
      { process: 'bench', cpuSeconds: 1 },
    ];
    expect(cpuPerRecord(before, after, 1_000_000)).toEqual([
      { process: 'broker-1', cpuSeconds: 2, microsPerRecord: 2 },
      { process: 'broker-2', cpuSeconds: null, microsPerRecord: null },
      { process: 'bench', cpuSeconds: null, microsPerRecord: null },
    ]);
  });
});
