/** `tessera cluster status|events` and `tessera brokers list`. */
import type { Command } from 'commander';
import type { BrokerStatus, PartitionRef } from '@tessera/protocol';
import { integer } from '../options.js';
import { type Column, cellText, renderFields, renderTable } from '../output/table.js';
import { jsonLine } from '../output/write.js';
import type { Runtime } from '../runtime.js';
import { jsonOption } from './common.js';

export function registerCluster(program: Command, runtime: Runtime): void {
  const cluster = program.command('cluster').description('cluster health and event log');

  cluster
    .command('status')
    .description('brokers, partition counts, under-replicated and offline partitions')
    .addOption(jsonOption())
    .action(async (options: { json?: boolean }) => {
      const status = await runtime.client().admin.clusterStatus();
      if (options.json) return runtime.out(jsonLine(status));
      runtime.out(brokerTable(status.brokers) + '\n');
      runtime.out(
        renderFields([
          ['topics', status.topics],
          ['partitions', status.partitions],
          ['under-replicated', `${status.underReplicated}${refList(status.underReplicatedPartitions)}`],
          ['offline', `${status.offline}${refList(status.offlinePartitions)}`],
        ]),
      );
    });

  cluster
    .command('events')
    .description('the coordinator event log: failovers, ISR changes, rebalance moves')
    .option('-n, --limit <n>', 'most recent events to show', integer(1, 100_000), 50)
    .addOption(jsonOption())
    .action(async (options: { limit: number; json?: boolean }) => {
      const answer: unknown = await runtime.client().admin.clusterEvents(options.limit);
      const events = eventsOf(answer);
      if (options.json) return runtime.out(jsonLine({ events }));
      if (events.length === 0) return runtime.err('no events');
      runtime.out(events.map(formatEvent).join('\n') + '\n');
    });

  const brokers = program.command('brokers').description('brokers of the cluster');
  brokers
    .command('list')
    .alias('ls')
    .description('every broker: address, liveness, primaries and replicas it holds')
    .addOption(jsonOption())
    .action(async (options: { json?: boolean }) => {
      const status = await runtime.client().admin.clusterStatus();
      if (options.json) return runtime.out(jsonLine({ brokers: status.brokers }));
      runtime.out(brokerTable(status.brokers));
    });
}

export function brokerTable(brokers: readonly BrokerStatus[]): string {
  // The internal URL (coordinator and peers) is shown only where it differs from the client one.
  const internal: Array<Column<BrokerStatus>> = brokers.some((b) => b.internalUrl !== undefined && b.internalUrl !== b.url)
    ? [{ header: 'internal url', value: (b) => b.internalUrl }]
    : [];
  return renderTable(
    [
      { header: 'id', value: (b) => b.id },
      { header: 'url', value: (b) => b.url },
      ...internal,
      { header: 'alive', value: (b) => b.alive },
      { header: 'primaries', value: (b) => b.primaries },
      { header: 'replicas', value: (b) => b.replicas },
      {
        header: 'last heartbeat',
        value: (b) => (b.lastHeartbeatAgoMs === null || b.lastHeartbeatAgoMs === undefined ? null : `${b.lastHeartbeatAgoMs} ms ago`),
        align: 'right',
      },
    ],
    [...brokers].sort((a, b) => a.id - b.id),
  );
}

function refList(refs: readonly PartitionRef[] | undefined): string {
  if (!refs || refs.length === 0) return '';
  const shown = refs.slice(0, 20).map((r) => `${r.topic}/${r.partition}`);
  return ` (${shown.join(', ')}${refs.length > shown.length ? `, … ${refs.length - shown.length} more` : ''})`;
}

/** The event list, whether the client answers the array or a `{events: [...]}` body. */
export function eventsOf(answer: unknown): Array<Record<string, unknown>> {
  const list = Array.isArray(answer) ? answer : (answer as { events?: unknown } | null)?.events;
  return Array.isArray(list) ? (list as Array<Record<string, unknown>>) : [];
}

const TIME_FIELDS = ['timeMs', 'timestamp', 'time', 'at', 'ts'];
const KIND_FIELDS = ['type', 'kind', 'event'];

/** `2026-11-22T07:01:02.345Z  failover  topic=orders partition=3 epoch=4 ...`. */
export function formatEvent(event: Record<string, unknown>): string {
  const timeField = TIME_FIELDS.find((f) => event[f] !== undefined);
  const kindField = KIND_FIELDS.find((f) => event[f] !== undefined);
  const parts: string[] = [];
  if (timeField !== undefined) {
    const value = event[timeField];
    parts.push(typeof value === 'number' ? new Date(value).toISOString() : String(value));
  }
  if (kindField !== undefined) parts.push(String(event[kindField]));
  const message = event.message;
  if (typeof message === 'string') parts.push(message);
  for (const [name, value] of Object.entries(event)) {
    if (name === timeField || name === kindField || name === 'message' || name === 'id') continue;
    if (value === null || value === undefined) continue;
    parts.push(`${name}=${cellText(value)}`);
  }
  return parts.join('  ');
}
