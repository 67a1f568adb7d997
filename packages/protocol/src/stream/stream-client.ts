/**
 * The calling end of a stream (framing.ts): one kept-open connection per peer, opened on first
 * use with an HTTP upgrade (`GET <path>` with `Upgrade: <protocol>`), carrying one message per
 * call. Calls on a connection are told apart by id and may be answered in any order.
 *
 * A call has one deadline (connecting included). When it passes, or the connection fails, every
 * call on that connection fails with a network error (ETIMEDOUT, ECONNRESET: retriable, as the
 * HTTP clients' are) and the connection is closed; the next call opens a new one. Closing on a
 * timeout keeps a stream whose bytes may have been lost mid-message from being used again.
 * A peer that does not offer the stream raises StreamUnsupported, and the caller uses HTTP
 * requests instead: it answers the upgrade with 404 (a service of an earlier version), or
 * something between the caller and the peer that passes no upgrades (a proxy) refuses it with
 * 400, 405, 426 or 501 and a body that is not a Tessera error. The
 * client remembers that for a while (`offersStream()` says false), so callers send HTTP requests
 * without asking the peer again on every call, and ask again once it has passed (the peer may
 * have been upgraded meanwhile). A refused upgrade's error body becomes the error it names (401,
 * 403, 503...), as over HTTP.
 *
 * A call may name a credential (the Authorization header of the upgrade): a call with another
 * credential than its connection's opens a new connection, and the old one is closed once its
 * last call is answered (as is one whose ids are used up).
 */
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { TesseraError } from '../errors.js';
import { noAnswerError, parseJsonAnswer } from '../http-client.js';
import { RefusedPeers } from '../refused-peers.js';
import type { TlsClientOptions } from '../tls.js';
import { MAC_BYTES, MAX_MESSAGE_ID, MessageReader, writeMessage, type MessageSeal } from './framing.js';

export interface StreamClientOptions {
  /** What the stream is called in errors ("replication stream"). */
  name: string;
  /** The upgrade's protocol (`Upgrade:`) and path (appended to the peer's base URL). */
  protocol: string;
  path: string;
  tls?: TlsClientOptions;
  /** The largest answer accepted. */
  maxAnswerBytes: number;
  /** The upgrade request's own headers (a signature, a user agent), made when a connection opens. */
  headers?: (url: URL) => Record<string, string>;
  /**
   * The seal of a connection's messages from its 101 answer, undefined for none. Throwing
   * StreamUnsupported refuses the stream (the caller then uses HTTP).
   */
  seal?: (response: http.IncomingMessage, baseUrl: string) => MessageSeal | undefined;
  /** How long a peer that refused the stream (StreamUnsupported) is taken to offer none (default 60 s). */
  unsupportedForMs?: number;
}

/** After a refusal of the stream, how long its peer is taken to offer none before it is asked again. */
export const STREAM_UNSUPPORTED_FOR_MS = 60_000;
/** The most of a refused upgrade's body that is read for its error. */
const MAX_REFUSAL_BYTES = 64 * 1024;

/**
 * Statuses with which something that is not a Tessera service (a proxy that passes no
 * upgrades) refuses an upgrade; with a body that is not a Tessera error they mean "no stream
 * on this path", as a 404 does.
 */
const NO_UPGRADE_STATUSES: ReadonlySet<number> = new Set([400, 405, 426, 501]);

/** The error of `text` when it is a Tessera error body (a refusal by the peer itself, which keeps its meaning). */
function errorOfBody(text: string): TesseraError | undefined {
  try {
    return TesseraError.fromBody(JSON.parse(text));
  } catch {
    return undefined;
  }
}

/** The peer has no such stream (404 to the upgrade, or an upgrade refused on the way), or offers it without what the caller needs. */
export class StreamUnsupported extends Error {
  constructor(url: string, name: string) {
    super(`${url} offers no ${name}`);
    this.name = 'StreamUnsupported';
  }
}

export class StreamClient {
  private readonly connections = new Map<string, StreamConnection>();
  /** Peers that refused the stream lately: taken to offer none for `unsupportedForMs`. */
  private readonly unsupported = new RefusedPeers();
  private closed = false;

  constructor(private readonly options: StreamClientOptions) {}

