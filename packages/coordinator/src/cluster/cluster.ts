/**
 * The cluster map and its changes: brokers and their liveness, topics and where their
 * partitions live, failover, ISR changes and the event log. Every change is written to
 * SQLite with the metadata version in one transaction before anyone is answered.
 */
import {
  TesseraError,
  type BrokerStatus,
  type ClusterStatusResponse,
  type IsrChangeRequest,
  type MetadataResponse,
  type PartitionAssignment,
  type PartitionStatus,
  type ReplicaReport,
  type TopicDescription,
  type TopicListResponse,
  type TopicMetadata,
} from '@tessera/protocol';
import type { Logger } from '@tessera/service';
import type { BrokerState, ClusterEvent, PartitionState, TopicState } from '../model.js';
import type { CoordinatorCounters } from '../metrics/metrics.js';
import type { LoadedState, Store } from '../store/store.js';
import { brokerLoad, leastLoaded, type BrokerLoad } from '../topics/assignment.js';
import { reassign, type ReassignKind } from './failover.js';

export interface ClusterOptions {
  store: Store;
  logger: Logger;
  brokerTimeoutMs: number;
  /** Monotonic milliseconds, for liveness. */
  nowMs(): number;
  counters: CoordinatorCounters;
  /** Called after a change brokers should hear about soon (failover, broker up/down); not for topic create/delete. */
  onChange(): void;
}

const EVENT_OF_KIND: Record<ReassignKind, string> = {
  failover: 'failover',
  offline: 'partition_offline',
  recovered: 'partition_recovered',
  'secondary-assigned': 'secondary_assigned',
};

export class Cluster {
  readonly brokers = new Map<number, BrokerState>();
  readonly topics = new Map<string, TopicState>();
  /** Latest replica reports per broker, keyed by `topic/partition`; memory only. */
  private readonly reports = new Map<number, Map<string, ReplicaReport>>();
  private versionValue: number;

  constructor(
    private readonly options: ClusterOptions,
    loaded: LoadedState,
  ) {
    this.versionValue = loaded.version;
    const now = options.nowMs();
    for (const b of loaded.brokers) {
      // After a restart every broker gets a full brokerTimeoutMs of grace before it can be declared dead.
      this.brokers.set(b.id, { ...b, lastHeartbeatMs: now, heardSinceStart: false });
    }
    for (const t of loaded.topics) this.topics.set(t.name, t);
  }

  get version(): number {
    return this.versionValue;
  }

  // ---- changes -----------------------------------------------------------------------

  /** Applies `fn` and the version bump in one transaction. */
  private commit(fn: () => void): void {
    this.options.store.transaction(() => {
      fn();
      this.versionValue++;
      this.options.store.saveVersion(this.versionValue);
    });
  }

  private event(type: string, details: Record<string, unknown>): void {
    this.options.store.appendEvent(Date.now(), type, details);
    this.options.logger.info({ event: type, ...details }, type.replaceAll('_', ' '));
  }

  /** A register or heartbeat: adds an unknown broker, updates changed urls, revives a dead one. */
  brokerSeen(id: number, url: string, internalUrl: string = url, replicas?: ReplicaReport[]): void {
    const now = this.options.nowMs();
    let broker = this.brokers.get(id);
    let revived = false;
    if (!broker) {
      const added: BrokerState = { id, url, internalUrl, alive: true, lastHeartbeatMs: now, heardSinceStart: true };
      broker = added;
      this.brokers.set(id, added);
      revived = true;
      this.commit(() => {
        this.options.store.saveBroker(added);
        this.event('broker_registered', { brokerId: id, url });
      });
    } else {
      const b = broker;
      b.lastHeartbeatMs = now;
      b.heardSinceStart = true;
      if (b.url !== url || b.internalUrl !== internalUrl || !b.alive) {
        revived = !b.alive;
        const moved = b.url !== url || b.internalUrl !== internalUrl;
        const previous = { url: b.url, internalUrl: b.internalUrl };
        b.url = url;
        b.internalUrl = internalUrl;
        b.alive = true;
        this.commit(() => {
          this.options.store.saveBroker(b);
          if (revived) this.event('broker_up', { brokerId: id, url });
          if (moved) this.event('broker_url_changed', { brokerId: id, url, internalUrl, previous });
        });
        // Replicas of this broker's partitions must learn where it moved.
        if (moved) this.options.onChange();
      }
    }
    if (replicas) this.reports.set(id, new Map(replicas.map((r) => [`${r.topic}/${r.partition}`, r])));
    if (revived) this.reconcile();
  }

