/**
 * The consumer: a member of a consumer group that reads the partitions the coordinator
 * assigns it.
 *
 * Group protocol (cooperative, see the contract): the member joins, then heartbeats
 * every `heartbeatMs` carrying the generation whose assignment it has APPLIED. A new
 * generation is applied between two rounds of work (at the start of `poll()`, or
 * between two handled batches in `subscribe()`), never while records of a partition are
 * being handled: partitions taken away stop being fetched, their processed offsets are
 * committed, and only then does the next heartbeat report the new generation, which
 * lets the coordinator hand them to their next owner. So two members never process one
 * partition at the same time.
 *
 * Code: `membership.ts` (join, heartbeats, applied generation), `poll-loop.ts` and `fetcher.ts` (long-polls
 * of RecordBatch frames), `offsets.ts` (start offsets, commits), `runner.ts` (the
 * `subscribe()` loop); this file is the public face and the rounds of work.
 *
 * Data path: for each assigned partition the start offset is the group's committed
 * offset (or a `seek()`), else the `startAt` position (`positions.ts`). Records are
 * fetched as RecordBatches with long-polls (`fetcher.ts`), one request per primary broker
 * covering all its partitions; a request outlives a `poll()` that ended first, and its
 * records wait in a bounded per-partition buffer (a partition with buffered records is
 * not fetched again). As soon as a poll empties a partition's buffer its next fetch
 * starts, while the records are being handled; `subscribe()` commits in the background,
 * so neither a commit nor a fetch round trip sits between a record's arrival and the
 * next fetch.
 */
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { groupId, MAX_PARTITIONS, parseOrThrow, TesseraError, topicName } from '@tessera/protocol';
import { needsMetadataRefresh, type RoutedPartition } from '../cluster/metadata-cache.js';
import { groupByPrimary } from './routing.js';
import { Wakeup } from '../internal/signal.js';
import type { ConsumedRecord } from '../records.js';
import { Membership } from './membership.js';
import { Offsets, setStart } from './offsets.js';
import { checkedInteger, checkedOffset, startPosition, type OffsetReset, type StartAt } from './positions.js';
import { maxOffset, newPartitionState, type PartitionState } from './partition-state.js';
import { RecordFeed } from './poll-loop.js';
import { SubscriptionRunner, type RecordHandler } from './runner.js';
import { withDeadLetters, type SubscribeOptions } from './dead-letter.js';
import type { Producer } from '../producer/producer.js';
import type { ClientParts } from '../internal/client-parts.js';

/**
 * How often `subscribe()` commits in the background, at most. Every commit is a request to
 * each primary and a write in its group commit, where produce writes wait behind it: after
 * every handled batch, a consumer reading 5,000 records/s sent about two commits for every
 * three produce requests of its producer (`docs/operations.md`, "Commits at most every 100 ms").
 */
export const DEFAULT_COMMIT_INTERVAL_MS = 100;

/** What a consumer reads and how. */
export interface ConsumerOptions {
  /** The consumer group; its members share the topic's partitions. */
  group: string;
  /** The topic the group reads (one topic per group). */
  topic: string;
  /**
   * Where to start on a partition the group never committed: `'earliest'` (the oldest
   * retained record), `'latest'` (the high watermark at assignment: only records produced
   * from then on; the default), or `{ timestamp }` (the first record whose timestamp, epoch
   * ms, is at or after it).
   */
  startAt?: StartAt;
  /** The older spelling of `startAt: 'earliest'`. */
  fromBeginning?: boolean;
  /**
   * When the position is below the log start (records deleted by retention or a purge):
   * `'earliest'` (default) goes on from the oldest record left, `'latest'` jumps to the high
   * watermark, `'error'` makes `poll()` throw (and `subscribe()` reject with)
   * `OFFSET_OUT_OF_RANGE` until `seek()` moves the position.
   */
  offsetReset?: OffsetReset;
  /** Most records one `poll()` returns (default 1000). */
  maxRecords?: number;
  /** How long a `poll()` waits for records when none are there (long-poll, default 1000 ms). */
  waitMs?: number;
  /**
   * The least time between two background commits of `subscribe()` (default
   * DEFAULT_COMMIT_INTERVAL_MS, 100 ms; 0 commits after every handled batch). Records handled
   * meanwhile go in the next commit. `close()`, a partition taken away and a handler that
   * threw commit at once whatever it says, so it bounds only what a crash delivers again.
   */
  commitIntervalMs?: number;
  /** The member is dropped after this long without a heartbeat (coordinator default when absent). */
  sessionTimeoutMs?: number;
  /** A name shown in group listings (default `host-pid`). */
  clientId?: string;
}

