/**
 * The follower's end of the replication stream: a kept-open connection on the broker's own
 * port (HTTP or HTTPS) over which another broker sends its replicate exchanges without an HTTP
 * request each. It starts as `GET /internal/replicate-stream` with `Upgrade:
 * tessera-replicate/1`, signed as a cluster member like every `/internal/*` call; after `101
 * Switching Protocols` the connection carries the messages of every stream (`@tessera/protocol`,
 * stream framing): each request is one exchange's frame, each answer the same JSON `POST
 * /internal/replicate` answers, with the request's id. Exchanges on one connection run side by
 * side, as concurrent HTTP requests would; each partition still has one push in flight (the
 * sender's lock).
 *
 * With a cluster secret, the 101 answer carries a fresh nonce and every message after it a MAC
 * keyed with the secret that signed the upgrade (framing.ts, StreamMac): like a signed HTTP
 * call, a message cannot be forged, altered or replayed even on a plain link, and the answers
 * are covered too. On a TLS connection whose leader offers it (STREAM_SEAL_HEADER) the messages
 * go without MACs: TLS keeps them from being forged, altered or replayed, and the upgrade on the
 * same connection was signed. A message that fails its check, a request id that does not grow,
 * a message larger than the request body limit, or bytes that are not a message close the
 * connection. A broken invariant stops the broker, as on the HTTP edge.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { CLUSTER_AUTH_HEADER, InvariantError, TesseraError, acceptUpgrade, refuseUpgrade, serveStream, verifyClusterAuth } from '@tessera/protocol';
import { DEFAULT_SERVER_LIMITS, refusalOf, type Logger } from '@tessera/service';
import { REPLICATION_STREAM_PATH, REPLICATION_STREAM_PROTOCOL, SEAL_BY_TLS, STREAM_NONCE_HEADER, STREAM_SEAL_HEADER, StreamMac } from './framing.js';
import { StreamSockets } from '../../http/upgrades.js';

export interface StreamServerOptions {
  /** Accepted cluster secrets; undefined: every caller is accepted (as on the HTTP edge). */
  secrets: readonly string[] | undefined;
  /** The largest request body, as for HTTP requests. */
  maxMessageBytes: number;
  /** How long a message may take to arrive once begun, as an HTTP request body (default: the HTTP edge's). */
  messageTimeoutMs?: number;
  /** Applies one exchange (a replicate frame); its answer is sent back as JSON. */
  handle: (frame: Buffer) => Promise<unknown>;
  onInvariantBroken: (error: Error) => void;
  logger: Logger;
  /** Observes each exchange: its seconds and the HTTP status its answer stands for (metrics). */
  onExchange?: (seconds: number, status: number) => void;
  /**
   * Counts an upgrade refused for its credential, or a message whose MAC failed, with the
   * `reason` of `tessera_auth_failures_total` a refused HTTP call would get (`cluster_…`).
   */
  onAuthFailure?: (reason: string) => void;
}

/** A connection nobody sent anything on for this long is closed (the sender opens a new one when it needs one). */
const IDLE_TIMEOUT_MS = 5 * 60_000;
/** Exchanges served at once on one connection (a leader has at most one push per partition in flight). */
const MAX_IN_FLIGHT = 1_024;
/** Requests of the largest size served at once on one connection (their bytes bound the memory it holds). */
const MAX_IN_FLIGHT_MESSAGES_OF_MAX_SIZE = 4;

export class ReplicationStreamServer {
  readonly path = REPLICATION_STREAM_PATH;
  readonly protocol = REPLICATION_STREAM_PROTOCOL;
  private readonly sockets = new StreamSockets();

  constructor(private readonly options: StreamServerOptions) {}

  /** Closes every stream (before the HTTP server closes: it waits for its connections). */
  close(): void {
    this.sockets.close();
  }

  /** Takes an upgrade to REPLICATION_STREAM_PROTOCOL at REPLICATION_STREAM_PATH (upgrades.ts routes it here). */
  accept(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const { secrets } = this.options;
    let seal: StreamMac | undefined;
    const headers: Record<string, string> = {};
    if (secrets !== undefined) {
      const header = request.headers[CLUSTER_AUTH_HEADER];
      const signed = typeof header === 'string' ? verifyClusterAuth(secrets, header, 'GET', REPLICATION_STREAM_PATH, undefined) : undefined;
      if (signed === undefined || !signed.ok || !signed.node.startsWith('broker-')) {
        // A valid signature of the coordinator is a member, just not one that may replicate.
        this.options.onAuthFailure?.(`cluster_${signed === undefined ? 'missing' : signed.ok ? 'not_a_broker' : signed.reason}`);
        refuseUpgrade(socket, new TesseraError('UNAUTHORIZED', 'the replication stream is for brokers of this cluster only'));
        return;
      }
      if (!(request.headers[STREAM_SEAL_HEADER] === SEAL_BY_TLS && isTls(socket))) {
        const nonce = randomBytes(16);
        seal = new StreamMac(signed.secret, nonce);
        headers[STREAM_NONCE_HEADER] = nonce.toString('base64url');
      }
    }
    if (!this.sockets.add(socket)) return;
    acceptUpgrade(socket, REPLICATION_STREAM_PROTOCOL, headers);
    serveStream(socket, head, {
      maxMessageBytes: this.options.maxMessageBytes,
      ...(seal ? { seal } : {}),
      maxInFlight: MAX_IN_FLIGHT,
      maxInFlightBytes: MAX_IN_FLIGHT_MESSAGES_OF_MAX_SIZE * this.options.maxMessageBytes,
      idleTimeoutMs: IDLE_TIMEOUT_MS,
      messageTimeoutMs: this.options.messageTimeoutMs ?? DEFAULT_SERVER_LIMITS.requestTimeoutMs,
      serve: (_id, frame) => this.serve(frame),
      onBadMessage: (reason, detail) => {
        if (reason === 'failed_check') {
          this.options.logger.warn({ detail }, 'replication stream closed: a message failed its check');
          this.options.onAuthFailure?.('cluster_bad_signature');
        } else {
          this.options.logger.warn({ detail }, 'replication stream closed: not a message');
        }
      },
    });
  }

  private async serve(frame: Buffer): Promise<Buffer[] | undefined> {
    const startedMs = performance.now();
    let answer: unknown;
    let status = 200;
    try {
      answer = await this.options.handle(frame);
    } catch (error) {
      if (error instanceof InvariantError) {
        this.options.onInvariantBroken(error);
        return undefined;
      }
      // Answered and logged as `POST /internal/replicate` would be.
      const refusal = refusalOf(error, this.options.logger, 'STREAM', REPLICATION_STREAM_PATH);
      status = refusal.status;
      answer = refusal.toBody();
    }
    this.options.onExchange?.((performance.now() - startedMs) / 1000, status);
    return [Buffer.from(JSON.stringify(answer), 'utf8')];
  }
}

/** Whether the upgraded connection is TLS (the broker serves HTTPS), not a plain link. */
function isTls(socket: Duplex): boolean {
  return (socket as Partial<TLSSocket>).encrypted === true;
}
