/**
 * The leader's end of the replication stream (stream-server.ts): one kept-open connection per
 * peer broker, opened on first use with a signed upgrade, carrying one message per exchange.
 * Calls on a connection are told apart by id and may be answered in any order.
 *
 * A call has one deadline (connecting included). When it passes, or the connection fails, every
 * call on that connection fails with a network error (ETIMEDOUT, ECONNRESET: retriable, as
 * the HTTP client's) and the connection is closed; the next call opens a new one. Closing on
 * a timeout keeps a stream whose bytes may have been lost mid-message from being used again.
 * A peer that does not offer the stream (it answers the upgrade with 404: a broker of an
 * earlier version) raises StreamUnsupported, and the caller uses `POST /internal/replicate`.
 * When the follower's 101 carries a nonce, every message carries a MAC (framing.ts, StreamMac);
 * an answer that fails its check closes the connection. Ids only grow on a connection; one
 * whose ids are used up is replaced, and closed once its last call is answered.
 */
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { CLUSTER_AUTH_HEADER, TesseraError, noAnswerError, parseJsonAnswer, type ClusterSigner, type TlsClientOptions } from '@tessera/protocol';
import {
  MAC_BYTES,
  MAX_MESSAGE_ID,
  MessageReader,
  REPLICATION_STREAM_PATH,
  REPLICATION_STREAM_PROTOCOL,
  STREAM_NONCE_HEADER,
  StreamMac,
  writeMessage,
} from './framing.js';

export interface StreamClientOptions {
  tls?: TlsClientOptions;
  signer?: ClusterSigner;
  /** The largest answer accepted (answers are small JSON). */
  maxAnswerBytes: number;
}

/** The peer answered the upgrade with 404 (it has no replication stream), or, to a signing leader, without a nonce. */
export class StreamUnsupported extends Error {
  constructor(url: string) {
    super(`${url} offers no replication stream`);
    this.name = 'StreamUnsupported';
  }
}

export class ReplicationStreamClient {
  private readonly connections = new Map<string, StreamConnection>();

  constructor(private readonly options: StreamClientOptions) {}

  /** Sends one exchange's frame to the broker at `baseUrl`; resolves with the answer's bytes (JSON). */
  call(baseUrl: string, frame: readonly Buffer[], timeoutMs: number): Promise<Buffer> {
    let connection = this.connections.get(baseUrl);
    if (connection === undefined || connection.isClosed || connection.idsUsedUp) {
      connection = new StreamConnection(baseUrl, this.options);
      this.connections.set(baseUrl, connection);
    }
    return connection.call(frame, timeoutMs);
  }

  close(): void {
    for (const connection of this.connections.values()) connection.close(noAnswerError('ECONNRESET', 'the replication stream client closed'));
    this.connections.clear();
  }
}

interface Call {
  resolve: (answer: Buffer) => void;
  reject: (error: unknown) => void;
  timer: NodeJS.Timeout;
}