export type { ConsumedRecord };

/** What a consumer needs from the client that made it. */
export interface ConsumerContext extends ClientParts {
  onClose(consumer: Consumer): void;
  /** A producer of the same client, for dead letters (`subscribe(handler, { deadLetterTopic })`). */
  producer?: () => Producer;
}

/**
 * A member of a consumer group. Make one with `client.consumer()`, then either call
 * `poll()` in a loop (and `commit()`), or `subscribe(handler)` once. Keys, values and
 * header values are Buffers (`record.value?.toString()` for text, `codecs.json.decode`).
 *
 * Events: `'assigned'` (partitions: number[]), `'revoked'` (partitions: number[]),
 * `'error'` (error) for problems it recovers from by itself; without an `'error'`
 * listener those are dropped.
 */
export class Consumer extends EventEmitter {
  private readonly topic: string;
  private readonly maxRecords: number;
  private readonly waitMs: number;
  private readonly commitIntervalMs: number;
  private readonly owned = new Map<number, PartitionState>();
  private readonly membership: Membership;
  private readonly offsets: Offsets;
  private readonly feed: RecordFeed;
  /** Wakes a waiting `poll()`: a fetch finished, the membership changed, or close(). */
  private readonly wakeup = new Wakeup();
  private readonly abort = new AbortController();
  /** Seeks on partitions not owned (yet): applied once, when the partition is assigned here. */
  private readonly pendingSeeks = new Map<number, number>();

  private readonly group: string;
  private busy = false;
  /** The `poll()` running now, which close() lets finish (it may be joining the group). */
  private polling: Promise<unknown> | null = null;
  private subscription: Promise<void> | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;

  /** @internal Use `TesseraClient.consumer()`. */
  constructor(
    private readonly context: ConsumerContext,
    options: ConsumerOptions,
  ) {
    super();
    const group = parseOrThrow(groupId, options.group, 'group id');
    this.group = group;
    this.topic = parseOrThrow(topicName, options.topic, 'topic name');
    this.maxRecords = positive('maxRecords', options.maxRecords ?? 1000);
    this.waitMs = nonNegative('waitMs', options.waitMs ?? 1000);
    this.commitIntervalMs = nonNegative('commitIntervalMs', options.commitIntervalMs ?? DEFAULT_COMMIT_INTERVAL_MS);
    const isClosed = () => this.closed;
    this.membership = new Membership({
      group,
      joinRequest: {
        topic: this.topic,
        clientId: options.clientId ?? `${hostname()}-${process.pid}`,
        ...(options.sessionTimeoutMs === undefined ? {} : { sessionTimeoutMs: options.sessionTimeoutMs }),
      },
      connection: context.connection,
      retry: context.retry,
      signal: this.abort.signal,
      isClosed,
      onChange: () => this.wakeup.notify(),
      onError: (error) => this.emitError(error),
    });
    const groupByPrimary = (partitions: number[]) => this.groupByPrimary(partitions);
    const onPartitionError = (error: unknown) => this.onPartitionError(error);
    this.offsets = new Offsets({
      group,
      topic: this.topic,
      startAt: startPosition(options),
      owned: this.owned,
      connection: context.connection,
      metadata: context.metadata,
      retry: context.retry,
      member: () => this.membership.committer,
      heartbeat: () => this.membership.heartbeat(),
      groupByPrimary,
      onPartitionError,
    });
    this.feed = new RecordFeed(context, {
      topic: this.topic,
      offsetReset: options.offsetReset,
      maxRecords: this.maxRecords,
      waitMs: this.waitMs,
      owned: this.owned,
      wakeup: this.wakeup,
      signal: this.abort.signal,
      isClosed,
      beforeRound: () => this.sync(),
      onPartitionError,
      onError: (error) => this.emitError(error),
    });
  }