  /**
   * False while the peer at `baseUrl` is taken to offer no stream (it refused one less than
   * `unsupportedForMs` ago): its callers send HTTP requests instead of calling here.
   */
  offersStream(baseUrl: string): boolean {
    return !this.unsupported.has(baseUrl);
  }

  /**
   * Sends one request's body to the peer at `baseUrl`; resolves with the answer's body.
   * `credential`: the upgrade's Authorization header, when the peer wants one. An aborted
   * `signal` rejects the call with its reason (an answer that comes later is dropped).
   */
  call(baseUrl: string, body: readonly Buffer[], timeoutMs: number, credential?: string, signal?: AbortSignal): Promise<Buffer> {
    if (this.closed) return Promise.reject(noAnswerError('ECONNRESET', `the ${this.options.name} client is closed`));
    let connection = this.connections.get(baseUrl);
    if (connection === undefined || !connection.takesCalls || connection.credential !== credential) {
      connection?.retire();
      connection = new StreamConnection(baseUrl, credential, this.options);
      connection.ready.catch((error: unknown) => {
        if (!(error instanceof StreamUnsupported)) return;
        this.unsupported.note(baseUrl, this.options.unsupportedForMs ?? STREAM_UNSUPPORTED_FOR_MS);
      });
      this.connections.set(baseUrl, connection);
    }
    return connection.call(body, timeoutMs, signal);
  }

  /** Fails every call in flight and refuses new ones. */
  close(): void {
    this.closed = true;
    for (const connection of this.connections.values()) connection.close(noAnswerError('ECONNRESET', `the ${this.options.name} client closed`));
    this.connections.clear();
  }
}

interface Call {
  resolve: (answer: Buffer) => void;
  reject: (error: unknown) => void;
  timer: NodeJS.Timeout;
  /** Removes the abort listener, if any. */
  detach?: () => void;
}

class StreamConnection {
  private readonly calls = new Map<number, Call>();
  /** Settles once the upgrade is answered: the open socket, or why there is none. */
  readonly ready: Promise<{ socket: Duplex; seal: MessageSeal | undefined }>;
  private socket: Duplex | undefined;
  private request: http.ClientRequest | undefined;
  private nextId = 1;
  private closed = false;
  private retired = false;

  constructor(
    private readonly baseUrl: string,
    readonly credential: string | undefined,
    private readonly options: StreamClientOptions,
  ) {
    this.ready = this.open();
    this.ready.catch((error: unknown) => this.close(error));
  }

  /** Open, not retired, with ids left. */
  get takesCalls(): boolean {
    return !this.closed && !this.retired && this.nextId <= MAX_MESSAGE_ID;
  }

  /** Takes no new calls; closes once the calls in flight are answered. */
  retire(): void {
    this.retired = true;
    if (this.calls.size === 0) this.close(noAnswerError('ECONNRESET', `${this.options.name} to ${this.baseUrl} retired`));
  }