class StreamConnection {
  private readonly calls = new Map<number, Call>();
  private readonly ready: Promise<{ socket: Duplex; mac: StreamMac | undefined }>;
  private socket: Duplex | undefined;
  private request: http.ClientRequest | undefined;
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly baseUrl: string,
    private readonly options: StreamClientOptions,
  ) {
    this.ready = this.open();
    this.ready.catch((error: unknown) => this.close(error));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get idsUsedUp(): boolean {
    return this.nextId > MAX_MESSAGE_ID;
  }

  call(frame: readonly Buffer[], timeoutMs: number): Promise<Buffer> {
    if (this.closed || this.idsUsedUp) return Promise.reject(noAnswerError('ECONNRESET', `replication stream to ${this.baseUrl} is closed`));
    const id = this.nextId++;
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => this.close(noAnswerError('ETIMEDOUT', `replicate to ${this.baseUrl}: no answer within ${timeoutMs} ms`)), timeoutMs);
      this.calls.set(id, { resolve, reject, timer });
      this.ready.then(
        ({ socket, mac }) => {
          if (!this.calls.has(id)) return;
          try {
            writeMessage(socket, id, mac?.sign('request', id, frame), frame);
          } catch (error) {
            // Part of a message may be on the wire: the connection cannot carry another one.
            this.close(error);
          }
        },
        () => undefined, // close() rejected the call already
      );
    });
  }

  /** Fails every call in flight with `error` and closes the connection. */
  close(error: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.request?.destroy();
    this.socket?.destroy();
    for (const call of this.calls.values()) {
      clearTimeout(call.timer);
      call.reject(error);
    }
    this.calls.clear();
  }

  private open(): Promise<{ socket: Duplex; mac: StreamMac | undefined }> {
    return new Promise((resolve, reject) => {
      // Appended, as every route to a peer is (its URL may carry a path prefix).
      const url = new URL(this.baseUrl + REPLICATION_STREAM_PATH);
      const headers: Record<string, string> = { connection: 'Upgrade', upgrade: REPLICATION_STREAM_PROTOCOL, 'user-agent': 'tessera-broker' };
      if (this.options.signer) headers[CLUSTER_AUTH_HEADER] = this.options.signer.header('GET', url.pathname, undefined);
      const request =
        url.protocol === 'https:'
          ? https.request(url, { method: 'GET', headers, agent: false, ...this.options.tls })
          : http.request(url, { method: 'GET', headers, agent: false });
      this.request = request;
      request.on('upgrade', (response: http.IncomingMessage, socket: Duplex, head: Buffer) => {
        this.socket = socket;
        if (this.closed) {
          socket.destroy();
          return;
        }
        // A follower with a cluster secret sends a nonce, and then every message carries a MAC.
        // A signing leader takes no stream without one (it would take answers nobody vouched
        // for): it sends this peer HTTP requests instead.
        const nonce = response.headers[STREAM_NONCE_HEADER];
        if (this.options.signer && typeof nonce !== 'string') {
          socket.destroy();
          reject(new StreamUnsupported(this.baseUrl));
          return;
        }
        const mac = this.options.signer && typeof nonce === 'string' ? new StreamMac(this.options.signer.signingSecret, Buffer.from(nonce, 'base64url')) : undefined;
        (socket as Duplex & { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
        this.read(socket, head, mac);
        resolve({ socket, mac });
      });
      request.on('response', (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          if (response.statusCode === 404) {
            reject(new StreamUnsupported(this.baseUrl));
            return;
          }
          const status = response.statusCode ?? 500;
          if (status < 400) {
            reject(new TesseraError('INTERNAL', `replication stream to ${this.baseUrl}: HTTP ${status} instead of an upgrade`));
            return;
          }
          // A refusal's error body (401, 403, 503, ...) becomes the error the follower meant.
          try {
            parseJsonAnswer(status, Buffer.concat(chunks).toString('utf8'), 'GET', url.href);
          } catch (error) {
            reject(error);
          }
        });
        response.on('error', reject);
      });
      request.on('error', (error: Error & { code?: string }) => reject(noAnswerError(error.code ?? 'ECONNRESET', `replication stream to ${this.baseUrl}: ${error.message}`, error)));
      request.end();
    });
  }

  private read(socket: Duplex, head: Buffer, mac: StreamMac | undefined): void {
    const reader = new MessageReader(this.options.maxAnswerBytes, mac === undefined ? 0 : MAC_BYTES);
    const onData = (chunk: Buffer) => {
      let messages;
      try {
        messages = reader.push(chunk);
      } catch (error) {
        this.close(noAnswerError('ECONNRESET', `replication stream to ${this.baseUrl}: ${(error as Error).message}`, error));
        return;
      }
      for (const message of messages) {
        if (mac !== undefined && !mac.check('answer', message.id, message.body, message.mac)) {
          this.close(noAnswerError('ECONNRESET', `replication stream to ${this.baseUrl}: an answer failed its check`));
          return;
        }
        const call = this.calls.get(message.id);
        if (call === undefined) continue;
        this.calls.delete(message.id);
        clearTimeout(call.timer);
        call.resolve(message.body);
      }
      // A connection whose ids are used up is closed once nothing is left in flight on it.
      if (this.idsUsedUp && this.calls.size === 0) this.close(noAnswerError('ECONNRESET', 'ids used up'));
    };
    socket.on('data', onData);
    socket.on('error', (error: Error & { code?: string }) => this.close(noAnswerError(error.code ?? 'ECONNRESET', `replication stream to ${this.baseUrl}: ${error.message}`, error)));
    socket.on('close', () => this.close(noAnswerError('ECONNRESET', `replication stream to ${this.baseUrl} closed`)));
    if (head.length > 0) onData(head);
  }
}
