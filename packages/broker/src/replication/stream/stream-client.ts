/**
 * The leader's end of the replication stream (stream-server.ts): one kept-open connection per
 * peer broker (`@tessera/protocol`'s StreamClient), opened on first use with a signed upgrade,
 * carrying one message per exchange. When the follower's 101 carries a nonce, every message
 * carries a MAC (framing.ts, StreamMac); an answer that fails its check closes the connection.
 * Over TLS the leader offers to go without MACs (STREAM_SEAL_HEADER): a 101 without a nonce on
 * a TLS connection whose certificate was verified is then taken as is, since TLS already keeps
 * its messages from being forged, altered or replayed. Otherwise a signing leader takes no
 * stream without a nonce (it would take answers nobody vouched for): it raises
 * StreamUnsupported and sends that peer HTTP requests instead, as it does to a peer that
 * answers the upgrade with 404 (a broker of an earlier version).
 */
import type { TLSSocket } from 'node:tls';
import { CLUSTER_AUTH_HEADER, StreamClient, StreamUnsupported, type ClusterSigner, type TlsClientOptions } from '@tessera/protocol';
import { REPLICATION_STREAM_PATH, REPLICATION_STREAM_PROTOCOL, SEAL_BY_TLS, STREAM_NONCE_HEADER, STREAM_SEAL_HEADER, StreamMac } from './framing.js';

export { StreamUnsupported };

export interface StreamClientOptions {
  tls?: TlsClientOptions;
  signer?: ClusterSigner;
  /** The largest answer accepted (answers are small JSON). */
  maxAnswerBytes: number;
}

export class ReplicationStreamClient {
  private readonly streams: StreamClient;

  constructor(options: StreamClientOptions) {
    const { signer } = options;
    this.streams = new StreamClient({
      name: 'replication stream',
      protocol: REPLICATION_STREAM_PROTOCOL,
      path: REPLICATION_STREAM_PATH,
      maxAnswerBytes: options.maxAnswerBytes,
      ...(options.tls ? { tls: options.tls } : {}),
      headers: (url) => ({
        'user-agent': 'tessera-broker',
        ...(signer ? { [CLUSTER_AUTH_HEADER]: signer.header('GET', url.pathname, undefined) } : {}),
        ...(signer && url.protocol === 'https:' ? { [STREAM_SEAL_HEADER]: SEAL_BY_TLS } : {}),
      }),
      seal: (response, baseUrl) => {
        const nonce = response.headers[STREAM_NONCE_HEADER];
        if (signer === undefined) return undefined;
        if (typeof nonce === 'string') return new StreamMac(signer.signingSecret, Buffer.from(nonce, 'base64url'));
        if (verifiedTls(response)) return undefined;
        throw new StreamUnsupported(baseUrl, 'replication stream');
      },
    });
  }

  /** False while the broker at `baseUrl` is taken to offer no stream (it refused one lately): send it HTTP requests. */
  offersStream(baseUrl: string): boolean {
    return this.streams.offersStream(baseUrl);
  }

  /** Sends one exchange's frame to the broker at `baseUrl`; resolves with the answer's bytes (JSON). */
  call(baseUrl: string, frame: readonly Buffer[], timeoutMs: number): Promise<Buffer> {
    return this.streams.call(baseUrl, frame, timeoutMs);
  }

  close(): void {
    this.streams.close();
  }
}

/** Whether the 101 came over TLS from a server whose certificate was verified: only then may a stream go without MACs. */
function verifiedTls(response: { socket: unknown }): boolean {
  const socket = response.socket as Partial<TLSSocket> | null;
  return socket?.encrypted === true && socket.authorized === true;
}