  /**
   * Restarts every broker's silence clock. Used when the coordinator itself was not running
   * for a while (a stalled event loop, a paused process): the brokers' silence was ours.
   */
  extendGrace(): void {
    const now = this.options.nowMs();
    for (const b of this.brokers.values()) b.lastHeartbeatMs = Math.max(b.lastHeartbeatMs, now);
  }

  /** Declares dead every broker silent for brokerTimeoutMs, then fails over what they led. */
  checkLiveness(): void {
    const now = this.options.nowMs();
    const dead = [...this.brokers.values()].filter((b) => b.alive && now - b.lastHeartbeatMs > this.options.brokerTimeoutMs);
    if (dead.length > 0) {
      this.commit(() => {
        for (const b of dead) {
          b.alive = false;
          this.options.store.saveBroker(b);
          this.event('broker_down', { brokerId: b.id, url: b.url, silentMs: Math.round(now - b.lastHeartbeatMs) });
        }
      });
      for (const b of dead) this.reports.delete(b.id);
    }
    this.reconcile();
    if (dead.length > 0) this.options.onChange();
  }

  /**
   * Brings every partition in line with broker liveness: promotes in-sync secondaries of dead
   * primaries, takes partitions without a live ISR member offline, brings them back when one
   * returns, and gives rf=2 partitions without a secondary a live one.
   */
  reconcile(): void {
    const liveIds = this.liveBrokerIds();
    const load = brokerLoad(this.topics.values(), liveIds);
    const isAlive = (id: number) => this.brokers.get(id)?.alive === true;
    const pick = (exclude: readonly number[]) =>
      leastLoaded(
        liveIds.filter((id) => !exclude.includes(id)),
        load,
      );
    const changes: Array<{ topic: string; before: PartitionState; kind: ReassignKind }> = [];
    for (const topic of this.topics.values()) {
      topic.partitions.forEach((p, index) => {
        const r = reassign(p, topic.replicationFactor, isAlive, pick);
        if (!r) return;
        adjustLoad(load, p, -1);
        adjustLoad(load, r.next, +1);
        topic.partitions[index] = r.next;
        changes.push({ topic: topic.name, before: p, kind: r.kind });
      });
    }
    if (changes.length === 0) return;
    this.commit(() => {
      for (const c of changes) {
        const p = this.topics.get(c.topic)!.partitions[c.before.partition];
        this.options.store.savePartition(c.topic, p);
        this.event(EVENT_OF_KIND[c.kind], {
          topic: c.topic,
          partition: p.partition,
          epoch: p.epoch,
          primary: p.primary,
          secondary: p.secondary,
          isr: p.isr,
          previousPrimary: c.before.primary,
          previousSecondary: c.before.secondary,
        });
      }
    });
    this.options.counters.failovers.inc(changes.filter((c) => c.kind === 'failover').length);
    this.options.onChange();
  }

  addTopic(topic: TopicState): void {
    if (this.topics.has(topic.name)) throw new Error(`addTopic: ${topic.name} exists`);
    this.commit(() => {
      this.options.store.insertTopic(topic);
      this.event('topic_created', {
        topic: topic.name,
        partitions: topic.partitions.length,
        replicationFactor: topic.replicationFactor,
      });
    });
    this.topics.set(topic.name, topic);
  }

  removeTopic(name: string): void {
    if (!this.topics.has(name)) throw new TesseraError('TOPIC_NOT_FOUND', `topic ${name} does not exist`);
    this.commit(() => {
      this.options.store.deleteTopic(name);
      this.event('topic_deleted', { topic: name });
    });
    this.topics.delete(name);
  }

