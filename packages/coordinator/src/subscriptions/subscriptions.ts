/**
 * Push subscriptions as a resource of the coordinator: stored in coordinator.db like groups,
 * shipped to the brokers (`GET /internal/subscriptions`, refetched when a heartbeat answer
 * carries a newer `subscriptionsVersion`), and described from what the delivering brokers
 * report in their heartbeats. The coordinator never delivers anything itself: the primary of
 * each partition does, so delivery follows failover and rebalancing.
 *
 * A subscription reads its topic (and writes its dead-letter topic) on its creator's behalf for
 * as long as it lives, so it delivers only while its creator may: on every change of the
 * principals or ACLs, and at start, each is suspended or reinstated to match, and a suspended
 * one is left out of the brokers' state (so they stop it within a heartbeat, keeping its offsets).
 * It also delivers only while the target policy (`--subscription-allowed-targets`) allows its
 * URL: the policy travels with the state, and at start, before the coordinator listens, a policy
 * other than the one the brokers were last given moves the version (so they fetch it with their
 * next heartbeat and enforce it on every connection). Every stored URL is then judged again in
 * the background (host lookups must not hold the start); one the policy refuses is suspended.
 *
 * Deleting one also deletes its group's committed offsets on the brokers: left there, they would
 * read as a group that stopped consuming (its lag growing forever, the lag alert firing), and no
 * group delete could remove them (the group manager never held the group). The coordinator stores
 * the deletion mark (DELETED_GROUP_OFFSET) on every partition of the topic through the group
 * offsets path, at DELETED_SUBSCRIPTION_GENERATION: newer than the generation the deliveries
 * commit at, and their commits count a mark's generation, so the last commit of a loop that is
 * still stopping when the mark lands (the brokers learn of the delete with their next heartbeat,
 * and a stopping loop waits for its attempt in flight, then commits) is refused instead of
 * storing a position over it. So the marks need not wait for the brokers: they are stored right
 * after the delete, in the background. Which groups still need them is stored with the delete,
 * in the same transaction, and tried again until every partition took the mark (a primary down
 * or unreachable), across restarts.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DEFAULT_HEARTBEAT_MS,
  DELETED_SUBSCRIPTION_GENERATION,
  TesseraError,
  linkedAbort,
  type AclOperation,
  type CreateSubscriptionRequest,
  type CreatedSubscription,
  type Subscription,
  type SubscriptionDescription,
  type SubscriptionListResponse,
  type TopicDescription,
  type SubscriptionPartitionStatus,
  type SubscriptionReport,
  type SubscriptionState,
  type SubscriptionsStateResponse,
  type TargetPolicy,
  type TargetVerdict,
  type CreateSubscriptionInput,
} from '@tessera/protocol';
import type { Logger } from '@tessera/service';
import type { Cluster } from '../cluster/cluster.js';
import type { Store, SubscriptionRow } from '../store/store.js';

/** The start of every push subscription's group id: `subscription.NAME.ID`, fresh per creation. */
export const SUBSCRIPTION_GROUP_PREFIX = 'subscription.';

const VERSION_META = 'subscriptions_version';
/** Heartbeats a creation from the end waits for the ends of its topic's partitions to be reported. */
const END_REPORT_HEARTBEATS = 4;
const END_REPORT_MAX_WAIT_MS = 5_000;
/** The target policy the brokers were last given (with the state of `VERSION_META`). */
const TARGETS_META = 'subscriptions_allowed_targets';

/** The start of the reason a subscription whose URL the target policy refuses is suspended with. */
const TARGET_REFUSED = 'its URL is not an allowed target any more: ';
/** Stored URLs judged at once at start, and the longest one host's lookup may hold the start. */
const START_TARGET_CHECKS = 8;
const START_TARGET_CHECK_MS = 5_000;

/** The deleted subscriptions' groups whose deletion marks are not stored yet (JSON: a short list, emptied as they are). */
const UNMARKED_GROUPS_META = 'deleted_subscription_groups';

