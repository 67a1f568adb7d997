/** `tessera topics create|list|describe|alter|purge|delete`. */
import type { Command } from 'commander';
import { MAX_PARTITIONS, type TopicDescription } from '@tessera/protocol';
import type { Admin } from '@tessera/client';
import { CliError } from '../errors.js';
import { integer } from '../options.js';
import { plural } from '../output/format.js';
import { jsonLine } from '../output/write.js';
import { renderFields, renderTable } from '../output/table.js';
import type { Runtime } from '../runtime.js';
import { jsonOption } from './common.js';

export function registerTopics(program: Command, runtime: Runtime): void {
  const topics = program.command('topics').description('create, list, describe and delete topics');

  topics
    .command('create')
    .description('create a topic')
    .argument('<name>', 'topic name ([A-Za-z0-9._-], up to 200 characters)')
    .requiredOption('-p, --partitions <n>', `number of partitions (1..${MAX_PARTITIONS})`, integer(1, MAX_PARTITIONS))
    .option('-r, --replication-factor <n>', 'replicas per partition (1 or 2)', integer(1, 2), 2)
    .option('--min-insync-replicas <n>', 'replicas that must have a record before it is acknowledged (1 or 2)', integer(1, 2))
    .addOption(jsonOption())
    .action(async (name: string, options: { partitions: number; replicationFactor: number; minInsyncReplicas?: number; json?: boolean }) => {
      runtime.errorContext.topic = name;
      if (options.minInsyncReplicas !== undefined && options.minInsyncReplicas > options.replicationFactor) {
        throw new CliError(
          `--min-insync-replicas ${options.minInsyncReplicas} cannot exceed --replication-factor ${options.replicationFactor}`,
          { exitCode: 2 },
        );
      }
      const config = options.minInsyncReplicas === undefined ? {} : { minInsyncReplicas: options.minInsyncReplicas };
      const created = await runtime.client().admin.createTopic({
        name,
        partitions: options.partitions,
        replicationFactor: options.replicationFactor,
        config,
      });
      if (options.json) return runtime.out(jsonLine(created));
      runtime.out(
        `created topic "${created.name}" (${plural(created.partitions.length, 'partition')}, replication factor ${created.replicationFactor})\n`,
      );
    });

  topics
    .command('list')
    .alias('ls')
    .description('list topics')
    .addOption(jsonOption())
    .action(async (options: { json?: boolean }) => {
      const list = await runtime.client().admin.listTopics();
      const rows = [...toTopicRows(list)].sort((a, b) => a.name.localeCompare(b.name));
      if (options.json) return runtime.out(jsonLine({ topics: rows }));
      if (rows.length === 0) return runtime.err('no topics');
      runtime.out(
        renderTable(
          [
            { header: 'name', value: (t) => t.name },
            { header: 'partitions', value: (t) => t.partitions },
            { header: 'replication', value: (t) => t.replicationFactor },
          ],
          rows,
        ),
      );
    });

  topics
    .command('describe')
    .description('show where every partition of a topic lives, where its log starts and how far it is written')
    .argument('<name>', 'topic name')
    .addOption(jsonOption())
    .action(async (name: string, options: { json?: boolean }) => {
      runtime.errorContext.topic = name;
      const admin = runtime.client().admin;
      const topic = await admin.describeTopic(name);
      const starts = await logStarts(admin, topic);
      if (options.json) {
        return runtime.out(
          jsonLine({
            name: topic.name,
            replicationFactor: topic.replicationFactor,
            config: topic.config,
            partitions: topic.partitions.map((p) => ({
              partition: p.partition,
              primary: p.primary,
              secondary: p.secondary,
              epoch: p.epoch,
              isr: p.isr,
              logStartOffset: starts.get(p.partition) ?? null,
              highWatermark: p.highWatermark,
              logEndOffset: p.logEndOffset,
              status: p.status,
            })),
          }),
        );
      }
      runtime.out(
        renderFields([
          ['topic', topic.name],
          ['partitions', topic.partitions.length],
          ['replication factor', topic.replicationFactor],
          ['min in-sync replicas', topic.config.minInsyncReplicas],
          ['retention ms', topic.config.retentionMs < 0 ? 'unlimited' : topic.config.retentionMs],
          ['retention bytes', topic.config.retentionBytes < 0 ? 'unlimited' : topic.config.retentionBytes],
        ]) + '\n',
      );
      runtime.out(
        renderTable(
          [
            { header: 'partition', value: (p) => p.partition },
            { header: 'primary', value: (p) => p.primary },
            { header: 'secondary', value: (p) => p.secondary },
            { header: 'epoch', value: (p) => p.epoch },
            { header: 'isr', value: (p) => p.isr },
            { header: 'start', value: (p) => starts.get(p.partition), align: 'right' },
            { header: 'hw', value: (p) => p.highWatermark, align: 'right' },
            { header: 'leo', value: (p) => p.logEndOffset, align: 'right' },
            { header: 'status', value: (p) => p.status },
          ],
          [...topic.partitions].sort((a, b) => a.partition - b.partition),
        ),
      );
    });

  topics
    .command('alter')
    .description("change a topic's retention (-1: no limit); the brokers apply it in the background")
    .argument('<name>', 'topic name')
    .option('--retention-ms <ms>', 'delete batches whose newest record is older than this', integer(-1))
    .option('--retention-bytes <n>', 'keep at most about this many bytes per partition (oldest whole batches go first)', integer(-1))
    .addOption(jsonOption())
    .action(async (name: string, options: { retentionMs?: number; retentionBytes?: number; json?: boolean }) => {
      runtime.errorContext.topic = name;
      if (options.retentionMs === undefined && options.retentionBytes === undefined) {
        throw new CliError('name a setting to change: --retention-ms and/or --retention-bytes');
      }
      const config = {
        ...(options.retentionMs === undefined ? {} : { retentionMs: options.retentionMs }),
        ...(options.retentionBytes === undefined ? {} : { retentionBytes: options.retentionBytes }),
      };
      const topic = await runtime.client().admin.alterTopic(name, config);
      if (options.json) return runtime.out(jsonLine({ name: topic.name, config: topic.config }));
      runtime.out(`altered topic "${name}": retentionMs ${topic.config.retentionMs}, retentionBytes ${topic.config.retentionBytes}\n`);
    });

  topics
    .command('purge')
    .description('delete every record of a topic; the topic, its offset numbering and its groups stay')
    .argument('<name>', 'topic name')
    .addOption(jsonOption())
    .action(async (name: string, options: { json?: boolean }) => {
      runtime.errorContext.topic = name;
      const purged = await runtime.client().admin.purgeTopic(name);
      if (options.json) return runtime.out(jsonLine(purged));
      const starts = purged.partitions.map((p) => `${p.partition}:${p.logStartOffset}`).join(' ');
      runtime.out(`purged topic "${name}": partitions start at ${starts}\n`);
    });

  topics
    .command('delete')
    .alias('rm')
    .description('delete a topic and every record in it')
    .argument('<name>', 'topic name')
    .action(async (name: string) => {
      runtime.errorContext.topic = name;
      await runtime.client().admin.deleteTopic(name);
      runtime.out(`deleted topic "${name}"\n`);
    });
}

