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
 * Data path: for each assigned partition the start offset is the group's committed
 * offset, else the log start (`fromBeginning`) or the high watermark. Records are
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
import {
  backoffMs,
  BROKER_ROUTES,
  COORDINATOR_ROUTES,
  DEFAULT_GROUP_HEARTBEAT_MS,
  groupId,
  isRetriable,
  isTesseraError,
  parseOrThrow,
  retry,
  TesseraError,
  topicName,
  type CommitResponse,
  type CommittedOffsetsResponse,
  type GroupMembership,
  type JoinGroupRequest,
  type RetryOptions,
} from '@tessera/protocol';
import type { Connection } from '../connection/connection.js';
import { needsMetadataRefresh, primaryUrlIn, type MetadataCache } from '../cluster/metadata-cache.js';
import { delay, Wakeup } from '../internal/signal.js';
import type { ConsumedRecord } from '../records.js';
import { Fetcher } from './fetcher.js';
import { maxOffset, newPartitionState, type PartitionState } from './partition-state.js';

/** What a consumer reads and how. */
export interface ConsumerOptions {
  /** The consumer group; its members share the topic's partitions. */
  group: string;
  /** The topic the group reads (one topic per group). */
  topic: string;
  /**
   * Where to start on a partition the group never committed: the earliest retained record
   * when true, else the high watermark at assignment (only records produced from then on).
   */
  fromBeginning?: boolean;
  /** Most records one `poll()` returns (default 1000). */
  maxRecords?: number;
  /** How long a `poll()` waits for records when none are there (long-poll, default 1000 ms). */
  waitMs?: number;
  /** The member is dropped after this long without a heartbeat (coordinator default when absent). */
  sessionTimeoutMs?: number;
  /** A name shown in group listings (default `host-pid`). */
  clientId?: string;
}

export type { ConsumedRecord };

/** What a consumer needs from the client that made it. */
export interface ConsumerContext {
  connection: Connection;
  metadata: MetadataCache;
  retry: RetryOptions;
  requestTimeoutMs: number;
  onClose(consumer: Consumer): void;
}

/**
 * How long a commit keeps retrying retriable errors (each retry after a backoff, and a
 * heartbeat or a metadata refresh when they help): longer than a failover takes (the
 * coordinator's brokerTimeoutMs, 3 s by default, plus the new primary's start).
 */
const COMMIT_TIMEOUT_MS = 15_000;

/**
 * A member of a consumer group. Make one with `client.consumer()`, then either call
 * `poll()` in a loop (and `commit()`), or `subscribe(handler)` once.
 *
 * Events: `'assigned'` (partitions: number[]), `'revoked'` (partitions: number[]),
 * `'error'` (error) for problems it recovers from by itself; without an `'error'`
 * listener those are dropped.
 */
export class Consumer extends EventEmitter {
  private readonly group: string;
  private readonly topic: string;
  private readonly fromBeginning: boolean;
  private readonly maxRecords: number;
  private readonly waitMs: number;
  private readonly joinRequest: Omit<JoinGroupRequest, 'memberId'>;

  private memberId: string | null = null;
  /** The latest membership the coordinator answered (join or heartbeat). */
  private membership: GroupMembership | null = null;
  /** The generation whose assignment this member has applied; what heartbeats report. */
  private appliedGeneration: number | null = null;
  /** Set when the coordinator no longer knows this member: everything owned is lost, rejoin. */
  private lost = false;
  private heartbeatMs = DEFAULT_GROUP_HEARTBEAT_MS;
  private heartbeatLoop: Promise<void> | null = null;
  /** Set while heartbeats fail, so a long coordinator outage reports one 'error', not one per beat. */
  private heartbeatFailing = false;

  private readonly owned = new Map<number, PartitionState>();
  private readonly fetcher: Fetcher;
  /** The background commit of `subscribe()`, and whether another is wanted when it ends. */
  private backgroundCommit: Promise<void> | null = null;
  private commitAgain = false;
  /** A background commit that failed for good: `subscribe()` rejects with it. */
  private commitFailure: unknown = undefined;
  /** Wakes a waiting `poll()`: a fetch finished, the membership changed, or close(). */
  private readonly wakeup = new Wakeup();
  private readonly abort = new AbortController();
  /** Rotates which partition's buffer a poll drains first, so none starves. */
  private drainStart = 0;

  private busy = false;
  private subscription: Promise<void> | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;

