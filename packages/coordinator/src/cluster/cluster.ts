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
  type ReassignCompleteRequest,
  type PartitionAssignment,
  type PartitionStatus,
  type ReplicaReport,
  type TopicDescription,
  type TopicListResponse,
  type TopicMetadata,
} from '@tessera/protocol';
import type { Logger } from '@tessera/service';
import type { BrokerState, ClusterEvent, MoveReason, MoveState, PartitionState, TopicState } from '../model.js';
import type { CoordinatorCounters } from '../metrics/metrics.js';
import type { LoadedState, Store } from '../store/store.js';
import { brokerLoad, leastLoaded, type BrokerLoad } from '../topics/assignment.js';
import { planRebalance, type PlannerPartition } from '../rebalance/planner.js';
import { nextStep } from '../rebalance/steps.js';
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
  /** Partition moves running at once (rebalance, drain, replacement of dead secondaries). */
  maxConcurrentMoves: number;
  /** An rf=2 partition whose secondary has been dead this long gets a new one. */
  replaceDeadAfterMs: number;
  /** Called on every move step (started, replica added, swapped, leadership transferred, completed, cancelled). */
  onMoveStep?(type: string): void;
  /**
   * After a start, brokers not heard from yet are not declared dead before a broker was heard
   * (then they get a full brokerTimeoutMs from that moment), or before this long has passed.
   */
  brokerStartGraceMs: number;
  /** Primaries unbalanced (spread over 1) this long, with no rebalance running, start leadership transfers. */
  leadershipBalanceDelayMs: number;
  /** Retention of the topics that do not set their own (-1: no limit). */
  retentionDefaults: RetentionDefaults;
}

export interface RetentionDefaults {
  retentionMs: number;
  retentionBytes: number;
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
  /** Moves in progress, keyed by `topic/partition` (persisted). */
  readonly moves = new Map<string, MoveState>();
  private rebalanceRequested: boolean;
  /** Moves started since the rebalance was asked for; a rebalance with none ends without an event. */
  private rebalanceMovesStarted = 0;
  private versionValue: number;
  /** Monotonic ms of this process's start, and whether any broker was heard since (the start grace). */
  private readonly startedMs: number;
  private anyHeardSinceStart = false;
  /** Since when primaries have been unbalanced (monotonic ms), and whether transfers for it have started. */
  private unbalancedSinceMs: number | undefined;
  private leadershipBalancing = false;

