/**
 * Delivery of one partition to one push subscription, run by the partition's primary: reads
 * the partition's committed records (below the HW) from this broker's storage, POSTs them one
 * at a time in offset order (the next record waits for the one before it, so each key's
 * records arrive in order), retries a failure with exponential backoff and jitter, sends a
 * record that used up its attempts to the dead-letter topic, and commits its progress as the
 * subscription's group offset through the partition's own commit path (so it replicates with
 * the log and a new primary resumes where this one stopped).
 */
import {
  SIGNATURE_HEADER,
  DELETED_SUBSCRIPTION_GENERATION,
  SUBSCRIPTION_DELIVERY_GENERATION,
  SUBSCRIPTION_HEADER,
  decodeRecordBatch,
  isTesseraError,
  recordToJson,
  isRetriable,
  linkedAbort,
  retry,
  signDelivery,
  type DecodedRecord,
  type DeliveryBody,
  type SubscriptionReport,
} from '@tessera/protocol';
import type { Logger } from '@tessera/service';
import type { Partition } from '../partition/index.js';
import { assert } from '../util/assert.js';
import type { SubscriptionRuntime } from './runtime.js';
import type { AttemptResult } from './metrics.js';

/** Bytes of stored batches read per step (at least one batch). */
const READ_BYTES = 256 * 1024;
/** Progress is committed at least this often while records are delivered, and whenever the loop is idle. */
const COMMIT_EVERY_MS = 1_000;
/** The idle loop looks at its replica again after this long even without an HW change. */
const IDLE_WAIT_MS = 1_000;
/** The longest error text kept (and reported to the coordinator). */
const MAX_ERROR_CHARS = 300;
/**
 * The commit of a stopped loop is tried again this often on a retriable failure (an ISR change,
 * a full disk, a flush that failed), 100 ms doubling to 400 ms: about 1 s at most, so a pause or a
 * suspension still ends soon. What it could not store is kept by the caller (`nextOffset`).
 */
const FINAL_COMMIT_RETRY = { retries: 4, initialMs: 100, multiplier: 2, maxMs: 400, jitter: 0.2 } as const;

/** A non-2xx answer: the status is what the dead-letter headers report. */
class DeliveryRefused extends Error {
  constructor(readonly status: number) {
    super(`receiver answered ${status}`);
  }
}

export class PartitionDelivery {
  /** Ends the loop and the attempt in flight: the partition is not led here any more. */
  private readonly abort = new AbortController();
  /** Ends the loop once the attempt in flight is answered (`stop('finish')`): no new record, attempt or wait. */
  private readonly stopping = new AbortController();
  /** Either of the two: what every wait listens to. */
  private readonly ending = AbortSignal.any([this.abort.signal, this.stopping.signal]);
  readonly done: Promise<void>;
  private offset: number;
  private attempts = 0;
  private lastStatus: number | null = null;
  private lastError: string | null = null;
  private delivered = 0;
  private deadLettered = 0;
  private lastCommitMs = Date.now();
  private committed: number;
  /** True once the loop ended (stopped, or the partition is not led here any more). */
  finished = false;
  /**
   * True once the partition refused a commit as of an older generation: the coordinator deleted
   * the subscription and stored its group's deletion mark, which no commit may overwrite. Nothing
   * is committed from then on, and where the loop ended is not kept (`SubscriptionDeliveries`).
   */
  groupDeleted = false;