/** Most partitions a refusal names one by one (a topic may have hundreds). */
const MAX_PARTITIONS_NAMED = 10;

/** A deleted subscription's group whose deletion mark is not stored on every partition of its topic yet. */
interface UnmarkedGroup {
  group: string;
  topic: string;
  /** The topic's first epoch when the subscription was deleted: a topic made again under its name since is another one. */
  topicFirstEpoch: number;
  /** The partitions still to mark, when a run marked the others (none: every partition). */
  partitions?: number[];
}

/** Stores a group's deletion mark on every partition of a topic (`GroupOffsetAdmin.markDeleted`). */
export interface DeletedGroupMarks {
  /** Marks `partitions` (none: all) and answers those it could not (no live primary). */
  markDeleted(group: string, topic: string, generation: number, partitions?: readonly number[]): Promise<number[]>;
}

/** The delivery settings kept as JSON in the row's `config`. */
type DeliveryConfig = Pick<
  Subscription,
  'url' | 'filterKeyPrefix' | 'maxAttempts' | 'backoffInitialMs' | 'backoffMaxMs' | 'deadLetterTopic' | 'maxInFlight' | 'timeoutMs'
>;

/** Who created a subscription, as the route saw the caller. */
export type Creator = { kind: 'principal'; name: string } | { kind: 'member' } | { kind: 'anonymous' };

/** What a creator may do now (the coordinator's `AuthRegistry`). */
export interface CreatorAccess {
  /** Client authentication on: callers need a token, and ACLs apply. */
  readonly enabled: boolean;
  /** Why `principal` may not do each `operation` on its topic, or null when it may. */
  refusal(principal: string, needs: ReadonlyArray<{ operation: AclOperation; topic: string }>): string | null;
}

export interface SubscriptionManagerOptions {
  store: Store;
  cluster: Cluster;
  targets: TargetPolicy;
  access: CreatorAccess;
  /** Where deleted subscriptions' groups get their deletion marks. */
  marks: DeletedGroupMarks;
  logger: Logger;
  /** How often the brokers heartbeat (and so report their partitions' HWs). */
  heartbeatMs?: number;
  /** Wall clock (createdMs, report ages). */
  nowMs?: () => number;
}

interface HeldReport {
  broker: number;
  report: SubscriptionReport;
}

export class SubscriptionManager {
  private readonly rows = new Map<string, SubscriptionRow>();
  private versionNumber: number;
  /** The latest report per subscription, partition and broker (only the current primary's is shown). */
  private readonly reports = new Map<string, Map<string, HeldReport>>();
  /** Why the target policy refuses each subscription's URL, as judged at start (none: it allows it). */
  private readonly targetRefusals = new Map<string, string>();
  /** Deleted subscriptions' groups still to be marked deleted on the brokers (stored under UNMARKED_GROUPS_META). */
  private unmarked: UnmarkedGroup[];
  /** The run of `markDeletedGroups` under way; `markAgain` when a delete came meanwhile. */
  private marking: Promise<void> | undefined;
  private markAgain = false;
  /** Settles once the stored URLs were judged against the target policy after the start (or `close` ended it). */
  private readonly targetsJudged: Promise<void>;
  /** Aborted by `close`: the background work (judging, marking) ends. */
  private readonly closing = new AbortController();

  /**
   * Loads the stored subscriptions and, before the coordinator serves anything, brings them in
   * line with the access and the target policy in force now: either may have changed while the
   * coordinator was down. The stored URLs are judged in the background: their hosts are looked
   * up, and a start must not wait on a slow resolver (the brokers enforce the new policy on every
   * connection from their next heartbeat on, whatever the verdicts).
   */
  static open(options: SubscriptionManagerOptions): SubscriptionManager {
    const manager = new SubscriptionManager(options);
    manager.recordTargetPolicy();
    // Also covers authentication turned on or off, and a stop between an ACL change and the
    // suspension it caused.
    manager.checkSuspensions();
    return manager;
  }

