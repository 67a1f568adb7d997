/**
 * Consumer groups: join, heartbeat, leave, session timeouts, listing. The protocol
 * itself is in membership.ts; this module validates, persists and answers.
 */
import { randomUUID } from 'node:crypto';
import {
  DEFAULT_GROUP_HEARTBEAT_MS,
  TesseraError,
  type GroupDescription,
  type GroupListResponse,
  type GroupMembership,
  type GroupHeartbeatRequest,
  type JoinGroupRequest,
  type LeaveGroupRequest,
} from '@tessera/protocol';
import type { GroupState } from '../model.js';
import type { Store, LoadedState } from '../store/store.js';
import { acknowledge, addMember, change, claim, ownedBy, removeMember } from './membership.js';

export interface GroupDeps {
  store: Store;
  /** Partition count of a topic, or null when it does not exist. */
  partitionCount(topic: string): number | null;
  defaultSessionTimeoutMs: number;
  /** Monotonic milliseconds. */
  nowMs(): number;
  /** Wall clock (ms since the Unix epoch), for how long a group has been empty (days, across restarts). */
  wallMs(): number;
  /** A group without members this long is deleted with its offsets (`expiredGroups`); -1: never. */
  retentionMs: number;
  onRebalance(group: string, generation: number): void;
}

/** Most members one group may have: every member costs work on each change. */
const MAX_MEMBERS_PER_GROUP = 1_000;

export class GroupManager {
  private readonly groups = new Map<string, GroupState>();
  /**
   * Groups whose offsets the coordinator is rewriting (a reset or a delete): nobody may join
   * them until it is done, so no member reads offsets the operation is about to replace.
   */
  private readonly exclusive = new Set<string>();

  constructor(
    private readonly deps: GroupDeps,
    loaded: LoadedState['groups'],
  ) {
    const now = deps.nowMs();
    for (const g of loaded) {
      const group: GroupState = {
        ...g,
        // A restart gives every member a full session timeout of grace.
        members: new Map(g.members.map((m) => [m.memberId, { ...m, lastHeartbeatMs: now }])),
      };
      this.groups.set(g.group, group);
      // Stored before groups expired: empty from now on.
      if (group.members.size === 0 && group.emptySinceMs === null) this.save(group);
    }
  }

  join(groupId: string, request: JoinGroupRequest): GroupMembership {
    const count = this.deps.partitionCount(request.topic);
    if (count === null) throw new TesseraError('TOPIC_NOT_FOUND', `topic ${request.topic} does not exist`);
    if (this.exclusive.has(groupId)) {
      throw new TesseraError('UNAVAILABLE', `group ${groupId} is having its offsets reset or deleted; retry shortly`);
    }
    let group = this.groups.get(groupId);
    if (group) this.moveIfEmpty(group, request.topic);
    if (group && group.topic !== request.topic) {
      throw new TesseraError(
        'INVALID_REQUEST',
        `group ${groupId} consumes topic ${group.topic}, not ${request.topic} (one topic per group)`,
      );
    }
    group ??= this.newGroup(groupId, request.topic);
    const sessionTimeoutMs = request.sessionTimeoutMs ?? this.deps.defaultSessionTimeoutMs;
    const existing = request.memberId === undefined ? undefined : group.members.get(request.memberId);
    const before = group.generation;
    const memberId = existing?.memberId ?? request.memberId ?? `${(request.clientId || 'member').slice(0, 100)}-${randomUUID()}`;
    if (existing) {
      // A rejoin of a live member: same member, same holdings; it only refreshes its settings.
      existing.lastHeartbeatMs = this.deps.nowMs();
      existing.sessionTimeoutMs = sessionTimeoutMs;
      if (request.clientId !== undefined) existing.clientId = request.clientId;
    } else {
      if (group.members.size >= MAX_MEMBERS_PER_GROUP) {
        throw new TesseraError('INVALID_REQUEST', `group ${groupId} already has ${MAX_MEMBERS_PER_GROUP} members`);
      }
      addMember(group, count, {
        memberId,
        clientId: request.clientId ?? null,
        sessionTimeoutMs,
        lastHeartbeatMs: this.deps.nowMs(),
        ackedGeneration: 0,
      });
    }
    return this.answer(group, memberId, true, before);
  }