  /**
   * `resumeAt`: where an earlier loop of this subscription on this replica stopped, when its last
   * commit may not have been stored; the loop starts from the higher of it and the stored offset.
   */
  constructor(
    private readonly runtime: SubscriptionRuntime,
    /** The replica this loop delivers (a loop that resumes from `nextOffset` must deliver the same one). */
    readonly replica: Partition,
    private readonly logger: Logger,
    resumeAt?: number,
  ) {
    const { subscription } = runtime;
    const stored = replica.store.groupOffset(subscription.group)?.offset;
    let start = stored ?? subscription.startOffsets[String(replica.partition)] ?? replica.logStartOffset;
    if (resumeAt !== undefined && resumeAt <= replica.store.leo) start = Math.max(start, resumeAt);
    // A position beyond the log's end was taken on another log (the topic was deleted and created
    // again under its name): this log is delivered from its start, not from where that one was.
    this.offset = start > replica.store.leo ? replica.logStartOffset : Math.max(start, replica.logStartOffset);
    this.committed = stored ?? -1;
    // The coordinator already marked the group deleted (the subscription was deleted; this broker
    // has not heard yet): nothing is delivered, rather than everything again from its start.
    this.groupDeleted = stored === undefined && (replica.store.groupGeneration(subscription.group) ?? -1) >= DELETED_SUBSCRIPTION_GENERATION;
    // Losing the partition stops delivery at once, including an attempt in flight: the next primary delivers from the last commit.
    const watch = () => {
      if (!this.leading) this.abort.abort(new Error('not the primary any more'));
      else if (!this.abort.signal.aborted) replica.onChange(watch);
    };
    replica.onChange(watch);
    this.done = this.run()
      .catch((error: Error) => {
        if (!this.ending.aborted) this.logger.warn({ err: error.message }, 'subscription delivery stopped');
      })
      .finally(() => {
        this.finished = true;
        // Ended for any reason: stop watching the replica (the watch re-registers until aborted).
        this.abort.abort(new Error('delivery ended'));
      });
  }

  get topic(): string {
    return this.replica.topic;
  }

  get group(): string {
    return this.runtime.subscription.group;
  }

  /** When the subscription was created: one deleted and created again under its name is another. */
  get createdMs(): number {
    return this.runtime.subscription.createdMs;
  }

  /** The next offset to deliver: once the loop ended, every record before it was done with. */
  get nextOffset(): number {
    return this.offset;
  }

  /** True when the loop's progress is stored (its last commit succeeded, or there was nothing to commit). */
  get progressStored(): boolean {
    return this.offset === this.committed;
  }

  /**
   * Stops the loop; no attempt starts after this. `finish` (paused, suspended or deleted): the
   * attempt in flight gets its answer (within the subscription's `timeoutMs`) and the progress is
   * committed before `done` (tried again for about a second while the commit fails for a passing
   * reason), so the next delivery of the partition neither repeats a record the receiver
   * acknowledged nor skips one it did not; when the commit still fails, `nextOffset` says where
   * the next loop on this broker goes on (SubscriptionDeliveries keeps it). `abort` (the broker shuts down): the attempt
   * in flight is cut short and nothing more is committed; the next primary delivers again from
   * the last commit.
   */
  stop(inFlight: 'finish' | 'abort'): Promise<void> {
    if (inFlight === 'abort') this.abort.abort(new Error('delivery stopped'));
    else this.stopping.abort(new Error('delivery stopped'));
    return this.done;
  }

  report(): SubscriptionReport {
    return {
      name: this.runtime.subscription.name,
      partition: this.replica.partition,
      offset: this.offset,
      highWatermark: this.replica.hw,
      attempts: this.attempts,
      lastStatus: this.lastStatus,
      lastError: this.lastError,
      delivered: this.delivered,
      deadLettered: this.deadLettered,
    };
  }

  private get leading(): boolean {
    return !this.replica.isClosed && this.replica.role === 'primary';
  }

  private async run(): Promise<void> {
    if (this.groupDeleted) {
      this.logger.info('subscription deleted: its group is marked deleted, so nothing is delivered');
      return;
    }
    try {
      await this.deliver();
    } finally {
      // Stopped: what was delivered is committed. Not when cut short: the partition was lost (a
      // deposed primary's commit is refused), or the broker shuts down, whose coordinator link is
      // already stopped, so a commit waiting on an unresponsive secondary could hold it up.
      if (!this.abort.signal.aborted) await this.commitFinal();
    }
  }

  /**
   * The stopped loop's commit, tried again within FINAL_COMMIT_RETRY while it fails for a
   * passing reason. Without this, one failed commit (an ISR change under way) would make the next
   * loop repeat up to COMMIT_EVERY_MS of records the receiver acknowledged.
   */
  private async commitFinal(): Promise<void> {
    try {
      await retry(() => this.tryCommit(), {
        ...FINAL_COMMIT_RETRY,
        shouldRetry: (error) => this.leading && isRetriable(error) && !this.groupDeleted,
        signal: this.abort.signal,
      });
    } catch (error) {
      if (this.groupDeleted) {
        this.logger.info({ offset: this.offset }, 'subscription deleted: its group is marked deleted, so the stopped delivery commits nothing');
        return;
      }
      this.logger.warn(
        { err: (error as Error).message, offset: this.offset, committed: this.committed },
        'subscription progress not committed when its delivery stopped; a delivery started again here goes on from it, one on another broker from the last commit',
      );
    }
  }

