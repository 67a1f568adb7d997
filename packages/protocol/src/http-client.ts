/**
 * The JSON-over-HTTP client every Tessera component uses to call another one (client
 * library → services, broker → broker, broker → coordinator). It keeps connections
 * alive, never retries by itself (callers retry through `retry.ts`, where they chose
 * to), and turns every error answer into the TesseraError the service meant.
 *
 * It sits directly on `node:http`: it is on the path of every produce and every
 * replication call, and got's per-request machinery (options merging, hooks, its stream
 * wrapper) cost about 0.4 ms per call on a 2-core machine, which is most of the budget of
 * a one-record produce. A call that gets no answer fails with the Node code
 * (ECONNREFUSED, ECONNRESET, ...), or ETIMEDOUT when the whole exchange did not finish
 * within its deadline, as got's errors did.
 */
import http from 'node:http';
import https from 'node:https';
import { ERRORS, type ErrorCode, TesseraError } from './errors.js';

export interface JsonHttpClientOptions {
  /** Per-request deadline when the call does not give one. */
  timeoutMs: number;
  /** Most sockets kept per host (default 64). */
  maxSockets?: number;
  /** Sent on every request, e.g. a cluster credential later on. */
  headers?: Record<string, string>;
}

export interface RequestOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  searchParams?: Record<string, string | number>;
}

interface RawResponse {
  statusCode: number;
  text: string;
}

export class JsonHttpClient {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly headers: Record<string, string>;
  readonly timeoutMs: number;

  constructor(options: JsonHttpClientOptions) {
    this.timeoutMs = options.timeoutMs;
    const maxSockets = options.maxSockets ?? 64;
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets, keepAliveMsecs: 1_000 });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets, keepAliveMsecs: 1_000 });
    this.headers = { 'user-agent': 'tessera', ...options.headers };
  }

  get<T>(url: string, options: RequestOptions = {}): Promise<T> {
    return this.request<T>('GET', url, undefined, options);
  }

  post<T>(url: string, body: unknown, options: RequestOptions = {}): Promise<T> {
    return this.request<T>('POST', url, body, options);
  }

  delete<T>(url: string, options: RequestOptions = {}): Promise<T> {
    return this.request<T>('DELETE', url, undefined, options);
  }

  async request<T>(method: 'GET' | 'POST' | 'DELETE', url: string, body: unknown, options: RequestOptions): Promise<T> {
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    let response: RawResponse;
    try {
      response = await this.exchange(method, url, body === undefined ? undefined : JSON.stringify(body), timeoutMs, options);
    } catch (error) {
      throw networkError(error, method, url);
    }
    const text = response.text;
    let parsed: unknown = undefined;
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        if (response.statusCode < 400) {
          throw new TesseraError('INTERNAL', `${method} ${url}: answer is not JSON (status ${response.statusCode})`);
        }
      }
    }
    if (response.statusCode >= 400) {
      throw (
        TesseraError.fromBody(parsed) ??
        new TesseraError(codeForStatus(response.statusCode), `${method} ${url}: HTTP ${response.statusCode} ${text.slice(0, 200)}`)
      );
    }
    return parsed as T;
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /** One request and its whole answer as text, within `timeoutMs` from start to end. */
  private exchange(method: string, url: string, payload: string | undefined, timeoutMs: number, options: RequestOptions): Promise<RawResponse> {
    return new Promise<RawResponse>((resolve, reject) => {
      const target = new URL(url);
      if (options.searchParams !== undefined) {
        for (const [name, value] of Object.entries(options.searchParams)) target.searchParams.set(name, String(value));
      }
      const secure = target.protocol === 'https:';
      const headers: Record<string, string | number> = { ...this.headers };
      if (payload !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = Buffer.byteLength(payload);
      }
      let settled = false;
      const fail = (error: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(error);
        request.destroy();
      };
      const request = (secure ? https : http).request(
        target,
        { method, headers, agent: secure ? this.httpsAgent : this.httpAgent, signal: options.signal },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', fail);
          response.on('aborted', () => fail(codedError('ECONNRESET', 'the connection closed before the whole answer arrived')));
          response.on('end', () => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            resolve({ statusCode: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
          });
        },
      );
      const timer = setTimeout(() => fail(codedError('ETIMEDOUT', `no complete answer within ${timeoutMs} ms`)), timeoutMs);
      request.on('error', fail);
      request.end(payload);
    });
  }
}

function codedError(code: string, message: string): Error {
  const error = new Error(message);
  (error as Error & { code?: string }).code = code;
  return error;
}

/**
 * A call that got no answer keeps its network code (ECONNREFUSED, ETIMEDOUT, ...), so
 * `isRetriable` recognises it, and says which call failed.
 */
function networkError(error: unknown, method: string, url: string): Error {
  if (error instanceof Error) {
    const code = (error as Error & { code?: unknown }).code;
    const wrapped = new Error(`${method} ${url}: ${typeof code === 'string' ? code : 'request failed'} (${error.message})`, { cause: error });
    (wrapped as Error & { code?: string }).code = typeof code === 'string' ? code : undefined;
    wrapped.name = 'NetworkError';
    return wrapped;
  }
  return error as Error;
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
