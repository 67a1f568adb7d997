/**
 * The consumer's membership of its group: joining (and rejoining as a new member when the
 * coordinator forgot the old one), the heartbeat loop, and the generation this member has
 * APPLIED, which every heartbeat reports. The coordinator hands a partition to its next
 * owner only after the previous owner reported a generation without it.
 */
import {
  COORDINATOR_ROUTES,
  DEFAULT_GROUP_HEARTBEAT_MS,
  isTesseraError,
  retry,
  TesseraError,
  type GroupMembership,
  type JoinGroupRequest,
  type RetryOptions,
} from '@tessera/protocol';
import type { Connection } from '../connection/connection.js';
import { delay } from '../internal/signal.js';

export interface MembershipContext {
  group: string;
  joinRequest: Omit<JoinGroupRequest, 'memberId'>;
  connection: Connection;
  retry: RetryOptions;
  signal: AbortSignal;
  isClosed(): boolean;
  /** The membership changed (a new generation, or this member was dropped): look again now. */
  onChange(): void;
  onError(error: unknown): void;
}

export class Membership {
  memberId: string | null = null;
  /** The latest membership the coordinator answered (join or heartbeat). */
  current: GroupMembership | null = null;
  /** The generation whose assignment this member has applied; what heartbeats report. */
  appliedGeneration: number | null = null;
  /** Set when the coordinator no longer knows this member: everything owned is lost, rejoin. */
  lost = false;
  private heartbeatMs = DEFAULT_GROUP_HEARTBEAT_MS;
  private heartbeatLoop: Promise<void> | null = null;
  /** Set while heartbeats fail, so a long coordinator outage reports one 'error', not one per beat. */
  private heartbeatFailing = false;
  /**
   * Counts joins. A heartbeat answered after a join that came later (the coordinator keeps a
   * rejoining member's id) speaks of a membership that is over, and is ignored.
   */
  private joins = 0;

  constructor(private readonly context: MembershipContext) {}

  get needsJoin(): boolean {
    return this.memberId === null || this.lost;
  }

  /** A membership whose assignment is not applied yet, or null. */
  get unapplied(): GroupMembership | null {
    return this.current !== null && this.current.generation !== this.appliedGeneration ? this.current : null;
  }

  /** The member and generation commits are made as. */
  get committer(): { memberId: string; generation: number } | null {
    return this.memberId === null || this.current === null ? null : { memberId: this.memberId, generation: this.current.generation };
  }

  /** Joins (as the same member when the coordinator still knows it), retrying per the client's policy. */
  async join(): Promise<void> {
    let memberId = this.memberId;
    const membership = await retry(
      async () => {
        try {
          return await this.context.connection.coordinator<GroupMembership>(
            'POST',
            COORDINATOR_ROUTES.groupJoin,
            { group: this.context.group },
            { ...this.context.joinRequest, ...(memberId === null ? {} : { memberId }) },
            // Not cut short by close(): a join the coordinator took must be answered, so that the
            // member can leave instead of holding its partitions until its session times out.
          );
        } catch (error) {
          // The coordinator forgot the old id: join as a new member.
          if (isTesseraError(error, 'UNKNOWN_MEMBER') && memberId !== null) {
            memberId = null;
            throw new TesseraError('UNAVAILABLE', 'rejoining as a new member', {}, { cause: error });
          }
          throw error;
        }
      },
      { ...this.context.retry, signal: this.context.signal },
    );
    this.joins++;
    this.memberId = membership.memberId;
    this.current = membership;
    this.appliedGeneration = null;
    this.lost = false;
    this.heartbeatMs = membership.heartbeatMs;
    this.heartbeatLoop ??= this.runHeartbeats();
  }

  /** The assignment of `generation` is applied: report it now rather than at the next beat (others may be waiting for it). */
  applied(generation: number): void {
    this.appliedGeneration = generation;
    void this.heartbeat();
  }

  /** One heartbeat carrying the applied generation; never throws. */
  async heartbeat(): Promise<void> {
    const memberId = this.memberId;
    const generation = this.appliedGeneration;
    const joins = this.joins;
    if (memberId === null || generation === null || this.lost || this.context.isClosed()) return;
    try {
      const membership = await this.context.connection.coordinator<GroupMembership>(
        'POST',
        COORDINATOR_ROUTES.groupHeartbeat,
        { group: this.context.group },
        { memberId, generation },
      );
      if (joins !== this.joins || this.lost) return;
      if (this.current !== null && membership.generation < this.current.generation) return; // An older answer overtaken.
      this.current = membership;
      this.heartbeatMs = membership.heartbeatMs;
      this.heartbeatFailing = false;
      if (membership.generation !== this.appliedGeneration) this.context.onChange();
    } catch (error) {
      if (joins !== this.joins || this.context.isClosed()) return;
      if (isTesseraError(error, 'UNKNOWN_MEMBER') || isTesseraError(error, 'GROUP_NOT_FOUND')) {
        this.lost = true;
        this.context.onChange();
      }
      // Anything else (the coordinator is down, most likely) changes nothing: keep consuming
      // what this member owns, and try again at the next beat.
      if (!this.heartbeatFailing) this.context.onError(error);
      this.heartbeatFailing = true;
    }
  }

  /** Leaves the group (a courtesy: the coordinator drops a silent member after its session timeout anyway). */
  async leave(): Promise<void> {
    if (this.memberId === null || this.lost) return;
    try {
      await this.context.connection.coordinator('POST', COORDINATOR_ROUTES.groupLeave, { group: this.context.group }, { memberId: this.memberId });
    } catch {
      // See above: nothing to do.
    }
  }

  /** Resolves when the heartbeat loop has ended (after close). */
  async stopped(): Promise<void> {
    await this.heartbeatLoop;
  }

  private async runHeartbeats(): Promise<void> {
    while (!this.context.isClosed()) {
      await delay(this.heartbeatMs, this.context.signal, { unref: true });
      if (this.context.isClosed()) break;
      await this.heartbeat();
    }
  }
}
