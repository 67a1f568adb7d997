/** `tessera cluster status|events` and `tessera brokers list|drain|undrain`. */
import type { Command } from 'commander';
import { sleep, type BrokerStatus, type ClusterEvent, type PartitionRef } from '@tessera/protocol';
import { CliError } from '../errors.js';
import { integer } from '../options.js';
import { plural } from '../output/format.js';
import { Progress } from '../output/progress.js';
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
      const events = await runtime.client().admin.clusterEvents(options.limit);
      if (options.json) return runtime.out(jsonLine({ events }));
      if (events.length === 0) return runtime.err('no events');
      runtime.out(events.map(formatEvent).join('\n') + '\n');
    });

  const brokers = program.command('brokers').description('brokers of the cluster');
  brokers
    .command('list')
    .alias('ls')
    .description('every broker: address, state (alive, dead, draining), primaries and replicas it holds')
    .addOption(jsonOption())
    .action(async (options: { json?: boolean }) => {
      const list = await runtime.client().admin.listBrokers();
      if (options.json) return runtime.out(jsonLine({ brokers: list }));
      runtime.out(brokerTable(list));
    });

  brokers
    .command('drain')
    .description('move every replica off a broker (so it can be removed); waits until it holds nothing')
    .argument('<id>', 'broker id', integer(1, 1_000_000))
    .option('--no-wait', 'return once the broker is marked draining')
    .action(async (id: number, options: { wait: boolean }) => {
      const admin = runtime.client().admin;
      let status = await admin.drainBroker(id);
      runtime.err(`broker ${id} draining: ${plural(status.replicas, 'replica')} (${plural(status.primaries, 'primary', 'primaries')}) to move`);
      if (options.wait) {
        const progress = new Progress({
          stream: runtime.io.stderr,
          render: () => `broker ${id}: ${plural(status.replicas, 'replica')} (${plural(status.primaries, 'primary', 'primaries')}) left`,
        });
        try {
          while (status.replicas > 0) {
            await sleep(DRAIN_POLL_MS);
            const found = (await admin.listBrokers()).find((b) => b.id === id);
            if (found === undefined) throw new CliError(`broker ${id} is not registered any more`);
            status = found;
          }
        } finally {
          progress.stop();
        }
        runtime.err(`broker ${id} drained: it holds no replica`);
      }
      runtime.out(brokerTable([status]));
    });

  brokers
    .command('undrain')
    .description('end a drain: the broker takes replicas again')
    .argument('<id>', 'broker id', integer(1, 1_000_000))
    .action(async (id: number) => {
      runtime.out(brokerTable([await runtime.client().admin.undrainBroker(id)]));
    });
}

/** How often `brokers drain` asks how much is left. */
const DRAIN_POLL_MS = 500;

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
      { header: 'alive', value: (b) => (b.draining ? `${b.alive ? 'yes' : 'no'}, draining` : b.alive) },
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

/** `2026-11-22T07:01:02.345Z  failover  topic=orders  partition=3  epoch=4 ...`. */
export function formatEvent(event: ClusterEvent): string {
  const parts = [new Date(event.timeMs).toISOString(), event.type];
  for (const [name, value] of Object.entries(event)) {
    if (name === 'id' || name === 'timeMs' || name === 'type' || value === null || value === undefined) continue;
    parts.push(`${name}=${cellText(value)}`);
  }
  return parts.join('  ');
}
