/**
 * The JSON-over-HTTP client every Tessera component uses to call another one (client
 * library → services, broker → broker, broker → coordinator). It keeps connections
 * alive, never retries by itself (callers retry through `retry.ts`, where they chose
 * to), and turns every error answer into the TesseraError the service meant.
 */
import http from 'node:http';
import https from 'node:https';
import got, { type Got, RequestError } from 'got';
import { CLUSTER_AUTH_HEADER, type ClusterSigner } from './cluster-auth.js';
import { ERRORS, type ErrorCode, TesseraError } from './errors.js';
import type { TlsClientOptions } from './tls.js';

export interface JsonHttpClientOptions {
  /** Per-request deadline when the call does not give one. */
  timeoutMs: number;
  /** Most sockets kept per host (default 64). */
  maxSockets?: number;
  /** Sent on every request. */
  headers?: Record<string, string>;
  /** Trusted CA (and client certificate) for https URLs; without it, the system CAs. */
  tls?: TlsClientOptions;
  /** Signs every request as a cluster member (brokers and the coordinator calling each other). */
  signer?: ClusterSigner;
}

export interface RequestOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  searchParams?: Record<string, string | number>;
  /** Sent with this request only (a client's Authorization header). */
  headers?: Record<string, string>;
}

export class JsonHttpClient {
  private readonly got: Got;
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly signer: ClusterSigner | undefined;
  readonly timeoutMs: number;

  constructor(options: JsonHttpClientOptions) {
    this.timeoutMs = options.timeoutMs;
    this.signer = options.signer;
    const maxSockets = options.maxSockets ?? 64;
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets, keepAliveMsecs: 1_000 });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets, keepAliveMsecs: 1_000, ...options.tls });
    this.got = got.extend({
      agent: { http: this.httpAgent, https: this.httpsAgent },
      retry: { limit: 0 },
      throwHttpErrors: false,
      responseType: 'text',
      headers: { 'user-agent': 'tessera', ...options.headers },
    });
  }

  get<T>(url: string, options: RequestOptions = {}): Promise<T> {
    return this.request<T>('GET', url, undefined, options);
  }

  post<T>(url: string, body: unknown, options: RequestOptions = {}): Promise<T> {
    return this.request<T>('POST', url, body, options);
  }

  /** GETs a text document (e.g. a Prometheus exposition): its body for a 2xx, the TesseraError otherwise. */
  async getText(url: string, options: RequestOptions = {}): Promise<string> {
    const response = await this.send('GET', url, undefined, options);
    if (response.statusCode >= 400) parseJsonAnswer(response.statusCode, response.body, 'GET', url);
    return response.body;
  }

  delete<T>(url: string, options: RequestOptions = {}): Promise<T> {
    return this.request<T>('DELETE', url, undefined, options);
  }

  async request<T>(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, body: unknown, options: RequestOptions): Promise<T> {
    const response = await this.send(method, url, body, options);
    return parseJsonAnswer<T>(response.statusCode, response.body, method, url);
  }

  /** One call: its status and body as text; a call without an answer throws the network error. */
  private async send(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, body: unknown, options: RequestOptions): Promise<{ statusCode: number; body: string }> {
    const target = new URL(url);
    for (const [name, value] of Object.entries(options.searchParams ?? {})) target.searchParams.set(name, String(value));
    const text = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = { ...options.headers };
    if (text !== undefined) headers['content-type'] = 'application/json';
    if (this.signer) headers[CLUSTER_AUTH_HEADER] = this.signer.header(method, target.pathname + target.search, text);
    try {
      return await this.got(target, {
        method,
        body: text,
        headers,
        timeout: { request: options.timeoutMs ?? this.timeoutMs },
        signal: options.signal,
      });
    } catch (error) {
      throw networkError(error, method, url);
    }
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

/**
 * A call that got no answer keeps its network code (ECONNREFUSED, ETIMEDOUT, ...), so
 * `isRetriable` recognises it, and says which call failed.
 */
function networkError(error: unknown, method: string, url: string): Error {
  if (error instanceof RequestError) return noAnswerError(error.code, `${method} ${url}: ${error.code ?? 'request failed'} (${error.message})`, error);
  return error as Error;
}

/**
 * The error of a call that got no answer (refused, reset, timed out: it may or may not have
 * been applied): `code` is the network code (ECONNREFUSED, ETIMEDOUT, ...), by which
 * `isRetriable` and `isNetworkError` know it. Every client of the project makes these so.
 */
export function noAnswerError(code: string, message: string, cause?: unknown): Error {
  const error = new Error(message, { cause });
  (error as Error & { code?: string }).code = code;
  error.name = 'NetworkError';
  return error;
}

/**
 * The JSON of an answer, or the TesseraError it carries: an error body becomes the error
 * the service meant; an error status without one becomes the code its status stands for.
 */
export function parseJsonAnswer<T>(status: number, text: string, method: string, url: string): T {
  let parsed: unknown = undefined;
  if (text.length > 0) {
    try {
      parsed = JSON.parse(text);
    } catch {
      if (status < 400) throw new TesseraError('INTERNAL', `${method} ${url}: answer is not JSON (status ${status})`);
    }
  }
  if (status >= 400) {
    throw TesseraError.fromBody(parsed) ?? new TesseraError(codeForStatus(status), `${method} ${url}: HTTP ${status} ${text.slice(0, 200)}`);
  }
  return parsed as T;
}

function codeForStatus(status: number): ErrorCode {
  for (const [code, entry] of Object.entries(ERRORS)) {
    if (entry.status === status) return code as ErrorCode;
  }
  return status >= 500 ? 'INTERNAL' : 'INVALID_REQUEST';
}

/** True when `error` is a call that got no answer at all (refused, reset, timed out). */
export function isNetworkError(error: unknown): boolean {
  return error instanceof Error && error.name === 'NetworkError';
}
