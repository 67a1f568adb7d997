/**
 * The follower's end of the replication stream: a kept-open connection on the broker's own
 * port (HTTP or HTTPS) over which another broker sends its replicate exchanges without an HTTP
 * request each. It starts as `GET /internal/replicate-stream` with `Upgrade:
 * tessera-replicate/1`, signed as a cluster member like every `/internal/*` call; after `101
 * Switching Protocols` the connection carries length-prefixed messages (framing.ts): each
 * request is one exchange's frame, each answer the same JSON `POST /internal/replicate`
 * answers, with the request's id. Exchanges on one connection run side by side, as concurrent
 * HTTP requests would; each partition still has one push in flight (the sender's lock).
 *
 * With a cluster secret, the 101 answer carries a fresh nonce and every message after it a MAC
 * keyed with the secret that signed the upgrade (framing.ts, StreamMac): like a signed HTTP
 * call, a message cannot be forged, altered or replayed even on a plain link, and the answers
 * are covered too. A message that fails its check, a request id that does not grow, a message
 * larger than the request body limit, or bytes that are not a message close the connection.
 * A broken invariant stops the broker, as on the HTTP edge.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { CLUSTER_AUTH_HEADER, InvariantError, TesseraError, verifyClusterAuth } from '@tessera/protocol';
import type { Logger } from '@tessera/service';
import {
  MAC_BYTES,
  MessageReader,
  REPLICATION_STREAM_PATH,
  REPLICATION_STREAM_PROTOCOL,
  STREAM_NONCE_HEADER,
  StreamMac,
  writeMessage,
} from './framing.js';

export interface StreamServerOptions {
  /** Accepted cluster secrets; undefined: every caller is accepted (as on the HTTP edge). */
  secrets: readonly string[] | undefined;
  /** The largest request body, as for HTTP requests. */
  maxMessageBytes: number;
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

export class ReplicationStreamServer {
  private readonly sockets = new Set<Duplex>();

  constructor(
    server: Server,
    private readonly options: StreamServerOptions,
  ) {
    server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => this.accept(request, socket, head));
  }

  /** Closes every stream (before the HTTP server closes: it waits for its connections). */
  close(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  private accept(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    const target = request.url ?? '';
    if (target !== REPLICATION_STREAM_PATH || request.method !== 'GET' || request.headers.upgrade?.toLowerCase() !== REPLICATION_STREAM_PROTOCOL) {
      refuse(socket, 404, new TesseraError('NOT_FOUND', `no upgrade to ${String(request.headers.upgrade)} at ${request.method} ${target}`));
      return;
    }
    const { secrets } = this.options;
    let mac: StreamMac | undefined;
    let nonceHeader = '';
    if (secrets !== undefined) {
      const header = request.headers[CLUSTER_AUTH_HEADER];
      const signed = typeof header === 'string' ? verifyClusterAuth(secrets, header, 'GET', target, undefined) : undefined;
      if (signed === undefined || !signed.ok || !signed.node.startsWith('broker-')) {
        // A valid signature of the coordinator is a member, just not one that may replicate.
        this.options.onAuthFailure?.(`cluster_${signed === undefined ? 'missing' : signed.ok ? 'not_a_broker' : signed.reason}`);
        refuse(socket, 401, new TesseraError('UNAUTHORIZED', 'the replication stream is for brokers of this cluster only'));
        return;
      }
      const nonce = randomBytes(16);
      mac = new StreamMac(signed.secret, nonce);
      nonceHeader = `${STREAM_NONCE_HEADER}: ${nonce.toString('base64url')}\r\n`;
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${REPLICATION_STREAM_PROTOCOL}\r\n${nonceHeader}\r\n`);
    (socket as Duplex & { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
    (socket as Duplex & { setTimeout?: (ms: number, onTimeout: () => void) => void }).setTimeout?.(IDLE_TIMEOUT_MS, () => socket.destroy());
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    const reader = new MessageReader(this.options.maxMessageBytes, mac === undefined ? 0 : MAC_BYTES);
    let lastId = 0;
    const onData = (chunk: Buffer) => {
      let messages;
      try {
        messages = reader.push(chunk);
      } catch (error) {
        this.options.logger.warn({ err: error }, 'replication stream closed: not a message');
        socket.destroy();
        return;
      }
      for (const message of messages) {
        if (mac !== undefined && (message.id <= lastId || !mac.check('request', message.id, message.body, message.mac))) {
          this.options.logger.warn({ id: message.id }, 'replication stream closed: a message failed its check');
          this.options.onAuthFailure?.('cluster_bad_signature');
          socket.destroy();
          return;
        }
        lastId = message.id;
        void this.serve(socket, mac, message.id, message.body);
      }
    };
    socket.on('data', onData);
    if (head.length > 0) onData(head);
  }

  private async serve(socket: Duplex, mac: StreamMac | undefined, id: number, frame: Buffer): Promise<void> {
    const startedMs = performance.now();
    let answer: unknown;
    let status = 200;
    try {
      answer = await this.options.handle(frame);
    } catch (error) {
      if (error instanceof InvariantError) {
        this.options.onInvariantBroken(error);
        return;
      }
      if (!(error instanceof TesseraError)) this.options.logger.error({ err: error }, 'replication exchange failed');
      const refusal = error instanceof TesseraError ? error : new TesseraError('INTERNAL', 'internal error');
      status = refusal.status;
      answer = refusal.toBody();
    }
    this.options.onExchange?.((performance.now() - startedMs) / 1000, status);
    if (socket.destroyed) return;
    const body = [Buffer.from(JSON.stringify(answer), 'utf8')];
    writeMessage(socket, id, mac?.sign('answer', id, body), body);
  }
}

/** Answers an upgrade that is not taken with a plain HTTP error (the DESIGN error body) and closes. */
function refuse(socket: Duplex, status: number, error: TesseraError): void {
  const body = JSON.stringify(error.toBody());
  const reason = status === 401 ? 'Unauthorized' : 'Not Found';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
