/** `tessera groups list|describe|reset-offsets|delete`. */
import type { Command } from 'commander';
import { MAX_PARTITIONS, type GroupDescription, type ResetOffsetsResponse, type ResetTarget } from '@tessera/protocol';
import { parseTime } from '../consume/position.js';
import { CliError } from '../errors.js';
import { integer, nonNegativeInt } from '../options.js';
import { renderFields, renderTable } from '../output/table.js';
import { jsonLine } from '../output/write.js';
import type { Runtime } from '../runtime.js';
import { jsonOption } from './common.js';

export interface PartitionLag {
  partition: number;
  committed: number | null;
  highWatermark: number | null;
  lag: number | null;
}

export function registerGroups(program: Command, runtime: Runtime): void {
  const groups = program.command('groups').description('consumer groups: members, offsets and lag');

  groups
    .command('list')
    .alias('ls')
    .description('list consumer groups')
    .addOption(jsonOption())
    .action(async (options: { json?: boolean }) => {
      const answer: unknown = await runtime.client().admin.listGroups();
      const list = (Array.isArray(answer) ? answer : ((answer as { groups?: unknown[] }).groups ?? [])) as Array<{
        group: string;
        topic: string;
        generation: number;
        members: number;
        emptySinceMs?: number | null;
      }>;
      const rows = [...list].sort((a, b) => a.group.localeCompare(b.group));
      if (options.json) return runtime.out(jsonLine({ groups: rows }));
      if (rows.length === 0) return runtime.err('no groups');
      runtime.out(
        renderTable(
          [
            { header: 'group', value: (g) => g.group },
            { header: 'topic', value: (g) => g.topic },
            { header: 'generation', value: (g) => g.generation },
            { header: 'members', value: (g) => g.members },
            // An empty group is deleted with its offsets once empty for the coordinator's group retention.
            { header: 'empty since', value: (g) => (g.emptySinceMs == null ? '-' : new Date(g.emptySinceMs).toISOString()) },
          ],
          rows,
        ),
      );
    });

  groups
    .command('describe')
    .description('members of a group and, per partition, its owner, committed offset, high watermark and lag')
    .argument('<group>', 'group id')
    .addOption(jsonOption())
    .action(async (group: string, options: { json?: boolean }) => {
      runtime.errorContext.group = group;
      const description = await runtime.client().admin.describeGroup(group);
      runtime.errorContext.topic = description.topic;
      const lag = (await runtime.client().admin.groupLag(group)) as PartitionLag[];
      const view = groupView(description, lag);
      if (options.json) return runtime.out(jsonLine(view));
      runtime.out(
        renderFields([
          ['group', view.group],
          ['topic', view.topic],
          ['generation', view.generation],
          ['members', view.members.length],
          ['total lag', view.totalLag],
        ]) + '\n',
      );
      if (view.members.length > 0) {
        runtime.out(
          renderTable(
            [
              { header: 'member', value: (m) => m.memberId },
              { header: 'client', value: (m) => m.clientId },
              { header: 'partitions', value: (m) => m.partitions },
            ],
            view.members,
          ) + '\n',
        );
      }
      runtime.out(
        renderTable(
          [
            { header: 'partition', value: (p) => p.partition },
            { header: 'member', value: (p) => p.member },
            { header: 'committed', value: (p) => p.committed, align: 'right' },
            { header: 'hw', value: (p) => p.highWatermark, align: 'right' },
            { header: 'lag', value: (p) => p.lag, align: 'right' },
          ],
          view.partitions,
        ),
      );
    });

  groups
    .command('reset-offsets')
    .description(
      "set a group's committed offsets on a topic (like kafka-consumer-groups --reset-offsets); new offsets are clamped to " +
        "[log start, high watermark]; refused while the group has live members; the group's next member starts there",
    )
    .argument('<group>', 'group id (created, empty, when it does not exist)')
    .requiredOption('-t, --topic <topic>', "the group's topic")
    .option('-p, --partition <n>', 'only this partition (default: every partition)', integer(0, MAX_PARTITIONS - 1))
    .option('--to-earliest', 'the oldest retained record')
    .option('--to-latest', 'the high watermark (skip everything there is)')
    .option('--to-datetime <time>', 'the first record at or after this time (ISO 8601, UTC when no zone; or epoch ms)', parseTime)
    .option('--to-offset <n>', 'this offset', nonNegativeInt)
    .option('--shift-by <n>', 'the current offset plus n (negative: back); from the log start when none', integer(-Number.MAX_SAFE_INTEGER))
    .option('--dry-run', 'only show the new offsets')
    .option('--execute', 'store the new offsets')
    .addOption(jsonOption())
    .action(async (group: string, flags: ResetFlags) => {
      runtime.errorContext.group = group;
      runtime.errorContext.topic = flags.topic;
      const target = resetTargetOf(flags);
      const answer = await runtime.client().admin.resetGroupOffsets(group, {
        topic: flags.topic,
        target,
        execute: flags.execute === true,
        ...(flags.partition === undefined ? {} : { partitions: [flags.partition] }),
      });
      if (flags.json) runtime.out(jsonLine(answer));
      else runtime.out(renderReset(answer));
      runtime.err(
        answer.executed
          ? `reset group "${group}" on "${flags.topic}": ${answer.partitions.length} partition(s) stored at generation ${answer.generation}`
          : `dry run: nothing stored; run again with --execute to store these offsets`,
      );
    });

  groups
    .command('delete')
    .description('delete a group and its committed offsets; refused while it has live members')
    .argument('<group>', 'group id')
    .action(async (group: string) => {
      runtime.errorContext.group = group;
      await runtime.client().admin.deleteGroup(group);
      runtime.err(`deleted group "${group}"`);
    });
}

