/**
 * The secondary side of replication: applies one push from the primary. Everything here is
 * synchronous (better-sqlite3), so no other request can interleave between the checks and
 * the append.
 */
import { TesseraError, type ReplicateResponse, type replicateRequest } from '@tessera/protocol';
import type { PartitionReplica } from '../replica/partition-replica.js';

export type ParsedReplicateRequest = ReturnType<typeof replicateRequest.parse>;

export function applyReplicate(replica: PartitionReplica, request: ParsedReplicateRequest): ReplicateResponse {
  // Fencing: a primary of an older epoch has been deposed and must not write here.
  if (request.epoch < replica.epoch) {
    throw new TesseraError('STALE_EPOCH', `${replica.topic}/${replica.partition} is at epoch ${replica.epoch}`, {
      epoch: replica.epoch,
    });
  }
  if (request.epoch === replica.epoch) {
    const otherPrimary = replica.role === 'primary' || (replica.primaryId !== null && replica.primaryId !== request.primaryId);
    if (otherPrimary) {
      // Two primaries never share an epoch; the sender's view is out of date.
      throw new TesseraError(
        'STALE_EPOCH',
        `${replica.topic}/${replica.partition} epoch ${replica.epoch} is led by ${replica.primaryId ?? 'nobody'}, not ${request.primaryId}`,
        { epoch: replica.epoch },
      );
    }
  }
  if (request.epoch > replica.epoch || replica.primaryId === null) replica.adoptEpoch(request.epoch, request.primaryId);

  const store = replica.store;
  if (request.truncateTo !== undefined && request.truncateTo < store.leo) {
    store.truncate(Math.max(request.truncateTo, store.logStartOffset));
    replica.clampHw();
  }
  if (request.baseOffset !== store.leo) throw offsetMismatch(replica, `batch starts at ${request.baseOffset}`);
  // Same offset, same epoch means same record, and every earlier record the same too (each push
  // is checked this way). A different epoch before baseOffset means the logs diverged earlier.
  if (request.prevEpoch !== undefined && request.baseOffset > store.logStartOffset) {
    const ownEpoch = store.epochAt(request.baseOffset - 1);
    if (ownEpoch !== request.prevEpoch) {
      throw offsetMismatch(replica, `record ${request.baseOffset - 1} has epoch ${ownEpoch}, primary's has ${request.prevEpoch}`);
    }
  }

  let previousEpoch = store.lastEpoch;
  for (let i = 0; i < request.records.length; i++) {
    const record = request.records[i];
    if (record.offset !== request.baseOffset + i) {
      throw new TesseraError('INVALID_REQUEST', `record ${i} has offset ${record.offset}, expected ${request.baseOffset + i}`);
    }
    if (record.epoch > request.epoch) {
      throw new TesseraError('INVALID_REQUEST', `record ${i} has epoch ${record.epoch} above the batch epoch ${request.epoch}`);
    }
    if (previousEpoch !== undefined && record.epoch < previousEpoch) {
      // Our tail was written in a later epoch than the primary's record: the logs diverged earlier.
      throw offsetMismatch(replica, `record ${record.offset} of epoch ${record.epoch} follows epoch ${previousEpoch}`);
    }
    previousEpoch = record.epoch;
  }
  const leoAfter = store.leo + request.records.length;
  const hw = Math.min(request.hw, leoAfter);
  store.append(request.records, request.commits, hw);
  replica.setSecondaryHw(hw);
  return { leo: store.leo, epoch: replica.epoch };
}

function offsetMismatch(replica: PartitionReplica, why: string): TesseraError {
  return new TesseraError('OFFSET_MISMATCH', `${replica.topic}/${replica.partition}: ${why}, log ends at ${replica.store.leo}`, {
    leo: replica.store.leo,
    epochs: replica.store.epochs(),
  });
}