  heartbeat(groupId: string, request: GroupHeartbeatRequest): GroupMembership {
    const group = this.requireMember(groupId, request.memberId);
    const member = group.members.get(request.memberId)!;
    member.lastHeartbeatMs = this.deps.nowMs();
    const before = group.generation;
    const changed = acknowledge(group, this.partitionCountOf(group), request.memberId, request.generation);
    return this.answer(group, request.memberId, changed, before);
  }

  leave(groupId: string, request: LeaveGroupRequest): void {
    const group = this.groups.get(groupId);
    if (!group) throw new TesseraError('GROUP_NOT_FOUND', `group ${groupId} does not exist`);
    // Leaving twice is harmless: the member is gone either way.
    if (removeMember(group, this.partitionCountOf(group), request.memberId)) this.persist(group, true);
  }

  /** Removes every member whose session timed out; returns how many were removed. */
  expireSessions(): number {
    const now = this.deps.nowMs();
    let removed = 0;
    for (const group of this.groups.values()) {
      for (const member of [...group.members.values()]) {
        if (now - member.lastHeartbeatMs > member.sessionTimeoutMs) {
          removeMember(group, this.partitionCountOf(group), member.memberId);
          removed++;
          this.persist(group, true);
        }
      }
    }
    return removed;
  }

  /** Restarts every member's session clock (the coordinator was not running for a while). */
  extendGrace(): void {
    const now = this.deps.nowMs();
    for (const group of this.groups.values()) for (const m of group.members.values()) m.lastHeartbeatMs = Math.max(m.lastHeartbeatMs, now);
  }

  /** A topic was created or deleted: groups on it follow its new partition count. */
  topicChanged(topic: string): void {
    for (const group of this.groups.values()) {
      if (group.topic !== topic) continue;
      const before = group.generation;
      // An empty change refits the partitions and rebalances; it bumps the generation only if assignments changed.
      change(group, this.partitionCountOf(group), () => false);
      this.persist(group, group.generation !== before);
    }
  }

  /**
   * Groups empty for the group retention, oldest first, that no reset or delete holds: the
   * coordinator deletes each with its offsets (`GroupOffsetAdmin.delete`), as Kafka expires the
   * offsets of a group that has been empty for `offsets.retention.minutes`.
   */
  expiredGroups(): string[] {
    return [...this.groups.values()]
      .filter((g) => this.isExpired(g.group))
      .sort((a, b) => a.emptySinceMs! - b.emptySinceMs!)
      .map((g) => g.group);
  }

  /**
   * Whether the group is expired now. Asked again right before each deletion: a member may have
   * come and gone (or a reset written offsets) while earlier groups of the same look were deleted.
   */
  isExpired(groupId: string): boolean {
    const group = this.groups.get(groupId);
    if (group === undefined || this.deps.retentionMs < 0) return false;
    return (
      group.members.size === 0 &&
      group.emptySinceMs !== null &&
      this.deps.wallMs() - group.emptySinceMs >= this.deps.retentionMs &&
      !this.exclusive.has(groupId)
    );
  }