  /**
   * Returns the next records (up to `maxRecords`), waiting up to `waitMs` when there are
   * none. The first call joins the group. A plain `commit()` commits past everything
   * returned so far. Calling `poll()` again marks the records of the previous call as
   * handled, and only handled (or explicitly committed) records are committed by
   * `close()` and when a partition is taken away, so records returned by the last poll
   * and never committed come again (at-least-once). Not to be called concurrently or
   * while `subscribe()` runs; after `close()` it returns no records.
   */
  async poll(options: { maxRecords?: number; waitMs?: number } = {}): Promise<ConsumedRecord[]> {
    if (this.closed) return [];
    if (this.busy) throw new TesseraError('INVALID_REQUEST', 'poll() is already running (or subscribe() is)');
    const maxRecords = positive('maxRecords', options.maxRecords ?? this.maxRecords);
    const waitMs = nonNegative('waitMs', options.waitMs ?? this.waitMs);
    this.busy = true;
    for (const state of this.owned.values()) state.consumedOffset = maxOffset(state.consumedOffset, state.returnedOffset);
    const polling = this.nextRecords(maxRecords, waitMs, true);
    this.polling = polling;
    try {
      return await polling;
    } catch (error) {
      // close() cut this poll short: it returns no records, as a poll after close() does.
      if (this.closed) return [];
      throw error;
    } finally {
      this.busy = false;
      this.polling = null;
    }
  }

  /**
   * Commits the group's next offsets after `records` (by default after everything
   * `poll()` returned or the handler handled so far), on each partition's primary, for
   * the partitions this member still owns.
   */
  async commit(records?: ConsumedRecord[]): Promise<void> {
    const offsets = new Map<number, number>();
    if (records === undefined) {
      for (const state of this.owned.values()) {
        const offset = maxOffset(state.consumedOffset, state.returnedOffset);
        if (offset !== null) offsets.set(state.partition, offset);
      }
    } else {
      for (const record of records) {
        if (record.topic !== this.topic) continue;
        offsets.set(record.partition, Math.max(offsets.get(record.partition) ?? 0, record.offset + 1));
      }
    }
    // What the caller commits, it has handled.
    for (const [partition, offset] of offsets) {
      const state = this.owned.get(partition);
      if (state !== undefined) state.consumedOffset = maxOffset(state.consumedOffset, offset);
    }
    await this.offsets.commit(offsets);
  }