  private constructor(private readonly options: SubscriptionManagerOptions) {
    for (const row of options.store.subscriptions()) {
      this.rows.set(row.name, row);
      // An earlier start's verdict holds until this start's judging (below) gives a new one.
      if (row.suspended_reason?.startsWith(TARGET_REFUSED) === true) this.targetRefusals.set(row.name, row.suspended_reason);
    }
    this.versionNumber = Number(options.store.getMeta(VERSION_META) ?? 0);
    this.unmarked = JSON.parse(options.store.getMeta(UNMARKED_GROUPS_META) ?? '[]') as UnmarkedGroup[];
    this.targetsJudged = Promise.resolve()
      .then(() => this.judgeTargets())
      .then(() => {
        if (!this.closed) this.checkSuspensions();
      })
      .catch((error: unknown) => {
        // The coordinator stopped meanwhile (its store is closed), or a lookup failed oddly: the next start judges again.
        options.logger.warn({ err: error }, 'subscription targets not judged after the start');
      });
  }

  get version(): number {
    return this.versionNumber;
  }

  private refuseTaken(name: string): void {
    if (this.rows.has(name)) throw new TesseraError('SUBSCRIPTION_EXISTS', `subscription ${name} exists`);
  }

  /** Validates the topics and the target, then stores the subscription; its secret is answered this once. */
  async create(request: CreateSubscriptionInput, creator: Creator): Promise<CreatedSubscription> {
    const { cluster } = this.options;
    const topic = cluster.topic(request.topic);
    if (request.deadLetterTopic !== undefined) cluster.topic(request.deadLetterTopic);
    // A taken name is refused before the DNS lookup of the target, and again after it: another
    // create may have taken the name while this one waited (the store's save overwrites).
    this.refuseTaken(request.name);
    await this.options.targets.checkUrl(request.url);
    this.refuseTaken(request.name);
    // From the end by default: each partition's HW as its primary last reported it (within one
    // heartbeat of now), so records acknowledged after the answer are all delivered. The reports
    // are in memory only: right after the coordinator started or the topic was created (its
    // primaries report with their next heartbeat), or for a partition without a live primary, the
    // end is not known, and no guess will do (0 would start at the log start, delivering the whole
    // history): the creation waits a few heartbeats for the reports, then is refused as retriable.
    const startOffsets: Record<string, number> = {};
    if (!request.fromBeginning) {
      const partitions = await this.reportedEnds(topic.name);
      const unknown = partitions.filter((p) => p.highWatermark === null).map((p) => p.partition);
      if (unknown.length > 0) {
        const more = unknown.length > MAX_PARTITIONS_NAMED ? ` and ${unknown.length - MAX_PARTITIONS_NAMED} more` : '';
        const listed = `${unknown.length === 1 ? 'partition' : 'partitions'} ${unknown.slice(0, MAX_PARTITIONS_NAMED).join(', ')}${more}`;
        throw new TesseraError(
          'UNAVAILABLE',
          `cannot start subscription ${request.name} at the end of topic ${topic.name}: the end of ${listed} is not known yet ` +
            '(no report from the primary since the coordinator started, or no live primary); retry in a few seconds, or create it from the beginning (fromBeginning, --from-beginning)',
        );
      }
      for (const p of partitions) startOffsets[String(p.partition)] = p.highWatermark!;
      // Another create may have taken the name while this one waited for the reports.
      this.refuseTaken(request.name);
    }
    const config: DeliveryConfig = {
      url: request.url,
      filterKeyPrefix: request.filterKeyPrefix ?? null,
      maxAttempts: request.maxAttempts ?? null,
      backoffInitialMs: request.backoffInitialMs,
      backoffMaxMs: request.backoffMaxMs,
      deadLetterTopic: request.deadLetterTopic ?? null,
      maxInFlight: request.maxInFlight,
      timeoutMs: request.timeoutMs,
    };
    const row: SubscriptionRow = {
      name: request.name,
      topic: topic.name,
      config: JSON.stringify(config),
      secret: `whsec_${randomBytes(32).toString('base64url')}`,
      state: 'active',
      // A fresh group per subscription: one created again under an old name starts over.
      group_id: `${SUBSCRIPTION_GROUP_PREFIX}${request.name}.${randomBytes(4).toString('hex')}`,
      start_offsets: JSON.stringify(startOffsets),
      created_ms: this.nowMs(),
      created_by: creator.kind === 'principal' ? creator.name : creator.kind,
      creator_kind: creator.kind,
      suspended_reason: null,
      suspended_ms: null,
    };
    // The route checked the caller's access before the DNS lookup; an ACL removed or the
    // principal deleted meanwhile refuses the creation, as it would have before.
    const problem = this.accessProblem(row);
    if (problem !== null) throw new TesseraError('FORBIDDEN', problem);
    this.change(() => this.options.store.saveSubscription(row));
    this.rows.set(row.name, row);
    // Its URL was judged just now: a verdict on an earlier subscription of the name does not hold.
    this.targetRefusals.delete(row.name);
    cluster.recordEvent('subscription_created', { name: row.name, topic: row.topic, by: row.created_by });
    return { ...toSubscription(row), secret: row.secret };
  }