  constructor(
    private readonly options: ClusterOptions,
    loaded: LoadedState,
  ) {
    this.versionValue = loaded.version;
    const now = options.nowMs();
    this.startedMs = now;
    for (const b of loaded.brokers) {
      // After a restart every broker gets a full brokerTimeoutMs of grace before it can be declared dead.
      this.brokers.set(b.id, { ...b, lastHeartbeatMs: now, heardSinceStart: false, deadSinceMs: b.alive ? undefined : now });
    }
    for (const t of loaded.topics) this.topics.set(t.name, t);
    for (const m of loaded.moves) this.moves.set(moveKey(m.topic, m.partition), m);
    this.rebalanceRequested = loaded.rebalanceRequested;
    this.rebalanceMovesStarted = loaded.moves.length;
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
    if (!this.anyHeardSinceStart) {
      // Brokers started after the coordinator (compose starts them once it is healthy) arrive
      // together: the first one heard starts everyone's clock, not the coordinator's start.
      this.anyHeardSinceStart = true;
      for (const b of this.brokers.values()) if (b.alive && !b.heardSinceStart) b.lastHeartbeatMs = Math.max(b.lastHeartbeatMs, now);
    }
    let broker = this.brokers.get(id);
    let revived = false;
    if (!broker) {
      const added: BrokerState = { id, url, internalUrl, alive: true, lastHeartbeatMs: now, heardSinceStart: true, draining: false };
      broker = added;
      this.brokers.set(id, added);
      revived = true;
      this.commit(() => {
        this.options.store.saveBroker(added);
        this.event('broker_registered', { brokerId: id, url });
        // A new broker is empty: give it its share.
        this.requestRebalance('broker_joined', id);
      });
    } else {
      const b = broker;
      // A live broker keeps its URLs: a call naming its id with other URLs is someone else (or
      // a second process started with the same id). A broker that really moved is accepted once
      // its old self has been silent for brokerTimeoutMs and is declared dead.
      if (b.alive && (b.url !== url || b.internalUrl !== internalUrl)) {
        throw new TesseraError('FORBIDDEN', `broker ${id} is alive at ${b.url}; a new URL is accepted once it has been silent for the broker timeout`);
      }
      b.lastHeartbeatMs = now;
      b.heardSinceStart = true;
      if (b.url !== url || b.internalUrl !== internalUrl || !b.alive) {
        revived = !b.alive;
        const moved = b.url !== url || b.internalUrl !== internalUrl;
        const previous = { url: b.url, internalUrl: b.internalUrl };
        b.url = url;
        b.internalUrl = internalUrl;
        b.alive = true;
        b.deadSinceMs = undefined;
        this.commit(() => {
          this.options.store.saveBroker(b);
          if (revived) this.event('broker_up', { brokerId: id, url });
          // Back after its replicas went elsewhere: it is as good as a new broker.
          if (revived && !this.holdsAnything(id)) this.requestRebalance('broker_returned_empty', id);
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
    // Before any broker is back after a start, declaring brokers dead moves nothing anywhere (no
    // live replica could take over) and would take every partition offline: wait, within bounds.
    const inStartGrace = !this.anyHeardSinceStart && now - this.startedMs < this.options.brokerStartGraceMs;
    const dead = inStartGrace ? [] : [...this.brokers.values()].filter((b) => b.alive && now - b.lastHeartbeatMs > this.options.brokerTimeoutMs);
    if (dead.length > 0) {
      this.commit(() => {
        for (const b of dead) {
          b.alive = false;
          b.deadSinceMs = now;
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
    const placementIds = this.placementBrokerIds();
    const load = brokerLoad(this.topics.values(), liveIds);
    const isAlive = (id: number) => this.brokers.get(id)?.alive === true;
    // New secondaries go to brokers that are not draining, unless only draining ones are left.
    const pick = (exclude: readonly number[]) =>
      leastLoaded(
        placementIds.filter((id) => !exclude.includes(id)),
        load,
      ) ??
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
        this.savePartition(c.topic, p);
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

  /** Changes a topic's settings (persisted, then every broker hears of it with the next map). */
  alterTopicConfig(name: string, change: Partial<TopicState['config']>): void {
    const topic = this.topic(name);
    const config = { ...topic.config, ...change };
    this.commit(() => {
      this.options.store.saveTopicConfig(name, config);
      this.event('topic_altered', { topic: name, config: change });
    });
    topic.config = config;
  }

  /** The settings in force for a topic: its own, else the cluster defaults. */
  topicConfig(topic: TopicState): TopicMetadata['config'] {
    const defaults = this.options.retentionDefaults;
    return {
      minInsyncReplicas: topic.config.minInsyncReplicas,
      retentionMs: topic.config.retentionMs ?? defaults.retentionMs,
      retentionBytes: topic.config.retentionBytes ?? defaults.retentionBytes,
    };
  }

  private toMetadata(topic: TopicState): TopicMetadata {
    return {
      name: topic.name,
      replicationFactor: topic.replicationFactor,
      config: this.topicConfig(topic),
      firstEpoch: topic.firstEpoch,
      partitions: topic.partitions.map(toAssignment),
    };
  }

  removeTopic(name: string): void {
    const topic = this.topics.get(name);
    if (!topic) throw new TesseraError('TOPIC_NOT_FOUND', `topic ${name} does not exist`);
    this.commit(() => {
      // Its moves go with it (ON DELETE CASCADE in the store).
      this.options.store.deleteTopic(topic);
      this.event('topic_deleted', { topic: name });
    });
    this.topics.delete(name);
    for (const [key, move] of this.moves) if (move.topic === name) this.moves.delete(key);
  }

  /**
   * A broker registered: it started, and forgot any ISR expansion or move completion it had
   * asked for without seeing the answer. Such a request may still arrive (held up on the way, or
   * replayed) after the broker, primary again of the same epoch, acknowledged records alone: the
   * versions of the partitions it leads move on, so that request is refused.
   */
  brokerStarted(id: number): void {
    const led = [...this.topics.values()].flatMap((topic) => topic.partitions.filter((p) => p.primary === id).map((p) => ({ topic: topic.name, p })));
    if (led.length === 0) return;
    this.commit(() => {
      for (const { topic, p } of led) this.savePartition(topic, p);
    });
    this.options.onChange();
  }

  /** The epoch a topic created now starts at: above every epoch of a deleted topic (see `Store.topicEpochFloor`). */
  topicEpochFloor(): number {
    return this.options.store.topicEpochFloor();
  }

  /** Stores a change of the partition's assignment, counting it in its version. Inside `commit`. */
  private savePartition(topic: string, p: PartitionState): void {
    p.version += 1;
    this.options.store.savePartition(topic, p);
  }

  /**
   * Refuses a primary's request decided on an assignment the coordinator has changed since
   * (`version` absent: a broker of an earlier release, which is not fenced this way).
   */
  private checkVersion(request: { topic: string; partition: number; version?: number }, p: PartitionState): void {
    if (request.version === undefined || request.version === p.version) return;
    throw new TesseraError(
      'STALE_ASSIGNMENT',
      `partition ${request.topic}/${request.partition} is at assignment version ${p.version}, not ${request.version}`,
      { version: p.version },
    );
  }

  /**
   * The partition a primary's request is about, once the request is fenced: refused with
   * STALE_EPOCH when its epoch is not current (the sender may have been deposed), NOT_PRIMARY
   * when the sender is not the primary.
   */
  private fencedPartition(request: { topic: string; partition: number; epoch: number; brokerId: number }): PartitionState & { primary: number } {
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
    return p as PartitionState & { primary: number };
  }

  /**
   * A primary asks to shrink its ISR to itself or expand it back to both replicas. Refused when
   * its epoch is not current (it may have been deposed) or it is not the primary.
   */
  changeIsr(request: IsrChangeRequest): PartitionAssignment {
    const p = this.fencedPartition(request);
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
      // An expansion decided before a later change (a shrink, a swap) would undo it: the
      // secondary could be counted in sync while lacking records acknowledged since. A shrink
      // only ever removes a replica from the count, so it needs no such fence.
      if (isrBoth) this.checkVersion(request, p);
      const previousIsr = p.isr;
      p.isr = isr;
      this.commit(() => {
        this.savePartition(request.topic, p);
        this.event('isr_change', { topic: request.topic, partition: p.partition, epoch: p.epoch, isr, previousIsr });
      });
      this.options.counters.isrChanges.inc(isr.length < previousIsr.length ? 'shrink' : 'expand');
    }
    return toAssignment(p);
  }

  // ---- moves: rebalance, drain, replacement of dead secondaries ------------------------

  /**
   * The primary reports that the replica being added (`adding`) caught up to its log end:
   * make it the secondary with ISR [primary, target] and drop the old secondary, in one step.
   * The primary holds its flushes while it asks, so nothing is acknowledged on the old pair
   * after the target caught up. Asking again after the swap answers the same assignment.
   */
  completeReassignment(request: ReassignCompleteRequest): PartitionAssignment {
    const p = this.fencedPartition(request);
    const adding = p.adding ?? null;
    if (adding === null && p.secondary === request.target && p.isr.includes(request.target)) return toAssignment(p);
    // A completion decided before the move was cancelled and started again must not swap in a
    // target that has not caught up in the new move.
    this.checkVersion(request, p);
    if (adding !== request.target) {
      throw new TesseraError(
        'INVALID_REQUEST',
        `broker ${request.target} is not being added to ${request.topic}/${request.partition} (adding: ${adding ?? 'none'})`,
      );
    }
    if (this.brokers.get(request.target)?.alive !== true) {
      // A dead secondary in the ISR would only stall the primary until it shrinks the ISR again; the move is cancelled instead.
      throw new TesseraError('INVALID_REQUEST', `broker ${request.target} being added to ${request.topic}/${request.partition} is dead`);
    }
    const previousSecondary = p.secondary;
    const previousIsr = p.isr;
    p.secondary = request.target;
    p.isr = [p.primary, request.target];
    p.adding = null;
    this.commit(() => {
      this.savePartition(request.topic, p);
      this.event('replica_reassigned', {
        topic: request.topic,
        partition: p.partition,
        epoch: p.epoch,
        primary: p.primary,
        secondary: p.secondary,
        isr: p.isr,
        previousSecondary,
        previousIsr,
      });
    });
    this.options.onMoveStep?.('replica_reassigned');
    // The old secondary drops its copy when it hears of the new map.
    this.options.onChange();
    return toAssignment(p);
  }

  /** Marks a broker draining (moves take every replica off it) or not; answers its status. */
  setDraining(id: number, draining: boolean): BrokerStatus {
    const broker = this.brokers.get(id);
    if (!broker) throw new TesseraError('NOT_FOUND', `broker ${id} is not registered`);
    if (broker.draining !== draining) {
      broker.draining = draining;
      this.commit(() => {
        this.options.store.saveBroker(broker);
        this.event(draining ? 'broker_draining' : 'broker_undrained', { brokerId: id });
        this.requestRebalance(draining ? 'broker_drain' : 'broker_undrain', id);
      });
    }
    return this.brokerStatuses().find((b) => b.id === id)!;
  }

  /** Called inside a commit. */
  private requestRebalance(reason: string, brokerId: number): void {
    this.rebalanceRequested = true;
    this.rebalanceMovesStarted = 0;
    this.options.store.saveRebalanceRequested(true);
    this.event('rebalance_requested', { reason, brokerId });
  }

  private holdsAnything(id: number): boolean {
    for (const topic of this.topics.values()) {
      for (const p of topic.partitions) {
        if (p.primary === id || p.secondary === id || p.adding === id || p.lastIsr.includes(id)) return true;
      }
    }
    return false;
  }

  /**
   * One turn of the move driver (from the liveness tick): starts replacements of secondaries
   * dead for replaceDeadAfterMs, advances every running move by at most one step, and while a
   * rebalance is wanted starts planned moves up to maxConcurrentMoves.
   */
  driveMoves(): void {
    const isAlive = (id: number) => this.brokers.get(id)?.alive === true;
    const usable = (id: number) => isAlive(id) && this.brokers.get(id)?.draining !== true;
    let changed = false;
    const steps: Array<() => void> = [];

    // 1. Advance running moves.
    for (const [key, move] of [...this.moves]) {
      const topic = this.topics.get(move.topic);
      const p = topic?.partitions[move.partition];
      if (!topic || !p) {
        this.moves.delete(key);
        steps.push(() => this.options.store.deleteMove(move.topic, move.partition));
        continue;
      }
      const step = nextStep(p, move, isAlive, usable);
      const details = { topic: move.topic, partition: p.partition, reason: move.reason, targetPrimary: move.targetPrimary, targetSecondary: move.targetSecondary };
      switch (step.kind) {
        case 'wait':
          break;
        case 'done':
        case 'cancel': {
          this.moves.delete(key);
          const dropsAdding = step.kind === 'cancel' && (p.adding ?? null) !== null;
          if (dropsAdding) {
            p.adding = null;
            changed = true;
          }
          const type = step.kind === 'done' ? 'rebalance_move_completed' : 'rebalance_move_cancelled';
          steps.push(() => {
            this.options.store.deleteMove(move.topic, move.partition);
            // Only a change of the assignment counts in its version (and is published).
            if (dropsAdding) this.savePartition(move.topic, p);
            this.event(type, { ...details, primary: p.primary, secondary: p.secondary, epoch: p.epoch, ...(step.kind === 'cancel' ? { why: step.why } : {}) });
          });
          this.options.onMoveStep?.(type);
          break;
        }
        case 'add': {
          p.adding = step.broker;
          changed = true;
          steps.push(() => {
            this.savePartition(move.topic, p);
            this.event('replica_adding', { ...details, broker: step.broker, primary: p.primary, secondary: p.secondary, epoch: p.epoch });
          });
          this.options.onMoveStep?.('replica_adding');
          break;
        }
        case 'transfer': {
          const previousPrimary = p.primary!;
          const primary = p.secondary!;
          p.primary = primary;
          p.secondary = previousPrimary;
          p.epoch += 1;
          // The old primary holds every acknowledged record too; its unacknowledged tail is cut by the divergence check.
          p.isr = [primary, previousPrimary];
          p.lastIsr = [];
          p.adding = null;
          changed = true;
          steps.push(() => {
            this.savePartition(move.topic, p);
            this.event('leadership_transferred', { ...details, primary, secondary: previousPrimary, epoch: p.epoch, previousPrimary });
          });
          this.options.onMoveStep?.('leadership_transferred');
          break;
        }
        case 'drop-secondary': {
          const previousSecondary = p.secondary;
          p.secondary = null;
          p.isr = [p.primary!];
          changed = true;
          steps.push(() => {
            this.savePartition(move.topic, p);
            this.event('replica_dropped', { ...details, broker: previousSecondary, primary: p.primary, epoch: p.epoch });
          });
          this.options.onMoveStep?.('replica_dropped');
          break;
        }
      }
    }

    // 2. Replace secondaries dead for too long (redundancy first, so before rebalance moves).
    const now = this.options.nowMs();
    const load = this.placementLoad();
    const startMove = (topicName: string, p: PartitionState, to: { primary: number; secondary: number | null }, reason: MoveReason) => {
      const move: MoveState = { topic: topicName, partition: p.partition, targetPrimary: to.primary, targetSecondary: to.secondary, reason, startedMs: Date.now() };
      this.moves.set(moveKey(topicName, p.partition), move);
      this.rebalanceMovesStarted++;
      steps.push(() => {
        this.options.store.saveMove(move);
        this.event('rebalance_move_started', {
          topic: topicName,
          partition: p.partition,
          reason,
          primary: p.primary,
          secondary: p.secondary,
          targetPrimary: to.primary,
          targetSecondary: to.secondary,
        });
      });
      this.options.onMoveStep?.('rebalance_move_started');
    };
    for (const topic of this.topics.values()) {
      if (topic.replicationFactor !== 2) continue;
      for (const p of topic.partitions) {
        if (this.moves.size >= this.options.maxConcurrentMoves) break;
        if (p.primary === null || !isAlive(p.primary) || p.secondary === null || isAlive(p.secondary)) continue;
        if (this.moves.has(moveKey(topic.name, p.partition))) continue;
        const deadSinceMs = this.brokers.get(p.secondary)?.deadSinceMs ?? now;
        if (now - deadSinceMs < this.options.replaceDeadAfterMs) continue;
        const candidates = this.placementBrokerIds().filter((id) => id !== p.primary && id !== p.secondary);
        const secondary = leastLoaded(candidates, load);
        if (secondary === null) continue;
        load.get(secondary)!.replicas++;
        startMove(topic.name, p, { primary: p.primary, secondary }, 'replace');
      }
    }

    // 3. Rebalance while wanted.
    if (this.rebalanceRequested && this.moves.size < this.options.maxConcurrentMoves) {
      const plan = planRebalance({ eligible: this.placementBrokerIds(), live: this.liveBrokerIds(), partitions: this.plannerPartitions() });
      // The planner leaves a partition with a dead replica to failover and the replacement of
      // dead secondaries; until those are done the map is not balanced, so the rebalance stays
      // wanted (a draining broker dead for a moment is still evacuated once it is back).
      const waiting = () =>
        [...this.topics.values()].some((topic) =>
          topic.partitions.some((p) => p.primary !== null && (!isAlive(p.primary) || (p.secondary !== null && !isAlive(p.secondary)))),
        );
      if (plan.length === 0 && this.moves.size === 0 && !waiting()) {
        this.rebalanceRequested = false;
        const moved = this.rebalanceMovesStarted;
        steps.push(() => {
          this.options.store.saveRebalanceRequested(false);
          // Nothing to move (e.g. brokers registering before any topic exists): no event to read.
          if (moved > 0) {
            this.event('rebalance_completed', {
              moves: moved,
              brokers: this.brokerStatuses().map((b) => ({ id: b.id, primaries: b.primaries, replicas: b.replicas })),
            });
          }
        });
      }
      for (const planned of plan) {
        if (this.moves.size >= this.options.maxConcurrentMoves) break;
        const p = this.topics.get(planned.topic)!.partitions[planned.partition];
        startMove(planned.topic, p, planned.to, 'rebalance');
      }
    }

    // 4. Leadership balance: once every broker's data is back, primaries are where recovery put them.
    this.balanceLeadership(now, startMove, steps);

    if (steps.length === 0) return;
    // Only a change of the map bumps the metadata version (brokers refresh on a new version).
    if (changed) {
      this.commit(() => {
        for (const step of steps) step();
      });
      this.options.onChange();
    } else {
      this.options.store.transaction(() => {
        for (const step of steps) step();
      });
    }
  }

  /**
   * Starts leadership transfers (moves of reason `leadership`, at most maxConcurrentMoves at a
   * time) when the primaries of the live, not draining brokers have differed by more than one
   * for leadershipBalanceDelayMs while no rebalance runs. Only partitions whose secondary is alive
   * and in the ISR are candidates: a transfer copies nothing, and the partition is writable again
   * as soon as the new primary hears of it. Returning brokers are what usually causes this: a
   * partition that failed over or went offline keeps its new primary when the old one returns.
   */
  private balanceLeadership(
    now: number,
    startMove: (topic: string, p: PartitionState, to: { primary: number; secondary: number | null }, reason: MoveReason) => void,
    steps: Array<() => void>,
  ): void {
    const spread = this.primarySpread();
    const running = [...this.moves.values()].filter((m) => m.reason === 'leadership').length;
    if (spread <= 1 || this.rebalanceRequested) {
      this.unbalancedSinceMs = undefined;
      if (this.leadershipBalancing && running === 0) {
        this.leadershipBalancing = false;
        const brokers = this.brokerStatuses().filter((b) => b.alive).map((b) => ({ id: b.id, primaries: b.primaries }));
        steps.push(() => this.event('leadership_balance_completed', { spread, brokers }));
      }
      return;
    }
    this.unbalancedSinceMs ??= now;
    if (now - this.unbalancedSinceMs < this.options.leadershipBalanceDelayMs) return;
    if (this.moves.size >= this.options.maxConcurrentMoves) return;
    const plan = planRebalance({ eligible: this.placementBrokerIds(), live: this.liveBrokerIds(), partitions: this.plannerPartitions(), leadershipOnly: true });
    const capacity = this.options.maxConcurrentMoves - this.moves.size;
    const starting = plan.slice(0, capacity);
    if (starting.length === 0) {
      // Nothing can move yet (secondaries catching up, rf=1 topics): plan again after another delay.
      if (!running) this.unbalancedSinceMs = now;
      return;
    }
    if (!this.leadershipBalancing) {
      this.leadershipBalancing = true;
      const brokers = this.brokerStatuses().filter((b) => b.alive).map((b) => ({ id: b.id, primaries: b.primaries }));
      steps.push(() => this.event('leadership_balance_started', { spread, transfers: plan.length, brokers }));
    }
    for (const planned of starting) startMove(planned.topic, this.topics.get(planned.topic)!.partitions[planned.partition], planned.to, 'leadership');
    this.options.counters.leadershipTransfers.inc(starting.length);
  }

  /**
   * Every partition as the planner sees it: one with a move running counted at its target and
   * pinned, and whether its secondary is alive and in the ISR (a leadership transfer may go now).
   */
  private plannerPartitions(): PlannerPartition[] {
    const isAlive = (id: number) => this.brokers.get(id)?.alive === true;
    const partitions: PlannerPartition[] = [];
    for (const topic of this.topics.values()) {
      for (const p of topic.partitions) {
        const move = this.moves.get(moveKey(topic.name, p.partition));
        partitions.push({
          topic: topic.name,
          partition: p.partition,
          replicationFactor: topic.replicationFactor,
          primary: move ? move.targetPrimary : p.primary,
          secondary: move ? move.targetSecondary : p.secondary,
          pinned: move !== undefined,
          inSync: p.secondary !== null && isAlive(p.secondary) && p.isr.includes(p.secondary) && (p.adding ?? null) === null,
        });
      }
    }
    return partitions;
  }

  /** The most primaries a live, not draining broker leads minus the fewest (0 with fewer than two such brokers). */
  primarySpread(): number {
    const ids = this.placementBrokerIds();
    if (ids.length < 2) return 0;
    const load = brokerLoad(this.topics.values(), ids);
    const primaries = ids.map((id) => load.get(id)!.primaries);
    return Math.max(...primaries) - Math.min(...primaries);
  }

  /** Brokers new replicas may go to: alive and not draining. */
  placementBrokerIds(): number[] {
    return [...this.brokers.values()].filter((b) => b.alive && !b.draining).map((b) => b.id).sort((a, b) => a - b);
  }

  /** Load of the placement brokers, counting replicas being added as held. */
  private placementLoad(): Map<number, BrokerLoad> {
    const ids = this.placementBrokerIds();
    const load = brokerLoad(this.topics.values(), ids);
    for (const topic of this.topics.values()) {
      for (const p of topic.partitions) {
        const adding = p.adding ?? null;
        if (adding !== null && load.has(adding)) load.get(adding)!.replicas++;
      }
    }
    return load;
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

  /**
   * Under-replicated also covers a dead secondary still in the ISR: the primary only asks to
   * shrink the ISR when a write needs the secondary, so an idle partition keeps a dead one
   * listed, but it has a single live copy all the same.
   */
  partitionStatus(topic: TopicState, p: PartitionState): PartitionStatus {
    if (p.primary === null || this.brokers.get(p.primary)?.alive !== true) return 'offline';
    if (topic.replicationFactor < 2) return 'online';
    const secondaryAlive = p.secondary !== null && this.brokers.get(p.secondary)?.alive === true;
    return p.isr.length < 2 || !secondaryAlive ? 'under-replicated' : 'online';
  }

  metadata(topicNames?: string[]): MetadataResponse {
    const wanted = topicNames ? new Set(topicNames) : null;
    return {
      version: this.versionValue,
      brokers: [...this.brokers.values()].sort((a, b) => a.id - b.id).map((b) => ({ id: b.id, url: b.url, internalUrl: b.internalUrl, alive: b.alive })),
      topics: [...this.topics.values()].filter((t) => !wanted || wanted.has(t.name)).map((t) => this.toMetadata(t)),
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
      ...this.toMetadata(topic),
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
    const adding = new Map<number, number>();
    for (const topic of this.topics.values()) {
      for (const p of topic.partitions) if (p.adding != null) adding.set(p.adding, (adding.get(p.adding) ?? 0) + 1);
    }
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
        state: b.alive ? ('alive' as const) : ('dead' as const),
        draining: b.draining,
        adding: adding.get(b.id) ?? 0,
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
  const assignment: PartitionAssignment = {
    partition: p.partition,
    primary: p.primary,
    secondary: p.secondary,
    epoch: p.epoch,
    isr: [...p.isr],
    version: p.version,
  };
  // Additive: present only while a replica is being added, so maps without moves read as before.
  if (p.adding != null) assignment.adding = p.adding;
  return assignment;
}

function moveKey(topic: string, partition: number): string {
  return `${topic}/${partition}`;
}


