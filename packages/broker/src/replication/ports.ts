/**
 * What a partition needs from the rest of the broker, as narrow interfaces, so the partition
 * state machine does not depend on HTTP or on the coordinator link directly.
 */
import type { IsrChangeRequest, PartitionAssignment, PartitionPush, ReassignCompleteRequest } from '@tessera/protocol';

export interface ClusterPort {
  readonly brokerId: number;
  /** The URL of a broker as the last metadata gave it. */
  brokerUrl(id: number): string | undefined;
  /** `{id, url}` for NOT_PRIMARY answers; null when unknown. */
  brokerRef(id: number | null): { id: number; url: string } | null;
  /** Asks the coordinator to change a partition's ISR (throws its refusal or a network error). */
  changeIsr(request: IsrChangeRequest): Promise<PartitionAssignment>;
  /** Tells the coordinator the replica being added caught up: it becomes the secondary (throws its refusal or a network error). */
  completeReassignment(request: ReassignCompleteRequest): Promise<PartitionAssignment>;
  /** Refreshes metadata in the background (coalesced). */
  requestMetadataRefresh(reason: string): void;
  /** A number that grows on every ISR the broker takes from a coordinator answer (see reconcile). */
  nextIsrSeq(): number;
}

/** One partition's push without its byte count (the exchange fills it in from `batches`). */
export type PushHead = Omit<PartitionPush, 'bytes'>;

export interface ReplicationPort {
  /**
   * Sends one partition's push to the broker at `url` (in an exchange shared with the other
   * partitions pushing to that broker at the same moment). Resolves with the secondary's LEO;
   * throws its refusal as a TesseraError, or the network error.
   */
  push(url: string, head: PushHead, batches: Buffer[], timeoutMs: number): Promise<{ leo: number; epoch: number }>;
}