  /**
   * A primary asks to shrink its ISR to itself or expand it back to both replicas. Refused when
   * its epoch is not current (it may have been deposed) or it is not the primary.
   */
  changeIsr(request: IsrChangeRequest): PartitionAssignment {
    const p = this.partition(request.topic, request.partition);
    if (request.epoch !== p.epoch) {
      throw new TesseraError('STALE_EPOCH', `partition ${request.topic}/${request.partition} is at epoch ${p.epoch}, not ${request.epoch}`, {
        epoch: p.epoch,
      });
    }
    if (request.brokerId !== p.primary) {
      throw new TesseraError('NOT_PRIMARY', `broker ${request.brokerId} is not the primary of ${request.topic}/${request.partition}`, {
        primary: this.clientRef(p.primary),
      });
    }
    const asked = [...new Set(request.isr)];
    const isrSelf = asked.length === 1 && asked[0] === p.primary;
    const isrBoth = asked.length === 2 && p.secondary !== null && asked.includes(p.primary) && asked.includes(p.secondary);
    if (!isrSelf && !isrBoth) {
      throw new TesseraError(
        'INVALID_REQUEST',
        `isr must be [${p.primary}]${p.secondary === null ? '' : ` or [${p.primary},${p.secondary}]`}, got [${request.isr.join(',')}]`,
      );
    }
    const isr = isrSelf ? [p.primary] : [p.primary, p.secondary!];
    if (isr.join(',') !== p.isr.join(',')) {
      const previousIsr = p.isr;
      p.isr = isr;
      this.commit(() => {
        this.options.store.savePartition(request.topic, p);
        this.event('isr_change', { topic: request.topic, partition: p.partition, epoch: p.epoch, isr, previousIsr });
      });
      this.options.counters.isrChanges.inc(isr.length < previousIsr.length ? 'shrink' : 'expand');
    }
    return toAssignment(p);
  }

  // ---- reads -------------------------------------------------------------------------

  liveBrokerIds(): number[] {
    return [...this.brokers.values()].filter((b) => b.alive).map((b) => b.id).sort((a, b) => a - b);
  }

  /** Where the coordinator reaches each live broker. */
  liveBrokerUrls(): string[] {
    return [...this.brokers.values()].filter((b) => b.alive).map((b) => b.internalUrl);
  }

  topic(name: string): TopicState {
    const topic = this.topics.get(name);
    if (!topic) throw new TesseraError('TOPIC_NOT_FOUND', `topic ${name} does not exist`);
    return topic;
  }

  partition(topicName: string, partition: number): PartitionState {
    const p = this.topic(topicName).partitions[partition];
    if (!p) throw new TesseraError('PARTITION_NOT_FOUND', `topic ${topicName} has no partition ${partition}`);
    return p;
  }

  /** A broker as error bodies name it to callers. */
  clientRef(id: number | null): { id: number; url: string } | null {
    const broker = id === null ? undefined : this.brokers.get(id);
    return broker ? { id: broker.id, url: broker.url } : null;
  }

  /** A broker as clients know it (`url`), with the address the coordinator itself uses (`internalUrl`). */
  brokerRef(id: number | null): { id: number; url: string; internalUrl: string } | null {
    const broker = id === null ? undefined : this.brokers.get(id);
    return broker ? { id: broker.id, url: broker.url, internalUrl: broker.internalUrl } : null;
  }

  partitionStatus(topic: TopicState, p: PartitionState): PartitionStatus {
    if (p.primary === null || this.brokers.get(p.primary)?.alive !== true) return 'offline';
    if (topic.replicationFactor === 2 && p.isr.length < 2) return 'under-replicated';
    return 'online';
  }