  private async deliver(): Promise<void> {
    const signal = this.ending;
    while (!signal.aborted && this.leading) {
      const hw = this.replica.hw;
      if (this.offset < this.replica.logStartOffset) {
        // The records were removed from the log before they were delivered: say so, and go on from what is left.
        this.logger.warn({ offset: this.offset, logStartOffset: this.replica.logStartOffset }, 'records removed before delivery were skipped');
        this.offset = this.replica.logStartOffset;
      }
      if (this.offset >= hw) {
        await this.commit();
        await this.waitForRecords(signal);
        continue;
      }
      const batches = this.replica.store.readBatches(this.offset, hw, READ_BYTES);
      if (batches.length === 0) {
        await this.waitForRecords(signal);
        continue;
      }
      for (const batch of batches) {
        for (const record of decodeRecordBatch(batch.bytes).records) {
          if (record.offset < this.offset || record.offset >= hw) continue;
          if (!(await this.handle(record))) return;
          this.offset = record.offset + 1;
          if (signal.aborted) return;
          if (Date.now() - this.lastCommitMs >= COMMIT_EVERY_MS) {
            await this.commit();
            // A stop that landed during the commit: no attempt starts after it.
            if (signal.aborted) return;
          }
        }
      }
      await this.commit();
    }
  }

  /**
   * Delivers one record (or skips it by the key filter, or dead-letters it). True once it is done
   * with; false when the loop ended first (the record is delivered again by the next loop).
   */
  private async handle(record: DecodedRecord): Promise<boolean> {
    const signal = this.ending;
    const { subscription, metrics } = this.runtime;
    const prefix = this.runtime.keyPrefix;
    if (prefix !== null && (record.key === null || !record.key.subarray(0, prefix.length).equals(prefix))) {
      metrics.deliveries.inc({ subscription: subscription.name, outcome: 'filtered' });
      return true;
    }
    const json = recordToJson(record);
    this.attempts = 0;
    const maxAttempts = subscription.maxAttempts ?? Number.POSITIVE_INFINITY;
    try {
      await retry((attempt) => this.attempt(json, attempt + 1), {
        retries: maxAttempts - 1,
        initialMs: subscription.backoffInitialMs,
        maxMs: subscription.backoffMaxMs,
        multiplier: 2,
        jitter: 0.5,
        shouldRetry: () => !signal.aborted,
        signal,
      });
      this.delivered++;
      this.attempts = 0;
      metrics.deliveries.inc({ subscription: subscription.name, outcome: 'delivered' });
      return true;
    } catch (error) {
      if (signal.aborted) return false;
      // Attempts used up (only with a dead-letter topic: without one they never are).
      try {
        await this.runtime.deadLetters.write(
          subscription,
          this.replica.topic,
          this.replica.partition,
          record,
          { attempts: this.attempts, lastStatus: this.lastStatus, error: this.lastError ?? (error as Error).message },
          { request: this.abort.signal, wait: signal },
          // Shown by describe while the dead-letter topic cannot take the record (deleted, offline): the partition waits for it.
          (deadLetterError) => (this.lastError = `dead letter not stored yet: ${(deadLetterError as Error).message}`.slice(0, MAX_ERROR_CHARS)),
        );
      } catch (deadLetterError) {
        if (signal.aborted) return false;
        throw deadLetterError;
      }
      this.deadLettered++;
      this.attempts = 0;
      metrics.deliveries.inc({ subscription: subscription.name, outcome: 'dead_lettered' });
      this.logger.warn(
        { subscription: subscription.name, offset: record.offset, lastStatus: this.lastStatus, error: this.lastError },
        'record sent to the dead-letter topic',
      );
      return true;
    }
  }