  get(name: string): Subscription {
    return toSubscription(this.row(name));
  }

  /** How many subscriptions deliver, are paused, or are suspended (a suspended one counts there whatever its state). */
  countsByState(): { active: number; paused: number; suspended: number } {
    const counts = { active: 0, paused: 0, suspended: 0 };
    for (const row of this.rows.values()) {
      if (row.suspended_reason !== null) counts.suspended++;
      else if (row.state === 'paused') counts.paused++;
      else counts.active++;
    }
    return counts;
  }

  /** The subscriptions `visible` keeps (the caller's view). */
  list(visible: (subscription: Subscription) => boolean): SubscriptionListResponse {
    return { subscriptions: [...this.rows.values()].map(toSubscription).filter(visible) };
  }

  setState(name: string, state: SubscriptionState): Subscription {
    const row = this.row(name);
    if (row.state !== state) {
      const next = { ...row, state };
      this.change(() => this.options.store.saveSubscription(next));
      this.rows.set(name, next);
      this.options.cluster.recordEvent(state === 'paused' ? 'subscription_paused' : 'subscription_resumed', { name });
    }
    return toSubscription(this.row(name));
  }

  /**
   * Deletes the subscription at once (brokers stop its loops with their next heartbeat), and
   * marks its group deleted on the brokers in the background (see the top of this module).
   */
  delete(name: string): void {
    const row = this.row(name);
    const topic = this.options.cluster.topics.get(row.topic);
    // A topic deleted since took its partitions, and the group's offsets in them, along.
    const unmarked =
      topic === undefined ? this.unmarked : [...this.unmarked, { group: row.group_id, topic: topic.name, topicFirstEpoch: topic.firstEpoch }];
    this.change(() => {
      this.options.store.deleteSubscription(name);
      this.options.store.setMeta(UNMARKED_GROUPS_META, JSON.stringify(unmarked));
    });
    this.unmarked = unmarked;
    this.rows.delete(name);
    this.reports.delete(name);
    this.targetRefusals.delete(name);
    this.options.cluster.recordEvent('subscription_deleted', { name });
    void this.markDeletedGroups();
  }

  /**
   * Stores the deletion mark of each deleted subscription's group that does not have it yet, on
   * every partition of its topic; one that fails (a primary down or unreachable) stays listed and
   * is tried again at the next run. Run after each delete, at start and periodically; one run at
   * a time (a delete during a run makes it go round again).
   */
  markDeletedGroups(): Promise<void> {
    if (this.marking !== undefined) {
      this.markAgain = true;
      return this.marking;
    }
    this.marking = (async () => {
      do {
        this.markAgain = false;
        for (const entry of [...this.unmarked]) {
          if (this.closed) return;
          await this.markDeleted(entry);
        }
      } while (this.markAgain && !this.closed);
    })().finally(() => (this.marking = undefined));
    return this.marking;
  }

