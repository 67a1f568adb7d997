/**
 * What is particular to the replication stream (see stream-server.ts); its messages are those
 * of every stream (`@tessera/protocol`'s stream framing). A request's body is a replicate frame
 * (`batch/frame.ts`), an answer's body is JSON. On a cluster with a secret every message on a
 * plain link carries a MAC (StreamMac); on TLS, where the connection itself keeps messages from
 * being forged, altered or replayed, none once both ends say so (STREAM_SEAL_HEADER); on a
 * cluster without a secret (`--insecure-cluster`) none.
 */
import { timingSafeEqual } from 'node:crypto';
import { MAC_BYTES, messageMac, type MessageSeal } from '@tessera/protocol';

/** What an upgrade asks for, and the path it asks at (a GET with `Upgrade:`). */
export const REPLICATION_STREAM_PROTOCOL = 'tessera-replicate/1';
export const REPLICATION_STREAM_PATH = '/internal/replicate-stream';
/** The 101 answer's header with the connection's nonce (base64url), when its messages carry MACs. */
export const STREAM_NONCE_HEADER = 'x-tessera-stream-nonce';
/**
 * The upgrade's header by which a leader on TLS says the connection suffices to protect its
 * messages (value `tls`). A follower that gets it on a TLS connection answers without a nonce
 * and both ends send their messages without MACs; a follower of an earlier version ignores it
 * and sends a nonce, and then both ends seal as before.
 */
export const STREAM_SEAL_HEADER = 'x-tessera-stream-seal';
export const SEAL_BY_TLS = 'tls';

/** What a MAC covers before the nonce: the protocol and the direction. */
const MAC_PREFIX = {
  request: Buffer.from(`${REPLICATION_STREAM_PROTOCOL}\nrequest\n`),
  answer: Buffer.from(`${REPLICATION_STREAM_PROTOCOL}\nanswer\n`),
} as const;

/**
 * The MACs of one connection's messages: HMAC-SHA256 with the cluster secret that signed the
 * upgrade over the connection's nonce (fresh from the follower at each upgrade), the direction,
 * the id and the body. A message from another connection, the other direction, or with its id
 * or body changed fails the check; the follower also takes request ids only in increasing order,
 * so no request is applied twice from a replay.
 */
export class StreamMac implements MessageSeal {
  constructor(
    private readonly secret: string,
    private readonly nonce: Buffer,
  ) {}

  sign(direction: 'request' | 'answer', id: number, body: readonly Buffer[]): Buffer {
    const idBytes = Buffer.allocUnsafe(4);
    idBytes.writeUInt32BE(id, 0);
    return messageMac(this.secret, [MAC_PREFIX[direction], this.nonce, idBytes, ...body]);
  }

  check(direction: 'request' | 'answer', id: number, body: Buffer, mac: Buffer): boolean {
    return mac.length === MAC_BYTES && timingSafeEqual(this.sign(direction, id, [body]), mac);
  }
}