  generations(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const g of this.groups.values()) out[g.group] = g.generation;
    return out;
  }

  list(): GroupListResponse {
    return {
      groups: [...this.groups.values()]
        .sort((a, b) => (a.group < b.group ? -1 : 1))
        .map((g) => ({ group: g.group, topic: g.topic, generation: g.generation, members: g.members.size, emptySinceMs: g.emptySinceMs })),
    };
  }

  describe(groupId: string): GroupDescription {
    const group = this.groups.get(groupId);
    if (!group) throw new TesseraError('GROUP_NOT_FOUND', `group ${groupId} does not exist`);
    return {
      group: group.group,
      topic: group.topic,
      generation: group.generation,
      members: [...group.members.values()].map((m) => ({
        memberId: m.memberId,
        clientId: m.clientId,
        partitions: ownedBy(group, m.memberId),
      })),
      // Owners may run past the topic's partitions (held until acknowledged): only real ones are unassigned.
      unassigned: group.owner.slice(0, this.partitionCountOf(group)).flatMap((o, p) => (o === null ? [p] : [])),
    };
  }

  /** GROUP_NOT_EMPTY while the group has live members (an operation on its offsets must wait). */
  assertEmpty(groupId: string): void {
    const group = this.groups.get(groupId);
    if (group !== undefined && group.members.size > 0) {
      throw new TesseraError(
        'GROUP_NOT_EMPTY',
        `group ${groupId} has ${group.members.size} live member(s); stop them (or wait for their session timeout) first`,
      );
    }
  }

  private newGroup(groupId: string, topic: string): GroupState {
    const group: GroupState = { group: groupId, topic, generation: 0, members: new Map(), owner: [], target: [], emptySinceMs: null };
    this.groups.set(groupId, group);
    return group;
  }

  /** An empty group may move to another topic; its generation keeps counting up, so old commits stay fenced. */
  private moveIfEmpty(group: GroupState, topic: string): void {
    if (group.topic === topic || group.members.size > 0) return;
    group.topic = topic;
    group.owner = [];
    group.target = [];
  }

  /**
   * Takes a group for an operation on its committed offsets (reset, delete): refused while it
   * has members (GROUP_NOT_EMPTY) or another such operation runs; joins are refused until
   * `release`. Bumps and persists the generation, which the operation stores its offsets with,
   * so every commit of an earlier generation (a member that was dropped but still runs) is
   * refused by the partitions from then on. `create` makes an empty group on `topic` when there
   * is none (a reset before any member joined); an empty group may move to `topic`, like a join.
   * `touch`: offsets are about to be written, so the group counts as empty from now on (a reset
   * made for consumers about to start must not expire at the next look).
   */
  takeExclusive(groupId: string, options: { topic?: string; create: boolean; touch?: boolean }): number {
    if (this.exclusive.has(groupId)) {
      throw new TesseraError('UNAVAILABLE', `group ${groupId} is having its offsets reset or deleted already; retry shortly`);
    }
    let group = this.groups.get(groupId);
    if (group === undefined) {
      if (!options.create || options.topic === undefined) throw new TesseraError('GROUP_NOT_FOUND', `group ${groupId} does not exist`);
      group = this.newGroup(groupId, options.topic);
    }
    this.assertEmpty(groupId);
    if (options.topic !== undefined) this.moveIfEmpty(group, options.topic);
    group.generation++;
    if (options.touch === true) group.emptySinceMs = this.deps.wallMs();
    this.save(group);
    this.exclusive.add(groupId);
    return group.generation;
  }

  release(groupId: string): void {
    this.exclusive.delete(groupId);
  }

  /** Deletes an empty group held with `takeExclusive` (its offsets are already deleted on the brokers). */
  remove(groupId: string): void {
    const group = this.groups.get(groupId);
    if (group === undefined) return;
    // Why assert: takeExclusive refused members and held joins off since.
    if (!this.exclusive.has(groupId) || group.members.size > 0) throw new Error(`remove: group ${groupId} is not held empty`);
    this.groups.delete(groupId);
    this.deps.store.deleteGroup(groupId);
  }

  /** For tests and metrics: the live state of one group. */
  get(groupId: string): GroupState | undefined {
    return this.groups.get(groupId);
  }

  private requireMember(groupId: string, memberId: string): GroupState {
    const group = this.groups.get(groupId);
    if (!group) throw new TesseraError('GROUP_NOT_FOUND', `group ${groupId} does not exist: join it`);
    if (!group.members.has(memberId)) {
      throw new TesseraError('UNKNOWN_MEMBER', `member ${memberId} is not in group ${groupId} (session expired or left): rejoin`);
    }
    return group;
  }

  private partitionCountOf(group: GroupState): number {
    return this.deps.partitionCount(group.topic) ?? 0;
  }

  private answer(group: GroupState, memberId: string, changed: boolean, generationBefore: number): GroupMembership {
    const { assignment, changed: claimed } = claim(group, memberId);
    if (changed || claimed || group.generation !== generationBefore) this.persist(group, group.generation !== generationBefore);
    const member = group.members.get(memberId)!;
    return {
      group: group.group,
      topic: group.topic,
      memberId,
      generation: group.generation,
      assignment,
      members: group.members.size,
      sessionTimeoutMs: member.sessionTimeoutMs,
      heartbeatMs: Math.max(1, Math.min(DEFAULT_GROUP_HEARTBEAT_MS, Math.floor(member.sessionTimeoutMs / 3))),
    };
  }

  private persist(group: GroupState, rebalanced: boolean): void {
    this.save(group);
    if (rebalanced) this.deps.onRebalance(group.group, group.generation);
  }

  /** Stores the group, noting since when it has been empty (kept while it stays empty). */
  private save(group: GroupState): void {
    group.emptySinceMs = group.members.size > 0 ? null : (group.emptySinceMs ?? this.deps.wallMs());
    this.deps.store.saveGroup(group);
  }
}