  /**
   * Stops marking deleted groups and judging the stored URLs: waits for the runs under way (a
   * marking's calls to the brokers, then the store).
   */
  async close(): Promise<void> {
    this.closing.abort();
    await Promise.all([this.targetsJudged, this.marking]);
  }

  private get closed(): boolean {
    return this.closing.signal.aborted;
  }

  private async markDeleted(entry: UnmarkedGroup): Promise<void> {
    const topic = this.options.cluster.topics.get(entry.topic);
    if (topic !== undefined && topic.firstEpoch === entry.topicFirstEpoch) {
      try {
        const left = await this.options.marks.markDeleted(entry.group, entry.topic, DELETED_SUBSCRIPTION_GENERATION, entry.partitions);
        if (left.length > 0) {
          // Offline partitions: the others are marked; these are tried again later.
          if (!this.closed) {
            this.options.logger.warn(
              { group: entry.group, topic: entry.topic, partitions: left },
              'deleted subscription: its group is not marked deleted on every partition yet (no live primary); trying again later',
            );
          }
          this.replaceUnmarked(entry, { ...entry, partitions: left });
          return;
        }
        this.options.logger.info({ group: entry.group, topic: entry.topic }, 'deleted subscription: its group is marked deleted on every partition');
      } catch (error) {
        if (!this.closed) {
          this.options.logger.warn(
            { group: entry.group, topic: entry.topic, err: error },
            'deleted subscription: its group is not marked deleted on every partition yet; trying again later',
          );
        }
        return;
      }
    }
    // Marked, or its topic was deleted since (with the offsets in it).
    this.replaceUnmarked(entry, undefined);
  }

  /** Stores the pending list with `entry` replaced by `next` (none: removed). */
  private replaceUnmarked(entry: UnmarkedGroup, next: UnmarkedGroup | undefined): void {
    const rest = this.unmarked.flatMap((other) => (other.group !== entry.group ? [other] : next === undefined ? [] : [next]));
    this.options.store.transaction(() => this.options.store.setMeta(UNMARKED_GROUPS_META, JSON.stringify(rest)));
    this.unmarked = rest;
  }

  /** What a broker says about the partitions it delivers (every heartbeat). */
  report(brokerId: number, reports: readonly SubscriptionReport[]): void {
    for (const report of reports) {
      if (!this.rows.has(report.name)) continue;
      let byKey = this.reports.get(report.name);
      if (!byKey) this.reports.set(report.name, (byKey = new Map()));
      byKey.set(`${report.partition}/${brokerId}`, { broker: brokerId, report });
    }
  }

  describe(name: string): SubscriptionDescription {
    const subscription = this.get(name);
    const partitions: SubscriptionPartitionStatus[] = [];
    const held = this.reports.get(name);
    const topic = this.options.cluster.topics.get(subscription.topic);
    for (const p of topic?.partitions ?? []) {
      // The current primary's report; else the newest of another broker (the previous primary).
      const candidates = [...(held?.values() ?? [])].filter((entry) => entry.report.partition === p.partition);
      const current = candidates.find((entry) => entry.broker === p.primary) ?? candidates.sort((a, b) => b.report.offset - a.report.offset)[0];
      const r = current?.report;
      partitions.push({
        partition: p.partition,
        broker: current?.broker ?? null,
        offset: r?.offset ?? null,
        highWatermark: r?.highWatermark ?? null,
        lag: r === undefined ? null : Math.max(0, r.highWatermark - r.offset),
        attempts: r?.attempts ?? 0,
        lastStatus: r?.lastStatus ?? null,
        lastError: r?.lastError ?? null,
        delivered: r?.delivered ?? 0,
        deadLettered: r?.deadLettered ?? 0,
      });
    }
    return { ...subscription, lag: partitions.reduce((sum, p) => sum + (p.lag ?? 0), 0), partitions };
  }