/** The flags of `groups reset-offsets`, as commander gives them. */
interface ResetFlags {
  topic: string;
  partition?: number;
  toEarliest?: boolean;
  toLatest?: boolean;
  toDatetime?: number;
  toOffset?: number;
  shiftBy?: number;
  dryRun?: boolean;
  execute?: boolean;
  json?: boolean;
}

/** The one reset mode the flags name; a usage error (exit 2) for none or several. */
function resetTargetOf(flags: ResetFlags): ResetTarget {
  const targets: ResetTarget[] = [];
  if (flags.toEarliest === true) targets.push({ to: 'earliest' });
  if (flags.toLatest === true) targets.push({ to: 'latest' });
  if (flags.toDatetime !== undefined) targets.push({ to: 'timestamp', timestamp: flags.toDatetime });
  if (flags.toOffset !== undefined) targets.push({ to: 'offset', offset: flags.toOffset });
  if (flags.shiftBy !== undefined) targets.push({ to: 'shift', by: flags.shiftBy });
  if (targets.length !== 1) {
    throw new CliError('give exactly one of --to-earliest, --to-latest, --to-datetime, --to-offset, --shift-by', { exitCode: 2 });
  }
  if (flags.dryRun === flags.execute) throw new CliError('give exactly one of --dry-run (show the new offsets) and --execute (store them)', { exitCode: 2 });
  return targets[0]!;
}

/** The reset as a table: partition, the group's offset before, the new one. */
function renderReset(answer: ResetOffsetsResponse): string {
  return renderTable(
    [
      { header: 'partition', value: (p) => p.partition },
      { header: 'current offset', value: (p) => p.current, align: 'right' },
      { header: 'new offset', value: (p) => p.target, align: 'right' },
    ],
    answer.partitions,
  );
}

export interface GroupView {
  group: string;
  topic: string;
  generation: number;
  members: GroupDescription['members'];
  partitions: Array<PartitionLag & { member: string | null }>;
  totalLag: number;
}

/** Joins the group description (who owns what) with the lag report (how far each partition is). */
export function groupView(description: GroupDescription, lag: readonly PartitionLag[]): GroupView {
  const ownerOf = new Map<number, string>();
  for (const member of description.members) for (const p of member.partitions) ownerOf.set(p, member.memberId);
  const partitions = [...lag]
    .sort((a, b) => a.partition - b.partition)
    .map((p) => ({ ...p, member: ownerOf.get(p.partition) ?? null }));
  return {
    group: description.group,
    topic: description.topic,
    generation: description.generation,
    members: description.members,
    partitions,
    totalLag: partitions.reduce((sum, p) => sum + (p.lag ?? 0), 0),
  };
}
