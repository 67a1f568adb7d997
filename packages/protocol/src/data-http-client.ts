/**
 * The HTTP client of the data path (client → broker produce, fetch, commit; usable broker
 * → broker): undici with a bounded keep-alive pool per origin. It never retries by itself
 * (callers retry through `retry.ts`), every call has an explicit deadline, error answers
 * become the TesseraError the service meant (as with JsonHttpClient, which stays on got
 * for the control plane), and bodies are bytes: JSON or frames (`batch/frame.ts`).
 */
import { Agent, errors as undiciErrors } from 'undici';
import { FRAME_CONTENT_TYPE } from './batch/frame.js';
import { CLUSTER_AUTH_HEADER, type ClusterSigner } from './cluster-auth.js';
import { noAnswerError, parseJsonAnswer } from './http-client.js';
import { linkedAbort } from './linked-abort.js';
import type { TlsClientOptions } from './tls.js';

export interface DataHttpClientOptions {
  /** Deadline of a call when it gives none, in ms: for the whole call (waiting for a connection, sending, the answer's headers and body). */
  timeoutMs: number;
  /** Most connections kept per origin (default 32). */
  connectionsPerOrigin?: number;
  /** How long an idle connection is kept open, in ms (default 4000; the server's own hint wins when shorter). */
  keepAliveMs?: number;
  /** Deadline to open a connection, in ms (default 5000). */
  connectTimeoutMs?: number;
  /** For `https:` URLs: the CA the server's certificate must chain to (and a client certificate). */
  tls?: TlsClientOptions;
  /** Sent on every request. */
  headers?: Record<string, string>;
  /** Signs every call as a cluster member (broker → broker): method, path and body. */
  signer?: ClusterSigner;
}

export interface DataRequestOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Media types accepted in the answer (default JSON). */
  accept?: string;
  /** Sent with this request only, e.g. a client's Authorization. */
  headers?: Record<string, string>;
}

/** An answer with status below 400: its media type and bytes. */
export interface DataAnswer {
  contentType: string;
  body: Buffer;
}

/** Undici errors after which the call got no answer: wrapped as network errors so `isRetriable` knows them. */
const NO_ANSWER_CODES = new Set([
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

export class DataHttpClient {
  readonly timeoutMs: number;
  private readonly agent: Agent;
  private readonly headers: Record<string, string>;
  private readonly signer: ClusterSigner | undefined;

  constructor(options: DataHttpClientOptions) {
    this.timeoutMs = options.timeoutMs;
    this.headers = { 'user-agent': 'tessera', ...options.headers };
    this.signer = options.signer;
    this.agent = new Agent({
      connections: options.connectionsPerOrigin ?? 32,
      pipelining: 1,
      keepAliveTimeout: options.keepAliveMs ?? 4_000,
      keepAliveMaxTimeout: options.keepAliveMs ?? 4_000,
      connect: { timeout: options.connectTimeoutMs ?? 5_000, ...options.tls },
    });
  }

  /** POSTs JSON and returns the parsed JSON answer. */
  async postJson<T>(url: string, body: unknown, options: DataRequestOptions = {}): Promise<T> {
    const answer = await this.post(url, Buffer.from(JSON.stringify(body), 'utf8'), 'application/json', options);
    return parseJsonAnswer<T>(200, answer.body.toString('utf8'), 'POST', url);
  }

  /** POSTs a frame (the chunks `encodeFrame` gave) and returns the answer, JSON or frame per its content type. */
  postFrame(url: string, chunks: readonly Buffer[], options: DataRequestOptions = {}): Promise<DataAnswer> {
    return this.post(url, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), FRAME_CONTENT_TYPE, options);
  }

  /** POSTs `body`; resolves with an answer below 400, rejects with its TesseraError otherwise. */
  async post(url: string, body: Buffer, contentType: string, options: DataRequestOptions = {}): Promise<DataAnswer> {
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    let status: number;
    let answerType: string;
    let bytes: Buffer;
    const path = pathOf(url);
    const headers: Record<string, string> = { ...this.headers, ...options.headers, 'content-type': contentType, accept: options.accept ?? 'application/json' };
    if (this.signer) headers[CLUSTER_AUTH_HEADER] = this.signer.header('POST', path, body);
    // The whole call has one deadline: undici's own timeouts only bound the wait for the
    // headers and each gap between body chunks, so a trickling answer (or a request queued
    // behind stuck connections) could otherwise take forever. The caller's signal may live for
    // many calls: the call's own signal lets go of it when the call ends.
    const deadline = linkedAbort(options.signal, timeoutMs);
    try {
      const response = await this.agent.request({
        origin: new URL(url).origin,
        path,
        method: 'POST',
        headers,
        body,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: deadline.signal,
      });
      status = response.statusCode;
      const header = response.headers['content-type'];
      answerType = (Array.isArray(header) ? header[0] : header) ?? '';
      bytes = Buffer.from(await response.body.arrayBuffer());
    } catch (error) {
      if (deadline.timedOut && options.signal?.aborted !== true) throw timeoutError(url, timeoutMs, error);
      throw networkError(error, url, timeoutMs);
    } finally {
      deadline.dispose();
    }
    if (status >= 400) parseJsonAnswer(status, bytes.toString('utf8'), 'POST', url);
    return { contentType: answerType.split(';')[0]!.trim().toLowerCase(), body: bytes };
  }

  async close(): Promise<void> {
    await this.agent.destroy();
  }
}

function pathOf(url: string): string {
  const start = url.indexOf('/', url.indexOf('//') + 2);
  return start === -1 ? '/' : url.slice(start);
}

/**
 * A call without an answer keeps a code `isRetriable` knows (a timeout is ETIMEDOUT, like
 * the control-plane client's), and says which call failed. Aborts stay as they are.
 */
function networkError(error: unknown, url: string, timeoutMs: number): unknown {
  if (!(error instanceof Error)) return error;
  let code = (error as { code?: string }).code;
  // Undici reports a refused connection as the socket error itself, sometimes inside an aggregate.
  if (code === undefined && error instanceof AggregateError) code = (error.errors[0] as { code?: string } | undefined)?.code;
  if (code === undefined || !NO_ANSWER_CODES.has(code)) return error;
  if (error instanceof undiciErrors.HeadersTimeoutError || error instanceof undiciErrors.BodyTimeoutError) return timeoutError(url, timeoutMs, error);
  return noAnswerError(code, `POST ${url}: ${code} (${error.message})`, error);
}

/** A call that had no (whole) answer within its deadline: ETIMEDOUT, as with the control-plane client. */
function timeoutError(url: string, timeoutMs: number, cause: unknown): Error {
  return noAnswerError('ETIMEDOUT', `POST ${url}: no answer within ${timeoutMs} ms`, cause);
}