  metadata(topicNames?: string[]): MetadataResponse {
    const wanted = topicNames ? new Set(topicNames) : null;
    return {
      version: this.versionValue,
      brokers: [...this.brokers.values()].sort((a, b) => a.id - b.id).map((b) => ({ id: b.id, url: b.url, internalUrl: b.internalUrl, alive: b.alive })),
      topics: [...this.topics.values()].filter((t) => !wanted || wanted.has(t.name)).map(toMetadata),
    };
  }

  listTopics(): TopicListResponse {
    return {
      topics: [...this.topics.values()]
        .sort((a, b) => (a.name < b.name ? -1 : 1))
        .map((t) => ({ name: t.name, partitions: t.partitions.length, replicationFactor: t.replicationFactor })),
    };
  }

  describeTopic(name: string): TopicDescription {
    const topic = this.topic(name);
    return {
      ...toMetadata(topic),
      partitions: topic.partitions.map((p) => {
        const report = p.primary === null ? undefined : this.reports.get(p.primary)?.get(`${topic.name}/${p.partition}`);
        return {
          ...toAssignment(p),
          status: this.partitionStatus(topic, p),
          highWatermark: report?.hw ?? null,
          logEndOffset: report?.leo ?? null,
        };
      }),
    };
  }

  brokerStatuses(): BrokerStatus[] {
    const load = brokerLoad(this.topics.values(), this.brokers.keys());
    const now = this.options.nowMs();
    return [...this.brokers.values()]
      .sort((a, b) => a.id - b.id)
      .map((b) => ({
        id: b.id,
        url: b.url,
        internalUrl: b.internalUrl,
        alive: b.alive,
        lastHeartbeatAgoMs: b.heardSinceStart ? Math.round(now - b.lastHeartbeatMs) : null,
        primaries: load.get(b.id)?.primaries ?? 0,
        replicas: load.get(b.id)?.replicas ?? 0,
      }));
  }

  status(): ClusterStatusResponse {
    const underReplicatedPartitions: ClusterStatusResponse['underReplicatedPartitions'] = [];
    const offlinePartitions: ClusterStatusResponse['offlinePartitions'] = [];
    let partitions = 0;
    for (const topic of this.topics.values()) {
      for (const p of topic.partitions) {
        partitions++;
        const status = this.partitionStatus(topic, p);
        if (status === 'offline') offlinePartitions.push({ topic: topic.name, partition: p.partition });
        if (status === 'under-replicated') underReplicatedPartitions.push({ topic: topic.name, partition: p.partition });
      }
    }
    return {
      brokers: this.brokerStatuses(),
      topics: this.topics.size,
      partitions,
      underReplicated: underReplicatedPartitions.length,
      offline: offlinePartitions.length,
      underReplicatedPartitions,
      offlinePartitions,
    };
  }

  partitionCounts(): Record<PartitionStatus, number> {
    const counts: Record<PartitionStatus, number> = { online: 0, 'under-replicated': 0, offline: 0 };
    for (const topic of this.topics.values()) for (const p of topic.partitions) counts[this.partitionStatus(topic, p)]++;
    return counts;
  }

  events(limit: number): ClusterEvent[] {
    return this.options.store.latestEvents(limit);
  }

  recordEvent(type: string, details: Record<string, unknown>): void {
    this.event(type, details);
  }
}

function adjustLoad(load: Map<number, BrokerLoad>, p: PartitionState, delta: 1 | -1): void {
  const entry = (id: number) => {
    let e = load.get(id);
    if (!e) load.set(id, (e = { primaries: 0, replicas: 0 }));
    return e;
  };
  if (p.primary !== null) {
    entry(p.primary).primaries += delta;
    entry(p.primary).replicas += delta;
  }
  if (p.secondary !== null) entry(p.secondary).replicas += delta;
}

export function toAssignment(p: PartitionState): PartitionAssignment {
  return { partition: p.partition, primary: p.primary, secondary: p.secondary, epoch: p.epoch, isr: [...p.isr] };
}

function toMetadata(topic: TopicState): TopicMetadata {
  return {
    name: topic.name,
    replicationFactor: topic.replicationFactor,
    config: { ...topic.config },
    partitions: topic.partitions.map(toAssignment),
  };
}