  /**
   * Suspends each subscription its creator's access or the target policy no longer covers, and
   * reinstates each both cover again, in one change (one new version for the brokers). Run on
   * every change of the principals or ACLs, and at start.
   */
  checkSuspensions(): void {
    const changed: Array<{ row: SubscriptionRow; problem: string | null }> = [];
    for (const row of this.rows.values()) {
      // The creator's access first: it is what an operator can change without a restart.
      const problem = this.accessProblem(row) ?? this.targetRefusals.get(row.name) ?? null;
      if (problem !== row.suspended_reason) changed.push({ row, problem });
    }
    if (changed.length === 0) return;
    const nowMs = this.nowMs();
    const next = changed.map(({ row, problem }) => ({
      ...row,
      suspended_reason: problem,
      // A suspension whose reason changes (deleted after its ACL was removed) keeps its start.
      suspended_ms: problem === null ? null : (row.suspended_ms ?? nowMs),
    }));
    this.change(() => {
      for (const row of next) this.options.store.saveSubscription(row);
    });
    for (const row of next) {
      const was = this.rows.get(row.name)!;
      this.rows.set(row.name, row);
      const details = { name: row.name, topic: row.topic, createdBy: row.created_by };
      if (was.suspended_reason === null) this.options.cluster.recordEvent('subscription_suspended', { ...details, reason: row.suspended_reason });
      else if (row.suspended_reason === null) this.options.cluster.recordEvent('subscription_reinstated', details);
    }
  }

  /**
   * Moves the version when the target policy differs from the one the brokers were last given
   * (the coordinator was started with another `--subscription-allowed-targets`): the policy
   * travels only in the state they fetch, and they fetch it only on a new version. A database
   * that names no policy yet (a new one, or one of an earlier release) counts as a change too.
   */
  private recordTargetPolicy(): void {
    const { store, targets, logger } = this.options;
    const given = store.getMeta(TARGETS_META);
    if (given === targets.spec) return;
    this.change(() => store.setMeta(TARGETS_META, targets.spec));
    logger.info(
      { allowedTargets: targets.spec, previously: given ?? null, subscriptionsVersion: this.versionNumber },
      'subscription target policy changed: brokers fetch it with their next heartbeat',
    );
  }

  /**
   * Judges every stored subscription's URL against the target policy, as a creation would
   * (resolving its host), at most `START_TARGET_CHECKS` at once. A host that resolves to nothing
   * now, or not within `START_TARGET_CHECK_MS`, gets no new verdict (a DNS failure may pass): it
   * keeps a refusal it was suspended with, and is otherwise left to the brokers, which check the
   * addresses of every connection.
   */
  private async judgeTargets(): Promise<void> {
    const { targets, logger } = this.options;
    const rows = [...this.rows.values()];
    let next = 0;
    const judgeNext = async (): Promise<void> => {
      for (let row = rows[next++]; row !== undefined && !this.closed; row = rows[next++]) {
        const { url } = JSON.parse(row.config) as DeliveryConfig;
        const verdict = await judgeWithin(targets, url, START_TARGET_CHECK_MS, this.closing.signal);
        // Deleted while its host was looked up (and maybe created again under its name, with
        // another URL, judged at its creation): the verdict is of a subscription that is gone.
        if (this.closed || this.rows.get(row.name)?.group_id !== row.group_id) continue;
        if (verdict.allowed) {
          this.targetRefusals.delete(row.name);
          continue;
        }
        if (verdict.unresolved) {
          // No new verdict: an earlier start's stays.
          logger.warn({ subscription: row.name, topic: row.topic, reason: verdict.reason }, 'subscription target not judged at start: its host did not resolve');
          continue;
        }
        // The reason names the host, not the URL: its path and query may hold the receiver's credentials.
        const reason = `${TARGET_REFUSED}${verdict.reason}`;
        this.targetRefusals.set(row.name, reason);
        logger.warn({ subscription: row.name, topic: row.topic, reason }, 'subscription suspended: the target policy refuses its URL');
      }
    };
    await Promise.all(Array.from({ length: Math.min(START_TARGET_CHECKS, rows.length) }, judgeNext));
  }

