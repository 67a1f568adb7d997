/**
 * `tessera bench targets`: the data plane's benchmark targets (docs/operations.md,
 * "Benchmarks") in one command, on the cluster the CLI points at. It runs the modes of
 * `tessera bench` one after the other on topics of its own, with the record counts of the
 * documented commands (times `--scale`), judges each result against its target, and prints one
 * table: what was run, the target, the figure, whether it was met, and the CPU per record of the
 * brokers and of this process. Each run's own report and progress go to stderr as they come.
 * Open files per broker are read from each broker's `process_open_fds` before and after the
 * 192-partition run: a broker whose open files grew with the partitions has files per partition.
 * With `--floor-dir`, `tessera bench floor` runs first and the report shows the machine's floor
 * beside the figures (the one-at-a-time target against a bare replicated write).
 * The topics are its own (it refuses to start when one of their names is taken) and are deleted
 * at the end, with the consumer groups the runs made on them, unless `--keep-topics`.
 */
import fs from 'node:fs';
import os from 'node:os';
import { TOPIC_NAME_PATTERN } from '@tessera/protocol';
import { CliError } from '../errors.js';
import { formatCount, formatLatencyMs, formatRate } from '../output/format.js';
import { renderFields, renderTable } from '../output/table.js';
import { jsonLine } from '../output/write.js';
import type { Runtime } from '../runtime.js';
import { runFloor, type FloorResult } from './floor.js';
import { runBench, type BenchMode, type BenchOptions, type BenchResult } from './run.js';
import { sampleOpenFiles, type OpenFilesSample } from './service-cpu.js';

export interface TargetsOptions {
  /** The documented record counts are multiplied by this (0.01 for a quick check). */
  scale: number;
  /** When given, `tessera bench floor` runs there first (the brokers' disk), and the report shows it. */
  floorDir?: string;
  topicPrefix: string;
  keepTopics: boolean;
  json?: boolean;
}

/** One run of the set: its mode and flags, and the target it is judged against (none for the warm-up). */
interface Step {
  name: string;
  mode: BenchMode;
  topicSuffix: string;
  messages: number;
  size: number;
  maxInFlight: number;
  partitions?: number;
  rate?: number;
  warmup?: number;
  target?: string;
}

/** The documented set: a warm-up of the cluster, then one run per target. Counts before `--scale`. */
const STEPS: readonly Step[] = [
  { name: 'warm-up (not judged)', mode: 'produce', topicSuffix: 'warm', messages: 100_000, size: 100, maxInFlight: 1_000 },
  { name: 'produce 100 B, ≤ 1,000 in flight', mode: 'produce', topicSuffix: 'p100', messages: 300_000, size: 100, maxInFlight: 1_000, target: '≥ 120,000 records/s' },
  { name: 'produce 1 KiB, ≤ 1,000 in flight', mode: 'produce', topicSuffix: 'p1k', messages: 150_000, size: 1024, maxInFlight: 1_000, target: '≥ 60,000 records/s' },
  { name: 'produce 100 B, ≤ 100,000 in flight', mode: 'produce', topicSuffix: 'pu100', messages: 600_000, size: 100, maxInFlight: 100_000, target: '≥ 250,000 records/s' },
  {
    name: 'produce 100 B, 192 partitions',
    mode: 'produce',
    topicSuffix: 'p192',
    messages: 200_000,
    size: 100,
    maxInFlight: 1_000,
    partitions: 192,
    target: '≥ 80 % of 6 partitions',
  },
  { name: 'one at a time', mode: 'latency', topicSuffix: 'l100', messages: 5_000, size: 100, maxInFlight: 1, warmup: 2_000, target: 'p50 ≤ 0.4 ms, p99 ≤ 1.2 ms' },
  { name: 'end to end at 5,000/s', mode: 'e2e', topicSuffix: 'e100', messages: 30_000, size: 100, maxInFlight: 1_000, rate: 5_000, warmup: 10_000, target: 'p99 ≤ 4.5 ms' },
  { name: 'consume + commit', mode: 'consume', topicSuffix: 'c100', messages: 300_000, size: 100, maxInFlight: 1_000, target: '≥ 300,000 records/s' },
];