  /** @internal Use `TesseraClient.consumer()`. */
  constructor(
    private readonly context: ConsumerContext,
    options: ConsumerOptions,
  ) {
    super();
    this.group = parseOrThrow(groupId, options.group, 'group id');
    this.topic = parseOrThrow(topicName, options.topic, 'topic name');
    this.fromBeginning = options.fromBeginning ?? false;
    this.maxRecords = positive('maxRecords', options.maxRecords ?? 1000);
    this.waitMs = nonNegative('waitMs', options.waitMs ?? 1000);
    this.joinRequest = {
      topic: this.topic,
      clientId: options.clientId ?? `${hostname()}-${process.pid}`,
      ...(options.sessionTimeoutMs === undefined ? {} : { sessionTimeoutMs: options.sessionTimeoutMs }),
    };
    this.fetcher = new Fetcher({
      topic: this.topic,
      connection: context.connection,
      retry: context.retry,
      requestTimeoutMs: context.requestTimeoutMs,
      maxRecords: this.maxRecords,
      signal: this.abort.signal,
      owned: this.owned,
      groupByPrimary: (partitions) => this.groupByPrimary(partitions),
      onFetchDone: () => this.wakeup.notify(),
      onPartitionError: (error) => this.onPartitionError(error),
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
    this.busy = true;
    try {
      for (const state of this.owned.values()) state.consumedOffset = maxOffset(state.consumedOffset, state.returnedOffset);
      return await this.nextRecords(
        positive('maxRecords', options.maxRecords ?? this.maxRecords),
        nonNegative('waitMs', options.waitMs ?? this.waitMs),
        true,
      );
    } finally {
      this.busy = false;
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
    await this.commitOffsets(offsets);
  }

  /**
   * Feeds every record to `handler` until `close()`: records of one partition one after
   * the other in offset order (partitions side by side), committing after each handled
   * batch. Resolves when the consumer is closed; rejects on a fatal error — a
   * non-retriable one, or a handler that threw (what was handled before is committed,
   * the failed record will be delivered again).
   */
  subscribe(handler: (record: ConsumedRecord) => void | Promise<void>): Promise<void> {
    if (this.subscription !== null || this.busy) {
      return Promise.reject(new TesseraError('INVALID_REQUEST', 'the consumer is already subscribed or polling'));
    }
    if (this.closed) return Promise.resolve();
    this.busy = true;
    this.subscription = this.runSubscription(handler).finally(() => {
      this.busy = false;
    });
    return this.subscription;
  }

  /** The partitions this member owns now, in order. */
  assignment(): number[] {
    return [...this.owned.keys()].sort((a, b) => a - b);
  }

  /** Stops fetching, waits for the handler's batch, commits what was consumed, and leaves the group. */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closed = true;
    this.closing = (async () => {
      this.abort.abort();
      this.wakeup.notify();
      if (this.subscription !== null) await this.subscription.catch(() => undefined);
      if (this.memberId !== null && !this.lost) {
        try {
          await this.commitHandled();
        } catch (error) {
          this.emitError(error);
        }
        try {
          await this.context.connection.coordinator('POST', COORDINATOR_ROUTES.groupLeave, { group: this.group }, { memberId: this.memberId });
        } catch {
          // Leaving is a courtesy: the coordinator drops a silent member after its session timeout anyway.
        }
      }
      await this.heartbeatLoop;
      this.owned.clear();
      this.context.onClose(this);
    })();
    return this.closing;
  }

  // ---- rounds of work ---------------------------------------------------------------

  /** One round of `poll()`: apply membership changes, then hand out buffered or freshly fetched records. */
  private async nextRecords(maxRecords: number, waitMs: number, markConsumed: boolean): Promise<ConsumedRecord[]> {
    const deadlineMs = Date.now() + waitMs;
    for (;;) {
      if (this.closed) return [];
      await this.sync();
      const records = this.takeBuffered(maxRecords, markConsumed);
      const remainingMs = deadlineMs - Date.now();
      if (records.length > 0) {
        // The partitions just emptied are fetched again while the caller handles these records.
        this.fetcher.start(this.waitMs).catch((error: unknown) => this.emitError(error));
        return records;
      }
      if (remainingMs <= 0 || this.closed) return records;
      await this.fetcher.start(remainingMs);
      await this.wakeup.wait(remainingMs, { signal: this.abort.signal });
    }
  }

  private async runSubscription(handler: (record: ConsumedRecord) => void | Promise<void>): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      let records: ConsumedRecord[];
      try {
        records = await this.nextRecords(this.maxRecords, this.waitMs, false);
        failures = 0;
      } catch (error) {
        if (this.closed) break;
        if (!isRetriable(error)) throw error;
        this.emitError(error);
        await delay(backoffMs(Math.min(failures++, 20), this.context.retry), this.abort.signal);
        continue;
      }
      if (this.commitFailure !== undefined) throw this.commitFailure;
      if (records.length === 0) continue;
      const handlerError = await this.handleBatch(records, handler);
      if (handlerError !== undefined) {
        // What was handled before the failure is committed before the error ends the subscription.
        await this.backgroundCommit;
        await this.commitHandled().catch((error: unknown) => this.emitError(error));
        throw handlerError.error;
      }
      this.commitInBackground();
    }
    await this.backgroundCommit;
  }

