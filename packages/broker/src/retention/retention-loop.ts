/**
 * The broker's background retention: every `checkMs` it visits each replica held here once.
 * On every replica it deletes stored batches below the log start (a bounded number per replica
 * per pass: one small statement in the group commit, so a purge of a large log never holds the
 * commit thread or the event loop for long); on a primary it then moves the log start past the
 * batches the topic's retention lets go (the follower takes it from the next push). The loop
 * yields to the event loop between replicas and never runs two passes at once.
 */
import type { Logger } from '@tessera/service';
import type { PartitionSet } from '../partition/index.js';

export interface RetentionLoopOptions {
  replicas: PartitionSet;
  logger: Logger;
  /** Time between the end of one pass and the start of the next. */
  checkMs: number;
  /** Most batches one replica deletes in one pass. */
  maxBatchesPerPass: number;
}

export class RetentionLoop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: RetentionLoopOptions) {}

  start(): void {
    this.schedule();
  }

  /** Runs one pass over every replica now (also what the timer does). */
  async pass(): Promise<void> {
    const { replicas, logger, maxBatchesPerPass } = this.options;
    let deleted = 0;
    for (const replica of replicas.all()) {
      if (this.stopped) return;
      try {
        deleted += await replica.retentionPass({ nowMs: Date.now(), maxBatches: maxBatchesPerPass });
      } catch (error) {
        // A replica closed or deposed meanwhile; the next pass sees what holds then.
        logger.debug({ topic: replica.topic, partition: replica.partition, err: (error as Error).message }, 'retention pass skipped a replica');
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (deleted > 0) logger.debug({ deleted }, 'retention deleted batches below the log start');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.pass().finally(() => {
        this.running = undefined;
        this.schedule();
      });
    }, this.options.checkMs);
    this.timer.unref();
  }
}
