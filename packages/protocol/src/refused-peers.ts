/**
 * Peers that refused something lately (a feature of a later release they lack: the data stream,
 * a request field), each for a while: they are asked again afterwards, as they may have been
 * upgraded meanwhile.
 */

/** Most peers remembered: a few per broker address; cleared if addresses keep changing. */
const MAX_REFUSED_PEERS = 4_096;

export class RefusedPeers {
  /** Until when (performance.now()) each peer is taken to refuse. */
  private readonly until = new Map<string, number>();

  /** True while `peer` refused less than the time noted for it ago. */
  has(peer: string): boolean {
    if (this.until.size === 0) return false;
    const until = this.until.get(peer);
    if (until === undefined) return false;
    if (performance.now() < until) return true;
    this.until.delete(peer);
    return false;
  }

  /** `peer` refused now: it is taken to refuse for the next `forMs`. */
  note(peer: string, forMs: number): void {
    if (this.until.size >= MAX_REFUSED_PEERS) this.until.clear();
    this.until.set(peer, performance.now() + forMs);
  }
}