  /**
   * Commits the handled records without making the next fetch wait for it: one commit at a
   * time, and one more after it when records were handled meanwhile. A retriable failure is
   * reported (the next commit covers it); a non-retriable one ends the subscription.
   */
  private commitInBackground(): void {
    if (this.backgroundCommit !== null) {
      this.commitAgain = true;
      return;
    }
    this.backgroundCommit = (async () => {
      do {
        this.commitAgain = false;
        try {
          await this.commitHandled();
        } catch (error) {
          if (isRetriable(error)) this.emitError(error);
          else this.commitFailure ??= error;
        }
      } while (this.commitAgain && !this.closed && this.commitFailure === undefined);
      this.backgroundCommit = null;
      this.wakeup.notify();
    })();
  }

  /**
   * Runs the handler over one batch: each partition's records in order, partitions side by
   * side. After a handler error (or close()) the remaining records are not handled, and
   * their partitions rewind to the first unhandled offset so they come again.
   */
  private async handleBatch(
    records: ConsumedRecord[],
    handler: (record: ConsumedRecord) => void | Promise<void>,
  ): Promise<{ error: unknown } | undefined> {
    const byPartition = new Map<number, ConsumedRecord[]>();
    for (const record of records) {
      const list = byPartition.get(record.partition);
      if (list === undefined) byPartition.set(record.partition, [record]);
      else list.push(record);
    }
    let failure: { error: unknown } | undefined;
    await Promise.all(
      [...byPartition.values()].map(async (list) => {
        for (const record of list) {
          const state = this.owned.get(record.partition);
          if (failure !== undefined || this.closed || state === undefined) {
            if (state !== undefined && !this.closed) this.rewind(state, record.offset);
            return;
          }
          try {
            await handler(record);
          } catch (error) {
            failure ??= { error };
            this.rewind(state, record.offset);
            return;
          }
          state.consumedOffset = record.offset + 1;
        }
      }),
    );
    return failure;
  }

  /** Commits the handled records of every owned partition. */
  private commitHandled(): Promise<void> {
    const offsets = new Map<number, number>();
    for (const state of this.owned.values()) {
      if (state.consumedOffset !== null) offsets.set(state.partition, state.consumedOffset);
    }
    return this.commitOffsets(offsets);
  }

  /** Makes `offset` the next record of the partition to fetch and hand out. */
  private rewind(state: PartitionState, offset: number): void {
    state.buffer = [];
    state.fetchOffset = offset;
  }

  private takeBuffered(maxRecords: number, markConsumed: boolean): ConsumedRecord[] {
    const states = [...this.owned.values()];
    const out: ConsumedRecord[] = [];
    for (let i = 0; i < states.length && out.length < maxRecords; i++) {
      const state = states[(this.drainStart + i) % states.length];
      if (state.buffer.length === 0) continue;
      const taken = state.buffer.splice(0, maxRecords - out.length);
      for (const record of taken) out.push(record);
      if (markConsumed) state.returnedOffset = taken[taken.length - 1].offset + 1;
    }
    this.drainStart++;
    return out;
  }

  // ---- membership -------------------------------------------------------------------

  /** Joins (or rejoins) when needed, applies the latest assignment, and finds start offsets. */
  private async sync(): Promise<void> {
    if (this.memberId === null || this.lost) await this.join();
    const membership = this.membership;
    if (membership !== null && membership.generation !== this.appliedGeneration) await this.apply(membership);
    await this.initPositions();
  }