interface TopicRow {
  name: string;
  partitions: number;
  replicationFactor: number;
}

/** `listTopics()` answers either the wire body `{topics: [...]}` or the array itself. */
function toTopicRows(list: unknown): TopicRow[] {
  const topics = Array.isArray(list) ? list : ((list as { topics?: unknown[] } | null)?.topics ?? []);
  return topics.map((t) => {
    const topic = t as { name: string; partitions: number | unknown[]; replicationFactor: number };
    return {
      name: topic.name,
      partitions: Array.isArray(topic.partitions) ? topic.partitions.length : topic.partitions,
      replicationFactor: topic.replicationFactor,
    };
  });
}

/** How long `topics describe` waits for the primaries' log starts before it prints without them. */
const LOG_START_WAIT_MS = 3_000;

/**
 * The log start of each partition with a primary (the oldest offset still stored: retention
 * and purges move it), asked of the primaries, one call each. The coordinator does not know it
 * (heartbeats report the HW and LEO). A primary that fails or does not answer within
 * LOG_START_WAIT_MS leaves its partitions without one: the rest of the description still prints.
 */
async function logStarts(admin: Admin, topic: TopicDescription): Promise<Map<number, number>> {
  const byPrimary = new Map<number, number[]>();
  for (const p of topic.partitions) {
    if (p.primary === null || p.status === 'offline') continue;
    const list = byPrimary.get(p.primary);
    if (list === undefined) byPrimary.set(p.primary, [p.partition]);
    else list.push(p.partition);
  }
  const starts = new Map<number, number>();
  await Promise.all(
    [...byPrimary.values()].map(async (partitions) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        const found = await Promise.race([
          admin.listOffsets(topic.name, 'earliest', partitions),
          new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(new Error('no answer')), LOG_START_WAIT_MS))),
        ]);
        for (const entry of found) starts.set(entry.partition, entry.logStartOffset);
      } catch {
        // Shown as "-": the primary is down, failing over, or slow.
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  return starts;
}
