/**
 * The client's one HTTP connection pool and the two kinds of calls it makes: to the
 * coordinator (control plane: metadata, topics, groups) and to brokers (data plane:
 * produce, fetch, commit, offsets). Coordinator calls that get no answer become a
 * clear UNAVAILABLE error naming the coordinator, so a user sees what is wrong.
 */
import {
  isNetworkError,
  isTesseraError,
  JsonHttpClient,
  routePath,
  TesseraError,
  type RequestOptions,
  type TlsClientOptions,
} from '@tessera/protocol';
import { type Credentials, TokenSource } from './credentials.js';

export interface ConnectionOptions {
  coordinatorUrl: string;
  requestTimeoutMs: number;
  /** Sent (as a token) on every call; without them, calls are anonymous. */
  credentials?: Credentials;
  /** What the services' certificates must chain to (https URLs); without it, the system CAs. */
  tls?: TlsClientOptions;
}

export class Connection {
  readonly coordinatorUrl: string;
  readonly requestTimeoutMs: number;
  private readonly http: JsonHttpClient;
  private readonly tokens: TokenSource | undefined;

  constructor(options: ConnectionOptions) {
    this.coordinatorUrl = options.coordinatorUrl.replace(/\/+$/, '');
    this.requestTimeoutMs = options.requestTimeoutMs;
    this.http = new JsonHttpClient({ timeoutMs: options.requestTimeoutMs, tls: options.tls });
    this.tokens = options.credentials && new TokenSource(options.credentials, this.coordinatorUrl, this.http);
  }

  /** Calls the coordinator; `route` is a template from COORDINATOR_ROUTES filled with `params`. */
  async coordinator<T>(
    method: 'GET' | 'POST' | 'DELETE',
    route: string,
    params: Record<string, string | number> = {},
    body?: unknown,
    options: RequestOptions = {},
  ): Promise<T> {
    const url = this.coordinatorUrl + routePath(route, params);
    try {
      return await this.authenticated((headers) => this.http.request<T>(method, url, body, { ...options, headers }));
    } catch (error) {
      throw coordinatorError(error, this.coordinatorUrl);
    }
  }

  /** POSTs to a broker at `brokerUrl`; a call without an answer becomes UNAVAILABLE or TIMEOUT naming the broker. */
  async broker<T>(brokerUrl: string, route: string, params: Record<string, string | number>, body: unknown, options: RequestOptions = {}): Promise<T> {
    const url = brokerUrl.replace(/\/+$/, '') + routePath(route, params);
    try {
      return await this.authenticated((headers) => this.http.post<T>(url, body, { ...options, headers }));
    } catch (error) {
      throw brokerError(error, brokerUrl, options.timeoutMs ?? this.requestTimeoutMs);
    }
  }

  close(): void {
    this.http.close();
  }

  /**
   * Makes a call with the Authorization header, the one place the client adds it. A 401 with a
   * token from a secret (expired, or the secret was rotated) gets one more try with a new token.
   */
  private async authenticated<T>(call: (headers: Record<string, string> | undefined) => Promise<T>): Promise<T> {
    if (this.tokens === undefined) return call(undefined);
    const headers = await this.tokens.header();
    try {
      return await call(headers);
    } catch (error) {
      if (!isTesseraError(error, 'UNAUTHORIZED') || !this.tokens.invalidate()) throw error;
      return call(await this.tokens.header());
    }
  }
}

/** An unanswered coordinator call becomes UNAVAILABLE (retriable) with the network code in the message. */
export function coordinatorError(error: unknown, coordinatorUrl: string): unknown {
  if (!isNetworkError(error)) return error;
  const code = (error as { code?: string }).code ?? 'no answer';
  return new TesseraError('UNAVAILABLE', `cannot reach the coordinator at ${coordinatorUrl}: ${untrusted(code) ?? code}`, {}, { cause: error });
}

/** A TLS verification failure, said so: the server's certificate is not one the client trusts. */
function untrusted(code: string): string | undefined {
  if (!/CERT|SIGNATURE|VERIFY|ERR_TLS/.test(code)) return undefined;
  return `its certificate is not trusted (${code}); give the cluster's CA (tls option, --ca-file or TESSERA_CA_FILE)`;
}

/**
 * A broker call without an answer becomes a retriable TesseraError naming the broker:
 * TIMEOUT when it timed out (the request may have been applied), else UNAVAILABLE.
 */
export function brokerError(error: unknown, brokerUrl: string, timeoutMs: number): unknown {
  if (!isNetworkError(error)) return error;
  const code = (error as { code?: string }).code ?? 'no answer';
  if (code === 'ETIMEDOUT') {
    return new TesseraError('TIMEOUT', `broker at ${brokerUrl} did not answer within ${timeoutMs} ms`, {}, { cause: error });
  }
  return new TesseraError('UNAVAILABLE', `cannot reach the broker at ${brokerUrl}: ${untrusted(code) ?? code}`, {}, { cause: error });
}
