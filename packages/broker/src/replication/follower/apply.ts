/**
 * The follower side of replication: checks one push of the primary against this replica's
 * log and hands it to the partition to write. The checks are synchronous, and the partition
 * moves its in-memory log view when the write is queued, so a push that arrives while the
 * previous one is still being committed is checked against the log as it will be.
 */
import { TesseraError, batchSize, iterateBatches, type PartitionPush } from '@tessera/protocol';
import type { Partition } from '../../partition/index.js';
import { storedBatch, type PartitionLog, type StoredBatch } from '../../storage/index.js';
import { lastEpoch } from '../divergence.js';

export type ParsedPush = PartitionPush & { commits: Array<{ group: string; offset: number; generation: number }> };

/** Applies one push; resolves with the follower's LEO and epoch once the push is durable. */
export async function applyPush(replica: Partition, push: ParsedPush, tail: Buffer): Promise<{ leo: number; epoch: number }> {
  // Fencing: a primary of an older epoch has been deposed and must not write here.
  if (push.epoch < replica.epoch) {
    throw new TesseraError('STALE_EPOCH', `${replica.topic}/${replica.partition} is at epoch ${replica.epoch}`, { epoch: replica.epoch });
  }
  if (push.epoch === replica.epoch) {
    const otherPrimary = replica.role === 'primary' || (replica.primaryId !== null && replica.primaryId !== push.primaryId);
    if (otherPrimary) {
      // Two primaries never share an epoch; the sender's view is out of date.
      throw new TesseraError(
        'STALE_EPOCH',
        `${replica.topic}/${replica.partition} epoch ${replica.epoch} is led by ${replica.primaryId ?? 'nobody'}, not ${push.primaryId}`,
        { epoch: replica.epoch },
      );
    }
  }
  if (push.epoch > replica.epoch || replica.primaryId === null) replica.adoptEpoch(push.epoch, push.primaryId);
  // A push the primary sent before one already applied here was held up on the way: its HW and
  // commits are older than this replica's. The primary stopped waiting for it long ago.
  if (!replica.takePushOrder(push.primaryId, push.epoch, push.order)) {
    throw offsetMismatch(replica, `push ${push.order?.seq} of ${push.primaryId} came after a later one`);
  }

  // New records are refused on a nearly full disk like a produce (the primary retries, then
  // leaves this follower out of the ISR); pushes without records (HW, log start) still apply.
  if (push.bytes > 0) replica.checkStorage('replication');
  const log = replica.store;
  // A truncation applies only to the log it was computed for: a push that arrives after later
  // pushes moved this log on (it was held up, or its retry overtook it) would cut their records.
  if (push.truncateTo !== undefined && push.truncateSeen !== undefined && !endsAt(log, push.truncateSeen)) {
    throw offsetMismatch(replica, `the push truncates a log that ended at ${push.truncateSeen.leo}`);
  }
  // The LEO the log will have after the truncation this push asks for.
  const leo = push.truncateTo !== undefined && push.truncateTo < log.leo ? Math.max(push.truncateTo, log.logStartOffset) : log.leo;
  // A log wholly below the primary's log start becomes empty there (see PartitionLog.resetTo).
  const reset = push.logStartOffset !== undefined && push.logStartOffset > leo;
  // A log without records that starts beyond the primary's log (its truncation point lies below
  // our log start) starts again, empty, at the primary's log start, once none of its old
  // batches is stored any more.
  const restart =
    !reset &&
    push.logStartOffset !== undefined &&
    push.truncateTo !== undefined &&
    push.truncateTo < log.logStartOffset &&
    log.leo === log.logStartOffset &&
    push.baseOffset === push.logStartOffset;
  if (restart && !log.isBare()) {
    throw new TesseraError(
      'UNAVAILABLE',
      `${replica.topic}/${replica.partition}: the old batches below the log start (${log.logStartOffset}) are still being deleted`,
    );
  }
  if (push.baseOffset !== (reset || restart ? push.logStartOffset : leo)) throw offsetMismatch(replica, `push starts at ${push.baseOffset}`);
  // Same offset, same epoch means same record, and every earlier record the same too (each push
  // is checked this way). A different epoch before baseOffset means the logs diverged earlier.
  if (!reset && !restart && push.prevEpoch !== undefined && push.baseOffset > log.logStartOffset) {
    const ownEpoch = log.epochAt(push.baseOffset - 1);
    if (ownEpoch !== push.prevEpoch) {
      throw offsetMismatch(replica, `record ${push.baseOffset - 1} has epoch ${ownEpoch}, the primary's has ${push.prevEpoch}`);
    }
  }

  const batches: StoredBatch[] = [];
  let expected = push.baseOffset;
  let previousEpoch = !reset && !restart && push.baseOffset > log.logStartOffset ? log.epochAt(push.baseOffset - 1) : undefined;
  for (const { at, header } of iterateBatches(tail)) {
    const batch = storedBatch(tail.subarray(at, at + batchSize(header)), header);
    if (batch.baseOffset !== expected) {
      throw new TesseraError('INVALID_REQUEST', `batch at byte ${at} starts at offset ${batch.baseOffset}, expected ${expected}`);
    }
    if (batch.epoch > push.epoch || batch.epoch < 0) {
      throw new TesseraError('INVALID_REQUEST', `batch ${batch.baseOffset} has epoch ${batch.epoch}, the push is of epoch ${push.epoch}`);
    }
    if (previousEpoch !== undefined && batch.epoch < previousEpoch) {
      // Our tail was written in a later epoch than the primary's batch: the logs diverged earlier.
      throw offsetMismatch(replica, `batch ${batch.baseOffset} of epoch ${batch.epoch} follows epoch ${previousEpoch}`);
    }
    previousEpoch = batch.epoch;
    expected = batch.lastOffset + 1;
    batches.push(batch);
  }
  await replica.followerWrite({
    ...(restart ? { restartAt: push.logStartOffset } : { truncateTo: push.truncateTo }),
    batches,
    commits: push.commits,
    hw: push.hw,
    ...(push.logStartOffset === undefined ? {} : { logStartOffset: push.logStartOffset }),
  });
  return { leo: expected, epoch: replica.epoch };
}

/** Whether the log ends as `seen` says: at its LEO, with its last record of its epoch (as the log's epoch history tells). */
function endsAt(log: PartitionLog, seen: { leo: number; epoch?: number | undefined }): boolean {
  return log.leo === seen.leo && lastEpoch(log.epochs(), log.leo) === seen.epoch;
}

function offsetMismatch(replica: Partition, why: string): TesseraError {
  return new TesseraError('OFFSET_MISMATCH', `${replica.topic}/${replica.partition}: ${why}, log ends at ${replica.store.leo}`, {
    leo: replica.store.leo,
    epochs: replica.store.epochs(),
  });
}