  /** The topic's partitions once every one's HW is reported, or as they are after END_REPORT_HEARTBEATS heartbeats. */
  private async reportedEnds(topic: string): Promise<TopicDescription['partitions']> {
    const heartbeatMs = this.options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    // Bounded whatever the heartbeat: the caller waits for the answer (a client's requests time out after 10 s).
    const deadline = performance.now() + Math.min(END_REPORT_HEARTBEATS * heartbeatMs, END_REPORT_MAX_WAIT_MS);
    for (;;) {
      const { partitions } = this.options.cluster.describeTopic(topic);
      if (partitions.every((p) => p.highWatermark !== null) || performance.now() >= deadline) return partitions;
      await sleep(Math.min(25, heartbeatMs));
    }
  }

  /** Why the subscription's creator may not have it delivered now, or null when it may. */
  private accessProblem(row: SubscriptionRow): string | null {
    const { access } = this.options;
    switch (row.creator_kind) {
      // Cluster members may call every route.
      case 'member':
        return null;
      case 'anonymous':
        return access.enabled ? 'it was created without authentication, and authentication is on: no principal answers for it' : null;
      case 'principal': {
        const config = JSON.parse(row.config) as DeliveryConfig;
        const needs: Array<{ operation: AclOperation; topic: string }> = [{ operation: 'consume', topic: row.topic }];
        // The brokers write the dead letters on the creator's behalf.
        if (config.deadLetterTopic !== null) needs.push({ operation: 'produce', topic: config.deadLetterTopic });
        return access.refusal(row.created_by, needs);
      }
    }
    throw new Error(`coordinator.db: subscription ${row.name} has creator kind ${String(row.creator_kind)}`);
  }

  /** Everything brokers need to deliver, secrets included (cluster members only); suspended subscriptions are left out. */
  state(): SubscriptionsStateResponse {
    return {
      version: this.versionNumber,
      allowedTargets: this.options.targets.spec,
      subscriptions: [...this.rows.values()].filter((row) => row.suspended_reason === null).map((row) => ({
        ...toSubscription(row),
        secret: row.secret,
        startOffsets: JSON.parse(row.start_offsets) as Record<string, number>,
      })),
    };
  }

  private nowMs(): number {
    return (this.options.nowMs ?? Date.now)();
  }

  private row(name: string): SubscriptionRow {
    const row = this.rows.get(name);
    if (!row) throw new TesseraError('SUBSCRIPTION_NOT_FOUND', `subscription ${name} does not exist`);
    return row;
  }

  /** Stores a change and the next version in one transaction; brokers refetch on the version. */
  private change(write: () => void): void {
    const next = this.versionNumber + 1;
    this.options.store.transaction(() => {
      write();
      this.options.store.setMeta(VERSION_META, String(next));
    });
    this.versionNumber = next;
  }
}

/** `targets.judgeUrl(url)`, or no verdict (unresolved) once `timeoutMs` passed without one or `signal` aborted. */
async function judgeWithin(targets: TargetPolicy, url: string, timeoutMs: number, signal: AbortSignal): Promise<TargetVerdict> {
  const deadline = linkedAbort(signal, timeoutMs);
  const none = new Promise<TargetVerdict>((resolve) => {
    const why = () => (deadline.timedOut ? `its host was not resolved within ${timeoutMs} ms` : 'the coordinator is stopping');
    if (deadline.signal.aborted) resolve({ allowed: false, reason: why(), unresolved: true });
    else deadline.signal.addEventListener('abort', () => resolve({ allowed: false, reason: why(), unresolved: true }), { once: true });
  });
  try {
    return await Promise.race([targets.judgeUrl(url), none]);
  } finally {
    deadline.dispose();
  }
}

function toSubscription(row: SubscriptionRow): Subscription {
  const config = JSON.parse(row.config) as DeliveryConfig;
  return {
    name: row.name,
    topic: row.topic,
    ...config,
    state: row.state as SubscriptionState,
    suspended: row.suspended_reason === null ? null : { reason: row.suspended_reason, sinceMs: row.suspended_ms! },
    group: row.group_id,
    createdMs: row.created_ms,
    createdBy: row.created_by,
  };
}