/** Rounds of each measurement of `--floor-dir` (as `tessera bench floor`'s default). */
const FLOOR_ROUNDS = 2_000;

/** Open files per broker may grow by this much over the 192-partition run (connections come and go). */
export const OPEN_FILES_SLACK = 10;

export interface JudgedRun {
  name: string;
  /** The same run as a `tessera bench` command line. */
  command: string;
  target: string | null;
  /** The figure the target is about, as printed. */
  figure: string;
  met: boolean | null;
  result: BenchResult;
}

export interface OpenFiles {
  target: string;
  /** Per broker, before and after the 192-partition run (null where `/metrics` had no figure). */
  brokers: Array<{ process: string; before: number | null; after: number | null }>;
  met: boolean | null;
}

export interface TargetsReport {
  mode: 'targets';
  scale: number;
  runs: JudgedRun[];
  openFiles: OpenFiles;
  /** This machine's floor with no Tessera code running (`--floor-dir`). */
  floor?: FloorResult;
  loadAverage: { before: number; after: number; cpus: number };
}

export async function runTargets(runtime: Runtime, options: TargetsOptions): Promise<TargetsReport> {
  if (options.floorDir !== undefined && !fs.statSync(options.floorDir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new CliError(`--floor-dir ${options.floorDir}: no such directory`, { exitCode: 2 });
  }
  const loadBefore = os.loadavg()[0]!;
  const results: Array<{ step: Step; flags: BenchOptions; result: BenchResult }> = [];
  const created: string[] = [];
  let openBefore: OpenFilesSample[] = [];
  let openAfter: OpenFilesSample[] = [];
  // Each run's report goes where its progress goes: stdout keeps the table (or JSON) alone.
  const toStderr = (text: string) => runtime.err(text.trimEnd());
  // The topics are deleted at the end, so they must be this run's own: never a topic that was there before.
  const names = STEPS.map((step) => benchOptions(step, options).topic);
  const taken = (await runtime.client().admin.listTopics()).map((topic) => topic.name).filter((name) => names.includes(name));
  if (taken.length > 0) throw new CliError(`topic ${taken[0]} exists already: give another --topic-prefix`, { exitCode: 2 });
  // Before the runs, while the cluster is idle: what the machine allows with no Tessera code.
  let floor: FloorResult | undefined;
  if (options.floorDir !== undefined) {
    runtime.err(`targets: this machine's floor: tessera bench floor --dir ${options.floorDir} -n ${FLOOR_ROUNDS}`);
    floor = await runFloor(runtime, { dir: options.floorDir, rounds: FLOOR_ROUNDS }, toStderr);
  }
  try {
    for (const step of STEPS) {
      const flags = benchOptions(step, options);
      runtime.err(`targets: ${step.name}: ${commandLine(step, flags)}`);
      created.push(flags.topic);
      if (step.partitions !== undefined) openBefore = await sampleOpenFiles(runtime.client(), runtime.tls);
      const result = await runBench(runtime, step.mode, flags, toStderr);
      if (step.partitions !== undefined) openAfter = await sampleOpenFiles(runtime.client(), runtime.tls);
      results.push({ step, flags, result });
    }
  } finally {
    if (!options.keepTopics) await deleteTopics(runtime, created);
  }
  const runs = judge(results.filter(({ step }) => step.target !== undefined).map(({ step, flags, result }) => ({ name: step.name, command: commandLine(step, flags), target: step.target!, result })));
  const report: TargetsReport = {
    mode: 'targets',
    scale: options.scale,
    runs,
    openFiles: judgeOpenFiles(openBefore, openAfter),
    ...(floor === undefined ? {} : { floor }),
    loadAverage: { before: loadBefore, after: os.loadavg()[0]!, cpus: os.cpus().length },
  };
  runtime.out(options.json ? jsonLine(report) : renderTargets(report));
  return report;
}

function benchOptions(step: Step, options: TargetsOptions): BenchOptions {
  const scaled = (n: number) => Math.max(1, Math.round(n * options.scale));
  return {
    topic: `${options.topicPrefix}-${step.topicSuffix}`,
    messages: step.mode === 'latency' ? Math.max(10, scaled(step.messages)) : scaled(step.messages),
    size: step.size,
    maxInFlight: step.maxInFlight,
    partitions: step.partitions ?? 6,
    replicationFactor: 2,
    ...(step.rate === undefined ? {} : { rate: step.rate }),
    ...(step.warmup === undefined ? {} : { warmup: scaled(step.warmup) }),
  };
}

/** The run as the command a person would type for it alone. */
function commandLine(step: Step, flags: BenchOptions): string {
  const parts = ['tessera bench', step.mode, '-t', flags.topic, '-n', String(flags.messages), '-s', String(flags.size)];
  if (step.mode === 'produce') parts.push('-c', String(flags.maxInFlight));
  if (step.partitions !== undefined) parts.push('--partitions', String(step.partitions));
  if (flags.rate !== undefined) parts.push('--rate', String(flags.rate));
  if (flags.warmup !== undefined) parts.push('--warmup', String(flags.warmup));
  return parts.join(' ');
}

/**
 * Judges each run against its target. The 192-partition run is judged against the 6-partition
 * run of the same record size and records in flight (`produce 100 B, ≤ 1,000 in flight`).
 */
export function judge(runs: Array<{ name: string; command: string; target: string; result: BenchResult }>): JudgedRun[] {
  const sixPartitions = runs.find((run) => run.result.mode === 'produce' && run.result.partitions !== 192 && run.result.sizeBytes === 100 && run.result.maxInFlight === 1_000);
  return runs.map((run) => {
    const r = run.result;
    const rate = `${formatRate(r.recordsPerSecond)} records/s`;
    switch (run.result.mode) {
      case 'latency': {
        const ack = r.ackLatencyMs!;
        return { ...run, figure: `p50 ${formatLatencyMs(ack.p50)}, p99 ${formatLatencyMs(ack.p99)}`, met: ack.p50 <= 0.4 && ack.p99 <= 1.2 };
      }
      case 'e2e':
        return { ...run, figure: `p99 ${formatLatencyMs(r.e2eLatencyMs!.p99)}`, met: r.e2eLatencyMs!.p99 <= 4.5 };
      case 'consume':
        return { ...run, figure: rate, met: r.recordsPerSecond >= 300_000 };
      case 'produce': {
        if (r.partitions === 192) {
          if (sixPartitions === undefined) return { ...run, figure: rate, met: null };
          const share = r.recordsPerSecond / sixPartitions.result.recordsPerSecond;
          return { ...run, figure: `${rate} (${Math.round(share * 100)} %)`, met: share >= 0.8 };
        }
        const least = r.sizeBytes === 1024 ? 60_000 : r.maxInFlight > 1_000 ? 250_000 : 120_000;
        return { ...run, figure: rate, met: r.recordsPerSecond >= least };
      }
    }
  });
}

export function judgeOpenFiles(before: OpenFilesSample[], after: OpenFilesSample[]): OpenFiles {
  const brokers = after.map((end) => ({ process: end.process, before: before.find((start) => start.process === end.process)?.openFiles ?? null, after: end.openFiles }));
  const readable = brokers.filter((b): b is { process: string; before: number; after: number } => b.before !== null && b.after !== null);
  return {
    target: 'independent of the partition count',
    brokers,
    met: readable.length === 0 ? null : readable.every((b) => b.after - b.before <= OPEN_FILES_SLACK),
  };
}

/** Deletes the consumer groups the runs made on `topics` (e2e and consume make one each), then the topics. */
async function deleteTopics(runtime: Runtime, topics: string[]): Promise<void> {
  const admin = runtime.client().admin;
  const warn = (what: string, error: unknown) => runtime.err(`targets: could not delete ${what}: ${error instanceof Error ? error.message : String(error)}`);
  try {
    for (const group of await admin.listGroups()) {
      if (!topics.includes(group.topic)) continue;
      await admin.deleteGroup(group.group).catch((error: unknown) => warn(`group ${group.group}`, error));
    }
  } catch (error) {
    warn('the groups of the runs', error);
  }
  for (const topic of topics) await admin.deleteTopic(topic).catch((error: unknown) => warn(`topic ${topic}`, error));
}

function cpuText(result: BenchResult): string {
  const micros = (name: (process: string) => boolean) =>
    result.cpu.filter((use) => name(use.process) && use.microsPerRecord !== null).map((use) => use.microsPerRecord!);
  const range = (values: number[]) => {
    if (values.length === 0) return '-';
    const low = Math.min(...values);
    const high = Math.max(...values);
    return low === high || high - low < 0.05 ? low.toFixed(1) : `${low.toFixed(1)}–${high.toFixed(1)}`;
  };
  return `${range(micros((p) => p.startsWith('broker-')))} / ${range(micros((p) => p === 'bench'))} µs`;
}

export function renderTargets(report: TargetsReport): string {
  const rows = [
    ...report.runs.map((run) => ({ run: run.name, target: run.target, figure: run.figure, met: run.met, cpu: cpuText(run.result) })),
    {
      run: 'open files per broker',
      target: report.openFiles.target,
      figure: report.openFiles.brokers.map((b) => `${b.before ?? '?'} → ${b.after ?? '?'}`).join(', ') || 'not readable',
      met: report.openFiles.met,
      cpu: '',
    },
  ];
  const table = renderTable(
    [
      { header: 'run', value: (row: (typeof rows)[number]) => row.run },
      { header: 'target', value: (row) => row.target },
      { header: 'result', value: (row) => row.figure },
      { header: 'met', value: (row) => (row.met === null ? '?' : row.met) },
      { header: 'cpu per record, brokers / bench', value: (row) => row.cpu },
    ],
    rows,
  );
  const commands = report.runs.map((run) => `  ${run.command}`).join('\n');
  const met = report.runs.filter((run) => run.met === true).length + (report.openFiles.met === true ? 1 : 0);
  return (
    table +
    '\n' +
    renderFields([
      ['targets met', `${formatCount(met)} of ${formatCount(report.runs.length + 1)}${report.scale === 1 ? '' : ` (record counts × ${report.scale}: not the documented runs)`}`],
      ...(report.floor === undefined
        ? []
        : ([
            [
              'floor, no tessera code',
              `replicated write p50 ${formatLatencyMs(report.floor.replicatedWriteMs.p50)}, p99 ${formatLatencyMs(report.floor.replicatedWriteMs.p99)}; fdatasync p50 ${formatLatencyMs(report.floor.fdatasyncMs.p50)} (in ${report.floor.dir})`,
            ],
          ] satisfies Array<[string, unknown]>)),
      ['load average', `${report.loadAverage.before.toFixed(2)} → ${report.loadAverage.after.toFixed(2)} (${report.loadAverage.cpus} CPUs)`],
    ]) +
    `runs (open files: each broker's process_open_fds before → after the 192-partition run, met when none grew by more than ${OPEN_FILES_SLACK}):\n${commands}\n`
  );
}

/** Refuses a prefix that would not make valid topic names. */
export function checkTopicPrefix(prefix: string): void {
  const longest = Math.max(...STEPS.map((step) => step.topicSuffix.length));
  if (!TOPIC_NAME_PATTERN.test(`${prefix}-${'x'.repeat(longest)}`)) {
    throw new CliError(`--topic-prefix ${JSON.stringify(prefix)}: topic names take letters, digits, '.', '_' and '-', at most 200 characters`, { exitCode: 2 });
  }
}