  /**
   * Feeds every record to `handler` until `close()`: records of one partition one after
   * the other in offset order (partitions side by side), committing handled records in
   * the background. Resolves when the consumer is closed; rejects on a fatal error — a
   * non-retriable one, or a handler that threw (what was handled before is committed,
   * the failed record will be delivered again). With `maxAttempts` the handler is tried that
   * often per record; with `deadLetterTopic` a record that still fails is produced there with
   * headers saying why (`DEAD_LETTER_HEADERS`) and the subscription goes on.
   */
  subscribe(handler: RecordHandler, options: SubscribeOptions = {}): Promise<void> {
    let dead: Producer | undefined;
    try {
      handler = withDeadLetters(handler, options, {
        group: this.group,
        retry: this.context.retry,
        signal: this.abort.signal,
        producer: () => {
          if (!this.context.producer) throw new TesseraError('INVALID_REQUEST', 'dead letters need a consumer made by TesseraClient.consumer()');
          return (dead ??= this.context.producer());
        },
      });
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.subscription !== null || this.busy) {
      return Promise.reject(new TesseraError('INVALID_REQUEST', 'the consumer is already subscribed or polling'));
    }
    if (this.closed) return Promise.resolve();
    this.busy = true;
    const runner = new SubscriptionRunner(
      {
        owned: this.owned,
        retry: this.context.retry,
        signal: this.abort.signal,
        commitIntervalMs: this.commitIntervalMs,
        isClosed: () => this.closed,
        nextRecords: () => this.nextRecords(this.maxRecords, this.waitMs, false),
        commitHandled: () => this.commitHandled(),
        rewind: (state, offset) => this.rewind(state, offset),
        onError: (error) => this.emitError(error),
      },
      handler,
    );
    this.subscription = runner.run().finally(async () => {
      this.busy = false;
      await dead?.close();
    });
    return this.subscription;
  }

  /**
   * Makes `offset` the next record read from `partition`: the next fetch starts there and the
   * records already fetched of that partition are dropped (a `subscribe()` handler finishes the
   * records it was given). What was consumed before is not committed by the seek; the next
   * commit stores the new position. On a partition this member does not own (yet), the seek
   * applies when it is assigned here. An offset outside the log is handled like any position
   * outside it (see `offsetReset`).
   */
  seek(topic: string, partition: number, offset: number): void {
    if (topic !== this.topic) throw new TesseraError('INVALID_REQUEST', `this consumer reads topic ${this.topic}, not ${topic}`);
    // Bounded like the partitions of a topic, so pending seeks are too.
    checkedInteger('partition', partition, 0, MAX_PARTITIONS - 1);
    checkedOffset(offset);
    const state = this.owned.get(partition);
    if (state === undefined) {
      this.pendingSeeks.set(partition, offset);
      return;
    }
    this.rewind(state, offset);
    state.consumedOffset = offset;
    state.returnedOffset = offset;
    state.committedOffset = null;
    state.seeks++;
    state.positionError = null;
    // A waiting poll looks again (the partition may be fetchable now).
    this.wakeup.notify();
  }

  /** The partitions this member owns now, in order. */
  assignment(): number[] {
    return [...this.owned.keys()].sort((a, b) => a - b);
  }