  call(body: readonly Buffer[], timeoutMs: number, signal?: AbortSignal): Promise<Buffer> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (!this.takesCalls) return Promise.reject(noAnswerError('ECONNRESET', `${this.options.name} to ${this.baseUrl} is closed`));
    const id = this.nextId++;
    return new Promise<Buffer>((resolve, reject) => {
      // The connection may have lost bytes mid-message: every call on it fails, and the next opens a new one.
      const timer = setTimeout(
        () => this.close(noAnswerError('ETIMEDOUT', `${this.options.name} to ${this.baseUrl}: a call got no answer within ${timeoutMs} ms; the connection was closed`)),
        timeoutMs,
      );
      const call: Call = { resolve, reject, timer };
      if (signal !== undefined) {
        const onAbort = () => {
          if (this.take(id) !== undefined) reject(signal.reason);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        call.detach = () => signal.removeEventListener('abort', onAbort);
      }
      this.calls.set(id, call);
      this.holdProcess();
      this.ready.then(
        ({ socket, seal }) => {
          if (!this.calls.has(id)) return;
          try {
            writeMessage(socket, id, seal?.sign('request', id, body), body);
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
      call.detach?.();
      call.reject(error);
    }
    this.calls.clear();
  }

  /**
   * An open connection keeps the process alive only while it has calls in flight: a program
   * that forgets to close its client still exits when its work is done, as with HTTP keep-alive.
   */
  private holdProcess(): void {
    const socket = this.socket as (Duplex & { ref?: () => void; unref?: () => void }) | undefined;
    if (this.calls.size > 0) socket?.ref?.();
    else socket?.unref?.();
  }

  /** Removes call `id` (answered or abandoned) with its timer and listener; undefined when it is gone already. */
  private take(id: number): Call | undefined {
    const call = this.calls.get(id);
    if (call === undefined) return undefined;
    this.calls.delete(id);
    clearTimeout(call.timer);
    call.detach?.();
    this.holdProcess();
    if (!this.takesCalls && this.calls.size === 0) queueMicrotask(() => this.close(noAnswerError('ECONNRESET', `${this.options.name} to ${this.baseUrl} retired`)));
    return call;
  }

  private open(): Promise<{ socket: Duplex; seal: MessageSeal | undefined }> {
    const { name } = this.options;
    return new Promise((resolve, reject) => {
      // Appended, as every route to a peer is (its URL may carry a path prefix).
      const url = new URL(this.baseUrl + this.options.path);
      const headers: Record<string, string> = { connection: 'Upgrade', upgrade: this.options.protocol, ...this.options.headers?.(url) };
      if (this.credential !== undefined) headers.authorization = this.credential;
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
        let seal: MessageSeal | undefined;
        try {
          seal = this.options.seal?.(response, this.baseUrl);
        } catch (error) {
          socket.destroy();
          reject(error);
          return;
        }
        (socket as Duplex & { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
        this.read(socket, head, seal);
        this.holdProcess();
        resolve({ socket, seal });
      });
      request.on('response', (response) => {
        // Enough of a refusal's body for its error (a proxy's page may be large, or endless).
        const chunks: Buffer[] = [];
        let kept = 0;
        response.on('data', (chunk: Buffer) => {
          if (kept >= MAX_REFUSAL_BYTES) return;
          chunks.push(chunk);
          kept += chunk.length;
        });
        response.on('end', () => {
          const status = response.statusCode ?? 500;
          const text = Buffer.concat(chunks).toString('utf8');
          const meant = errorOfBody(text);
          if (status === 404 || (NO_UPGRADE_STATUSES.has(status) && meant === undefined)) {
            reject(new StreamUnsupported(this.baseUrl, name));
            return;
          }
          if (status < 400) {
            reject(new TesseraError('INTERNAL', `${name} to ${this.baseUrl}: HTTP ${status} instead of an upgrade`));
            return;
          }
          // A refusal's error body (401, 403, 503, ...) becomes the error the peer meant; another
          // body, the error its status stands for.
          if (meant !== undefined) {
            reject(meant);
            return;
          }
          try {
            parseJsonAnswer(status, text, 'GET', url.href);
          } catch (error) {
            reject(error);
          }
        });
        response.on('error', reject);
      });
      request.on('error', (error: Error & { code?: string }) => reject(noAnswerError(error.code ?? 'ECONNRESET', `${name} to ${this.baseUrl}: ${error.message}`, error)));
      request.end();
    });
  }

  private read(socket: Duplex, head: Buffer, seal: MessageSeal | undefined): void {
    const { name } = this.options;
    const reader = new MessageReader(this.options.maxAnswerBytes, seal === undefined ? 0 : MAC_BYTES);
    const onData = (chunk: Buffer) => {
      let messages;
      try {
        messages = reader.push(chunk);
      } catch (error) {
        this.close(noAnswerError('ECONNRESET', `${name} to ${this.baseUrl}: ${(error as Error).message}`, error));
        return;
      }
      for (const message of messages) {
        if (seal !== undefined && !seal.check('answer', message.id, message.body, message.mac)) {
          this.close(noAnswerError('ECONNRESET', `${name} to ${this.baseUrl}: an answer failed its check`));
          return;
        }
        // A connection that takes no more calls is closed once nothing is left in flight on it (take()).
        this.take(message.id)?.resolve(message.body);
      }
    };
    socket.on('data', onData);
    socket.on('error', (error: Error & { code?: string }) => this.close(noAnswerError(error.code ?? 'ECONNRESET', `${name} to ${this.baseUrl}: ${error.message}`, error)));
    socket.on('close', () => this.close(noAnswerError('ECONNRESET', `${name} to ${this.baseUrl} closed`)));
    if (head.length > 0) onData(head);
  }
}