  /** One POST of one record; throws when it was not acknowledged with a 2xx. */
  private async attempt(json: ReturnType<typeof recordToJson>, attempt: number): Promise<void> {
    const { subscription, metrics, target } = this.runtime;
    this.attempts = attempt;
    // Waiting for a slot ends with the loop; a request once sent is cut short only by losing the partition.
    const release = await this.runtime.slots.acquire(this.ending);
    const started = process.hrtime.bigint();
    let result: AttemptResult = 'ok';
    // The loop's signal lives as long as the partition is delivered: each attempt's own signal lets go of it when the attempt ends.
    const deadline = linkedAbort(this.abort.signal, subscription.timeoutMs);
    try {
      if (this.runtime.refusedTarget !== null) throw new Error(this.runtime.refusedTarget);
      const delivery: DeliveryBody = { subscription: subscription.name, topic: this.replica.topic, partition: this.replica.partition, attempt, ...json };
      const body = JSON.stringify(delivery);
      const response = await this.runtime.agent.request({
        origin: target.origin,
        path: target.pathname + target.search,
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'tessera-push',
          [SIGNATURE_HEADER]: signDelivery(this.runtime.secret, body),
          [SUBSCRIPTION_HEADER]: subscription.name,
        },
        body,
        headersTimeout: subscription.timeoutMs,
        bodyTimeout: subscription.timeoutMs,
        signal: deadline.signal,
      });
      // The answer's body is not used; dump reads at most a bounded amount and closes it.
      await response.body.dump();
      this.lastStatus = response.statusCode;
      if (response.statusCode < 200 || response.statusCode > 299) {
        result = 'http_error';
        throw new DeliveryRefused(response.statusCode);
      }
      this.lastError = null;
    } catch (error) {
      if (result === 'ok') {
        const name = (error as Error).name;
        result = name === 'TimeoutError' || name === 'HeadersTimeoutError' || name === 'BodyTimeoutError' ? 'timeout' : 'network_error';
        this.lastStatus = null;
      }
      const message = error instanceof DeliveryRefused ? error.message : `${(error as Error).name}: ${(error as Error).message}`;
      this.lastError = `attempt ${attempt}: ${message}`.slice(0, MAX_ERROR_CHARS);
      throw error;
    } finally {
      deadline.dispose();
      release();
      metrics.deliveryLatency.observe(Number(process.hrtime.bigint() - started) / 1e9, { subscription: subscription.name });
      metrics.attempts.inc({ subscription: subscription.name, result });
    }
  }

  /** Commits the next offset to deliver as the subscription group's offset (one commit at a time, only when it moved). */
  private async commit(): Promise<void> {
    this.lastCommitMs = Date.now();
    try {
      await this.tryCommit();
    } catch (error) {
      // Not the primary any more, or the ISR is changing: the next commit (or the next primary) goes on from the last one stored.
      this.logger.debug({ err: (error as Error).message, offset: this.offset }, 'subscription progress not committed');
    }
  }

  /**
   * Commits the next offset to deliver, when it moved and this broker leads; throws what the
   * partition's commit threw. Fenced by deletion: once the coordinator stored the group's deletion
   * mark (at DELETED_SUBSCRIPTION_GENERATION), the partition refuses it with GENERATION_MISMATCH,
   * so a loop that has not heard of the delete yet cannot bring back a position for the group.
   */
  private async tryCommit(): Promise<void> {
    if (this.offset === this.committed || !this.leading || this.groupDeleted) return;
    const offset = this.offset;
    assert(offset <= this.replica.leo, `${this.replica.topic}/${this.replica.partition}: delivery at ${offset} beyond the log end ${this.replica.leo}`);
    try {
      await this.replica.commit({ group: this.runtime.subscription.group, offset, generation: SUBSCRIPTION_DELIVERY_GENERATION }, { fencedByDeletion: true });
    } catch (error) {
      if (isTesseraError(error, 'GENERATION_MISMATCH')) this.groupDeleted = true;
      throw error;
    }
    this.committed = offset;
  }

  private waitForRecords(signal: AbortSignal): Promise<void> {
    // Stopped during the commit before it: a listener added now would never be called.
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        unsubscribe();
        signal.removeEventListener('abort', finish);
        resolve();
      };
      const timer = setTimeout(finish, IDLE_WAIT_MS);
      const unsubscribe = this.replica.onChange(finish);
      signal.addEventListener('abort', finish, { once: true });
    });
  }
}