  /**
   * Stops fetching, waits for the handler's batch (or a poll under way: a join it started is
   * answered first, up to the client's request timeout, so the member can leave), commits what
   * was consumed, and leaves the group.
   */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closed = true;
    this.closing = (async () => {
      this.abort.abort();
      this.wakeup.notify();
      if (this.subscription !== null) await this.subscription.catch(() => undefined);
      if (this.polling !== null) await this.polling.catch(() => undefined);
      if (this.membership.memberId !== null && !this.membership.lost) {
        try {
          await this.commitHandled();
        } catch (error) {
          this.emitError(error);
        }
        await this.membership.leave();
      }
      await this.membership.stopped();
      this.owned.clear();
      this.context.onClose(this);
    })();
    return this.closing;
  }

  // ---- rounds of work ---------------------------------------------------------------

  /** One round of `poll()`: apply membership changes, then hand out buffered or freshly fetched records. */
  private nextRecords(maxRecords: number, waitMs: number, markConsumed: boolean): Promise<ConsumedRecord[]> {
    return this.feed.next(maxRecords, waitMs, markConsumed);
  }

  /** Commits the handled records of every owned partition. */
  private commitHandled(): Promise<void> {
    const offsets = new Map<number, number>();
    for (const state of this.owned.values()) {
      if (state.consumedOffset !== null) offsets.set(state.partition, state.consumedOffset);
    }
    return this.offsets.commit(offsets);
  }

  /** Makes `offset` the next record of the partition to fetch and hand out. */
  private rewind(state: PartitionState, offset: number): void {
    state.buffer = [];
    state.fetchOffset = offset;
  }

  // ---- membership -------------------------------------------------------------------

  /** Joins (or rejoins) when needed, applies the latest assignment, and finds start offsets. */
  private async sync(): Promise<void> {
    if (this.membership.needsJoin) {
      if (this.membership.lost) {
        // The coordinator dropped this member, so its partitions may already be someone
        // else's: stop at once, and commit nothing (it would be refused or overwrite theirs).
        const lost = this.assignment();
        this.owned.clear();
        if (lost.length > 0) this.safeEmit('revoked', lost);
      }
      await this.membership.join();
    }
    const unapplied = this.membership.unapplied;
    if (unapplied !== null) await this.apply(unapplied);
    await this.offsets.initPositions();
  }

  /**
   * Applies an assignment: revoked partitions stop, get their consumed offsets committed
   * and are dropped; new ones are added (start offsets found later). Only then is the
   * generation marked applied and reported, so the coordinator never hands a partition on
   * before this member has let go of it.
   */
  private async apply(membership: { memberId: string; generation: number; assignment: number[] }): Promise<void> {
    const target = new Set(membership.assignment);
    const revoked = this.assignment().filter((partition) => !target.has(partition));
    if (revoked.length > 0) {
      for (const partition of revoked) this.owned.get(partition)!.buffer = [];
      const offsets = new Map<number, number>();
      for (const partition of revoked) {
        const consumed = this.owned.get(partition)!.consumedOffset;
        if (consumed !== null) offsets.set(partition, consumed);
      }
      try {
        await this.offsets.commit(offsets);
      } catch (error) {
        // Not fatal: the next owner starts from the last commit and sees some records again.
        this.emitError(error);
      }
      for (const partition of revoked) this.owned.delete(partition);
      this.safeEmit('revoked', revoked);
    }
    if (this.membership.lost || this.membership.current?.memberId !== membership.memberId) return; // Rejoin in the next round.
    const added = membership.assignment.filter((partition) => !this.owned.has(partition)).sort((a, b) => a - b);
    for (const partition of added) {
      const state = newPartitionState(partition);
      const sought = this.pendingSeeks.get(partition);
      if (sought !== undefined) {
        // Starts where the application asked instead of at the committed offset.
        this.pendingSeeks.delete(partition);
        setStart(state, sought, null);
      }
      this.owned.set(partition, state);
    }
    this.membership.applied(membership.generation);
    if (added.length > 0) this.safeEmit('assigned', added);
  }

  // ---- routing ----------------------------------------------------------------------

  /** Groups partitions by their primary's URL; partitions without a known primary are left out (and metadata refreshed). */
  private groupByPrimary(partitions: number[]): Promise<Map<string, RoutedPartition[]>> {
    return groupByPrimary(this.context.metadata, this.topic, partitions, {
      onError: (error) => this.emitError(error),
      onPartitionError: (error) => this.onPartitionError(error),
    });
  }

  /** A routing problem (moved primary, dead broker, ...): refresh the map in the background; report the rest. */
  private onPartitionError(error: unknown): void {
    if (needsMetadataRefresh(error)) this.context.metadata.refreshInBackground();
    else this.emitError(error);
  }

  private emitError(error: unknown): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }

  /** Emits an event; a listener that throws must not break the consumer's state. */
  private safeEmit(event: 'assigned' | 'revoked', partitions: number[]): void {
    try {
      this.emit(event, partitions);
    } catch (error) {
      this.emitError(error);
    }
  }
}

function positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new TesseraError('INVALID_REQUEST', `${name} must be a positive integer, got ${value}`);
  return value;
}

function nonNegative(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0) throw new TesseraError('INVALID_REQUEST', `${name} must be a non-negative integer, got ${value}`);
  return value;
}
