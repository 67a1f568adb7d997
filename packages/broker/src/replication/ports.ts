/**
 * What a partition replica needs from the rest of the broker, as narrow interfaces, so the
 * replica state machine does not depend on HTTP or on the coordinator link directly.
 */
import type { IsrChangeRequest, PartitionAssignment, ReassignCompleteRequest, ReplicateRequest, ReplicateResponse } from '@tessera/protocol';

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

export interface ReplicationPort {
  replicate(url: string, request: ReplicateRequest, timeoutMs: number): Promise<ReplicateResponse>;
}
