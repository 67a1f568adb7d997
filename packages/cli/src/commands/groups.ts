/** `tessera groups list|describe`. */
import type { Command } from 'commander';
import type { GroupDescription } from '@tessera/protocol';
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
