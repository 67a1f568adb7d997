/**
 * The nemesis: applies a seeded schedule of faults to a running cluster, one at a time,
 * healing each and waiting for the cluster to be fully replicated again before the next,
 * so that at most one replica of any partition is failing at a time (the scope of
 * Tessera's promise 1). Every event is one trace line, so a failing seed reads like a log
 * and replays exactly with TESSERA_FAULT_SEEDS=<seed>.
 */
import type { TesseraClient } from '@tessera/client';
import { sleep } from '@tessera/protocol';
import { type Cluster, waitFor } from './cluster.js';

export const FAULT_KINDS = [
  'kill-restart',
  'pause-resume',
  'cut-replication',
  'blackhole-replication',
  'cut-coordinator-link',
  'coordinator-restart',
  'drain-undrain',
  'join',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultStep {
  kind: FaultKind;
  /** The broker the fault hits (the coordinator for coordinator-restart, the new broker's id for join). */
  brokerId: number;
  durationMs: number;
}

/** mulberry32: a small seeded generator, so a schedule is a pure function of its seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Every fault kind once, in a seeded order, each against a seeded broker for a seeded time:
 * some shorter than the broker timeout (the ISR shrinks, nobody fails over), some longer
 * (the coordinator fails the broker over and it rejoins as a deposed primary or stale secondary).
 */
export function planSchedule(
  seed: number,
  brokerIds: number[],
  { brokerTimeoutMs, kinds = [...FAULT_KINDS] }: { brokerTimeoutMs: number; kinds?: FaultKind[] },
): FaultStep[] {
  const random = seededRandom(seed);
  const order = [...kinds];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const joining = Math.max(...brokerIds) + 1;
  return order.map((kind) => ({
    kind,
    brokerId: kind === 'join' ? joining : brokerIds[Math.floor(random() * brokerIds.length)],
    durationMs: Math.round(brokerTimeoutMs * (0.3 + random() * 1.7)),
  }));
}

export class Nemesis {
  private readonly startedMs = Date.now();
  readonly trace: string[] = [];

  constructor(
    private readonly cluster: Cluster,
    private readonly admin: TesseraClient['admin'],
    private readonly seed: number,
    private readonly topic: string,
  ) {}

  log(message: string): void {
    const line = `[seed ${this.seed} t=+${((Date.now() - this.startedMs) / 1000).toFixed(1)}s] ${message}`;
    this.trace.push(line);
    console.log(line);
  }

  /** One line with every partition's primary*, secondary, epoch and ISR, as the coordinator sees them. */
  async logMap(label: string): Promise<void> {
    try {
      const topic = await this.admin.describeTopic(this.topic);
      const parts = topic.partitions.map(
        (p) => `${p.partition}:${p.primary ?? '-'}*${p.secondary ?? '-'} e${p.epoch} isr[${p.isr.join(',')}] hw${p.highWatermark ?? '?'}`,
      );
      this.log(`${label} ${parts.join(' | ')}`);
    } catch (error) {
      this.log(`${label} (map unavailable: ${(error as Error).message})`);
    }
  }

  async apply(step: FaultStep, index: number, total: number): Promise<void> {
    if (step.kind === 'join') {
      this.log(`step ${index + 1}/${total}: join broker-${step.brokerId}`);
      await this.cluster.addBroker(step.brokerId);
      await waitFor(async () => (await this.admin.listBrokers()).find((b) => b.id === step.brokerId)?.replicas !== 0, {
        what: `replicas to move to broker-${step.brokerId}`,
        timeoutMs: 60_000,
        intervalMs: 200,
      });
      await this.waitSettled();
      await this.logMap('rebalanced:');
      return;
    }
    const broker = this.cluster.broker(step.brokerId);
    const links = this.cluster.links?.get(step.brokerId);
    const what = step.kind === 'coordinator-restart' ? 'the coordinator' : broker.name;
    this.log(`step ${index + 1}/${total}: ${step.kind} ${what} for ${step.durationMs} ms`);
    switch (step.kind) {
      case 'kill-restart':
        await broker.kill();
        await sleep(step.durationMs);
        await broker.start();
        break;
      case 'pause-resume':
        await broker.pause();
        await sleep(step.durationMs);
        await broker.resume();
        break;
      case 'cut-replication':
      case 'blackhole-replication':
        if (!links) throw new Error('link faults need a cluster started with proxies: true');
        links.inbound.set(step.kind === 'cut-replication' ? 'cut' : 'blackhole');
        await sleep(step.durationMs);
        links.inbound.set('pass');
        break;
      case 'cut-coordinator-link':
        if (!links) throw new Error('link faults need a cluster started with proxies: true');
        links.toCoordinator.set('cut');
        await sleep(step.durationMs);
        links.toCoordinator.set('pass');
        break;
      case 'coordinator-restart':
        await this.cluster.coordinator.kill();
        await sleep(step.durationMs);
        await this.cluster.coordinator.start();
        break;
      case 'drain-undrain':
        // Every replica moves off the broker under traffic, then it takes its share back.
        await this.admin.drainBroker(step.brokerId);
        await waitFor(async () => (await this.admin.listBrokers()).find((b) => b.id === step.brokerId)?.replicas === 0, {
          what: `${broker.name} to be drained`,
          timeoutMs: 90_000,
          intervalMs: 200,
        });
        await this.logMap('drained:');
        await this.admin.undrainBroker(step.brokerId);
        break;
    }
    this.log(`healed ${what}`);
    await this.waitSettled();
    await this.logMap('in sync:');
  }

  /** Waits until every broker is alive and no partition is offline or under-replicated. */
  async waitHealthy(timeoutMs = 60_000): Promise<void> {
    await waitFor(
      async () => {
        const status = await this.admin.clusterStatus();
        return status.brokers.every((b) => b.alive) && status.offline === 0 && status.underReplicated === 0;
      },
      { what: 'a fully replicated cluster', timeoutMs, intervalMs: 200 },
    );
  }

  /** Healthy, and no replica move in progress. */
  async waitSettled(timeoutMs = 90_000): Promise<void> {
    await this.waitHealthy(timeoutMs);
    await waitFor(
      async () => {
        const brokers = await this.admin.listBrokers();
        return brokers.every((b) => !b.adding) && (await this.admin.clusterStatus()).underReplicated === 0;
      },
      { what: 'replica moves to finish', timeoutMs, intervalMs: 200 },
    );
  }

  /** Undoes anything a failed step may have left: every link passes, every process runs. */
  async healAll(): Promise<void> {
    for (const links of this.cluster.links?.values() ?? []) {
      links.inbound.set('pass');
      links.toCoordinator.set('pass');
    }
    for (const service of [this.cluster.coordinator, ...this.cluster.brokers.values()]) {
      if (service.running) await service.resume().catch(() => undefined);
      else await service.start();
    }
  }
}