  private async join(): Promise<void> {
    if (this.lost) {
      // The coordinator dropped this member, so its partitions may already be someone
      // else's: stop at once, and commit nothing (it would be refused or overwrite theirs).
      const lost = this.assignment();
      this.owned.clear();
      if (lost.length > 0) this.safeEmit('revoked', lost);
    }
    let memberId = this.memberId;
    const membership = await retry(
      async () => {
        try {
          return await this.context.connection.coordinator<GroupMembership>(
            'POST',
            COORDINATOR_ROUTES.groupJoin,
            { group: this.group },
            { ...this.joinRequest, ...(memberId === null ? {} : { memberId }) },
            { signal: this.abort.signal },
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
      { ...this.context.retry, signal: this.abort.signal },
    );
    this.memberId = membership.memberId;
    this.membership = membership;
    this.appliedGeneration = null;
    this.lost = false;
    this.heartbeatMs = membership.heartbeatMs;
    this.heartbeatLoop ??= this.runHeartbeats();
  }

  /**
   * Applies an assignment: revoked partitions stop, get their consumed offsets committed
   * and are dropped; new ones are added (start offsets found later). Only then is the
   * generation marked applied and reported, so the coordinator never hands a partition on
   * before this member has let go of it.
   */
  private async apply(membership: GroupMembership): Promise<void> {
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
        await this.commitOffsets(offsets);
      } catch (error) {
        // Not fatal: the next owner starts from the last commit and sees some records again.
        this.emitError(error);
      }
      for (const partition of revoked) this.owned.delete(partition);
      this.safeEmit('revoked', revoked);
    }
    if (this.lost || this.membership?.memberId !== membership.memberId) return; // Rejoin in the next round.
    const added = membership.assignment.filter((partition) => !this.owned.has(partition)).sort((a, b) => a - b);
    for (const partition of added) {
      this.owned.set(partition, newPartitionState(partition));
    }
    this.appliedGeneration = membership.generation;
    if (added.length > 0) this.safeEmit('assigned', added);
    // Report the applied generation now rather than at the next beat: other members may be waiting for it.
    void this.heartbeat();
  }

  private async runHeartbeats(): Promise<void> {
    while (!this.closed) {
      await delay(this.heartbeatMs, this.abort.signal, { unref: true });
      if (this.closed) break;
      await this.heartbeat();
    }
  }

  /** One heartbeat carrying the applied generation; never throws. */
  private async heartbeat(): Promise<void> {
    const memberId = this.memberId;
    const generation = this.appliedGeneration;
    if (memberId === null || generation === null || this.lost || this.closed) return;
    try {
      const membership = await this.context.connection.coordinator<GroupMembership>(
        'POST',
        COORDINATOR_ROUTES.groupHeartbeat,
        { group: this.group },
        { memberId, generation },
      );
      if (memberId !== this.memberId || this.lost) return;
      if (this.membership !== null && membership.generation < this.membership.generation) return; // An older answer overtaken.
      this.membership = membership;
      this.heartbeatMs = membership.heartbeatMs;
      this.heartbeatFailing = false;
      if (membership.generation !== this.appliedGeneration) this.wakeup.notify();
    } catch (error) {
      if (memberId !== this.memberId || this.closed) return;
      if (isTesseraError(error, 'UNKNOWN_MEMBER') || isTesseraError(error, 'GROUP_NOT_FOUND')) {
        this.lost = true;
        this.wakeup.notify();
      }
      // Anything else (the coordinator is down, most likely) changes nothing: keep consuming
      // what this member owns, and try again at the next beat.
      if (!this.heartbeatFailing) this.emitError(error);
      this.heartbeatFailing = true;
    }
  }

  // ---- offsets ----------------------------------------------------------------------

  /** Finds the start offset of every owned partition that has none yet; failures are retried next round. */
  private async initPositions(): Promise<void> {
    const pending = [...this.owned.values()].filter((state) => state.fetchOffset === null);
    if (pending.length === 0) return;
    const byPrimary = await this.groupByPrimary(pending.map((state) => state.partition));
    await Promise.all(
      [...byPrimary].map(async ([url, partitions]) => {
        try {
          const answer = await this.context.connection.broker<CommittedOffsetsResponse>(url, BROKER_ROUTES.committedOffsets, {}, {
            group: this.group,
            partitions: partitions.map((partition) => ({ topic: this.topic, partition })),
          });
          for (const entry of answer.partitions) {
            const state = this.owned.get(entry.partition);
            if (state === undefined || state.fetchOffset !== null || entry.topic !== this.topic) continue;
            if (entry.error !== undefined) {
              this.onPartitionError(TesseraError.fromBody({ error: entry.error }));
              continue;
            }
            const start = entry.offset ?? (this.fromBeginning ? entry.logStartOffset : entry.highWatermark);
            state.fetchOffset = start;
            state.consumedOffset = start;
            state.returnedOffset = start;
            state.committedOffset = entry.offset;
          }
        } catch (error) {
          this.onPartitionError(error);
        }
      }),
    );
  }

  /**
   * Commits `offsets` (partition → next offset) for the partitions still owned, with the
   * latest generation known. On GENERATION_MISMATCH it heartbeats (to learn the current
   * generation) and tries again; on routing errors it refreshes metadata and tries again.
   */
  private async commitOffsets(offsets: Map<number, number>): Promise<void> {
    const todo = new Map(offsets);
    const deadlineMs = Date.now() + COMMIT_TIMEOUT_MS;
    for (let attempt = 0; ; attempt++) {
      for (const [partition, offset] of todo) {
        const state = this.owned.get(partition);
        if (state === undefined || (state.committedOffset !== null && offset <= state.committedOffset)) todo.delete(partition);
      }
      const memberId = this.memberId;
      const generation = this.membership?.generation;
      if (todo.size === 0 || memberId === null || generation === undefined) return;
      let lastError: unknown;
      let mismatch = false;
      const byPrimary = await this.groupByPrimary([...todo.keys()]);
      if (byPrimary.size === 0) lastError = new TesseraError('PARTITION_OFFLINE', `no primary known for ${this.topic} partitions ${[...todo.keys()].join(',')}`);
      await Promise.all(
        [...byPrimary].map(async ([url, partitions]) => {
          try {
            const answer = await this.context.connection.broker<CommitResponse>(url, BROKER_ROUTES.commit, {}, {
              group: this.group,
              generation,
              memberId,
              offsets: partitions.map((partition) => ({ topic: this.topic, partition, offset: todo.get(partition)! })),
            });
            for (const result of answer.results) {
              if (result.topic !== this.topic || !todo.has(result.partition)) continue;
              if (result.error === undefined) {
                const state = this.owned.get(result.partition);
                const offset = todo.get(result.partition)!;
                if (state !== undefined) state.committedOffset = Math.max(state.committedOffset ?? 0, offset);
                todo.delete(result.partition);
                continue;
              }
              const error = TesseraError.fromBody({ error: result.error }) ?? new TesseraError('INTERNAL', result.error.message);
              if (error.code === 'GENERATION_MISMATCH') mismatch = true;
              else if (!error.retriable) throw error;
              lastError = error;
            }
          } catch (error) {
            if (!isRetriable(error)) throw error;
            lastError = error;
          }
        }),
      );
      if (todo.size === 0) return;
      const waitMs = backoffMs(Math.min(attempt, 20), this.context.retry);
      if (Date.now() + waitMs >= deadlineMs) {
        const reason = lastError instanceof Error ? lastError.message : 'no answer';
        throw new TesseraError(
          lastError instanceof TesseraError ? lastError.code : 'UNAVAILABLE',
          `commit of group ${this.group} on ${this.topic} partitions ${[...todo.keys()].join(',')} failed: ${reason}`,
          {},
          { cause: lastError },
        );
      }
      if (mismatch) await this.heartbeat();
      if (needsMetadataRefresh(lastError)) await this.context.metadata.refresh().catch(() => undefined);
      await delay(waitMs);
    }
  }

  // ---- routing ----------------------------------------------------------------------

  /** Groups partitions by their primary's URL; partitions without a known primary are left out (and metadata refreshed). */
  private async groupByPrimary(partitions: number[]): Promise<Map<string, number[]>> {
    const byPrimary = new Map<string, number[]>();
    let metadata;
    let topic;
    try {
      metadata = await this.context.metadata.get();
      topic = await this.context.metadata.topic(this.topic);
    } catch (error) {
      this.emitError(error);
      return byPrimary;
    }
    for (const partition of partitions) {
      try {
        const url = primaryUrlIn(metadata, topic, partition);
        const list = byPrimary.get(url);
        if (list === undefined) byPrimary.set(url, [partition]);
        else list.push(partition);
      } catch (error) {
        this.onPartitionError(error);
      }
    }
    return byPrimary;
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
