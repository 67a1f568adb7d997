/**
 * The client's connections and the two kinds of calls it makes: to the coordinator (control
 * plane: metadata, topics, groups; JSON over got) and to brokers (data plane: produce, fetch,
 * commit, offsets). Produce, fetch and commit go over one kept-open data stream per broker
 * (`transport: 'stream'`, the default; `@tessera/protocol`'s data-stream.ts), the other broker
 * calls as HTTP requests over undici (DataHttpClient); a broker that offers no stream (one of
 * an earlier version) gets HTTP requests, and is asked again a minute later (StreamClient).
 * Data calls name their partitions' epochs; a broker of an earlier version refuses that field
 * as an unknown key, and gets the call again without it (and, for a minute, every call).
 * Calls that get no answer become a clear UNAVAILABLE or TIMEOUT error naming the
 * service, so a user sees what is wrong.
 */
import {
  BROKER_ROUTES,
  DATA_ANSWER_FRAME,
  DATA_STREAM_PATH,
  DATA_STREAM_PROTOCOL,
  DataHttpClient,
  DEFAULT_MAX_REQUEST_BYTES,
  StreamClient,
  StreamUnsupported,
  decodeDataAnswer,
  encodeDataCall,
  parseJsonAnswer,
  type DataCallRoute,
  decodeFrame,
  EpochRefusals,
  FRAME_CONTENT_TYPE,
  frameWithoutEpochs,
  withoutEpochs,
  isNetworkError,
  isTesseraError,
  JsonHttpClient,
  routePath,
  TesseraError,
  type DataAnswer,
  type TlsClientOptions,
  type RequestOptions,
} from '@tessera/protocol';
import { type Credentials, TokenSource } from './credentials.js';

export interface ConnectionOptions {
  coordinatorUrl: string;
  requestTimeoutMs: number;
  /** Sent (as a token) on every call; without them, calls are anonymous. */
  credentials?: Credentials;
  /** What the services' certificates must chain to (https URLs); without it, the system CAs. */
  tls?: TlsClientOptions;
  /** How produce, fetch and commit reach a broker: a kept-open data stream (default) or HTTP requests. */
  transport?: DataTransport;
}

export type DataTransport = 'stream' | 'http';

export class Connection {
  readonly coordinatorUrl: string;
  readonly requestTimeoutMs: number;
  private readonly http: JsonHttpClient;
  private readonly tokens: TokenSource | undefined;
  private readonly data: DataHttpClient;
  private readonly streams: StreamClient | undefined;
  /** Brokers of an earlier release, which refuse partition epochs (`@tessera/protocol`'s partition-epochs.ts). */
  private readonly epochs = new EpochRefusals();
  /** Broker URLs of routes without parameters (produce, fetch, commit, offsets), built once per broker. */
  private readonly routeUrls = new Map<string, string>();

  constructor(options: ConnectionOptions) {
    this.coordinatorUrl = options.coordinatorUrl.replace(/\/+$/, '');
    this.requestTimeoutMs = options.requestTimeoutMs;
    this.http = new JsonHttpClient({ timeoutMs: options.requestTimeoutMs, tls: options.tls });
    this.data = new DataHttpClient({ timeoutMs: options.requestTimeoutMs, ...(options.tls ? { tls: options.tls } : {}) });
    this.tokens = options.credentials && new TokenSource(options.credentials, this.coordinatorUrl, this.http);
    this.streams =
      options.transport === 'http'
        ? undefined
        : new StreamClient({
            name: 'data stream',
            protocol: DATA_STREAM_PROTOCOL,
            path: DATA_STREAM_PATH,
            // A fetch answer holds at most the fetch's byte budget and one batch beyond it.
            maxAnswerBytes: 2 * DEFAULT_MAX_REQUEST_BYTES,
            headers: () => ({ 'user-agent': 'tessera-client' }),
            ...(options.tls ? { tls: options.tls } : {}),
          });
  }

  /** Calls the coordinator; `route` is a template from COORDINATOR_ROUTES filled with `params`. */
  async coordinator<T>(
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
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

  /** POSTs JSON to a broker at `brokerUrl`; a call without an answer becomes UNAVAILABLE or TIMEOUT naming the broker. */
  broker<T>(brokerUrl: string, route: string, params: Record<string, string | number>, body: unknown, options: RequestOptions = {}): Promise<T> {
    return this.epochs.send(brokerUrl, body, withoutEpochs, (sent) => this.brokerOnce<T>(brokerUrl, route, params, sent, options));
  }

  private async brokerOnce<T>(brokerUrl: string, route: string, params: Record<string, string | number>, body: unknown, options: RequestOptions): Promise<T> {
    try {
      if (route === BROKER_ROUTES.commit) {
        const answer = await this.streamed(brokerUrl, route, [Buffer.from(JSON.stringify(body), 'utf8')], options);
        if (answer !== undefined) return parseStreamJson<T>(answer, brokerUrl, route);
      }
      return await this.authenticated((headers) => this.data.postJson<T>(this.brokerRouteUrl(brokerUrl, route, params), body, { ...options, ...(headers ? { headers } : {}) }));
    } catch (error) {
      throw brokerError(error, brokerUrl, options.timeoutMs ?? this.requestTimeoutMs);
    }
  }

  /** POSTs a frame (the chunks of `encodeFrame`) to a broker and parses its JSON answer. */
  brokerFrame<T>(brokerUrl: string, route: string, chunks: readonly Buffer[], options: RequestOptions = {}): Promise<T> {
    return this.epochs.send(brokerUrl, chunks, frameWithoutEpochs, (sent) => this.brokerFrameOnce<T>(brokerUrl, route, sent, options));
  }

  private async brokerFrameOnce<T>(brokerUrl: string, route: string, chunks: readonly Buffer[], options: RequestOptions): Promise<T> {
    if (route === BROKER_ROUTES.produceBatches) {
      const answer = await this.streamed(brokerUrl, route, chunks, options);
      if (answer !== undefined) return parseStreamJson<T>(answer, brokerUrl, route);
    }
    const url = this.brokerRouteUrl(brokerUrl, route);
    let answer: DataAnswer;
    try {
      answer = await this.authenticated((headers) => this.data.postFrame(url, chunks, { ...options, ...(headers ? { headers } : {}) }));
    } catch (error) {
      throw brokerError(error, brokerUrl, options.timeoutMs ?? this.requestTimeoutMs);
    }
    try {
      return JSON.parse(answer.body.toString('utf8')) as T;
    } catch {
      throw new TesseraError('INTERNAL', `POST ${url}: answer is not JSON`);
    }
  }

  /**
   * POSTs JSON to a broker asking for a frame back: resolves with the frame's head (not yet
   * validated) and tail. A broker that answers JSON instead gets an INTERNAL error.
   */
  brokerForFrame(brokerUrl: string, route: string, body: unknown, options: RequestOptions = {}): Promise<{ head: unknown; tail: Buffer }> {
    return this.epochs.send(brokerUrl, body, withoutEpochs, (sent) => this.brokerForFrameOnce(brokerUrl, route, sent, options));
  }

  private async brokerForFrameOnce(brokerUrl: string, route: string, body: unknown, options: RequestOptions): Promise<{ head: unknown; tail: Buffer }> {
    if (route === BROKER_ROUTES.fetch) {
      const answer = await this.streamed(brokerUrl, route, [Buffer.from(JSON.stringify(body), 'utf8')], options);
      if (answer !== undefined) {
        // An error's body becomes its TesseraError; a JSON answer where a frame belongs is the broker's fault.
        if (answer.kind !== DATA_ANSWER_FRAME) parseStreamJson(answer, brokerUrl, route);
        if (answer.status >= 400 || answer.kind !== DATA_ANSWER_FRAME) {
          throw new TesseraError('INTERNAL', `data stream to ${brokerUrl}: ${route} answered ${answer.status} with ${answer.kind === DATA_ANSWER_FRAME ? 'a frame' : 'JSON'}`);
        }
        return decodeFrame(answer.payload);
      }
    }
    const url = this.brokerRouteUrl(brokerUrl, route);
    let answer: DataAnswer;
    try {
      answer = await this.authenticated((headers) =>
        this.data.post(url, Buffer.from(JSON.stringify(body), 'utf8'), 'application/json', {
          ...options,
          ...(headers ? { headers } : {}),
          accept: `${FRAME_CONTENT_TYPE}, application/json;q=0.5`,
        }),
      );
    } catch (error) {
      throw brokerError(error, brokerUrl, options.timeoutMs ?? this.requestTimeoutMs);
    }
    if (answer.contentType !== FRAME_CONTENT_TYPE) {
      throw new TesseraError('INTERNAL', `POST ${url}: expected a ${FRAME_CONTENT_TYPE} answer, got ${answer.contentType || 'no content type'}`);
    }
    return decodeFrame(answer.body);
  }

  private brokerRouteUrl(brokerUrl: string, route: string, params: Record<string, string | number> = {}): string {
    if (Object.keys(params).length > 0) return brokerUrl.replace(/\/+$/, '') + routePath(route, params);
    const key = `${brokerUrl} ${route}`;
    let url = this.routeUrls.get(key);
    if (url === undefined) {
      // Bounded like every cache here: a few routes per broker, cleared if brokers keep changing address.
      if (this.routeUrls.size >= 4_096) this.routeUrls.clear();
      url = brokerUrl.replace(/\/+$/, '') + routePath(route);
      this.routeUrls.set(key, url);
    }
    return url;
  }

  /**
   * One call over the broker's data stream, authenticated as HTTP calls are (a 401 gets one more
   * try with a new token, on a new connection); no answer becomes UNAVAILABLE or TIMEOUT naming
   * the broker. Undefined when this client sends HTTP requests to that broker (transport http,
   * or a broker that offers no stream): the caller sends one.
   */
  private async streamed(brokerUrl: string, route: DataCallRoute, payload: readonly Buffer[], options: RequestOptions): Promise<StreamAnswer | undefined> {
    const streams = this.streams;
    if (streams === undefined || !streams.offersStream(brokerUrl)) return undefined;
    const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
    try {
      return await this.authenticated(async (headers) => {
        const answer = decodeDataAnswer(await streams.call(brokerUrl, encodeDataCall(route, payload), timeoutMs, headers?.authorization, options.signal));
        // A refusal for the credential goes through authenticated(), which may try a new token.
        if (answer.status === 401) parseStreamJson(answer, brokerUrl, route);
        return answer;
      });
    } catch (error) {
      if (!(error instanceof StreamUnsupported)) throw brokerError(error, brokerUrl, timeoutMs);
      return undefined;
    }
  }

  async close(): Promise<void> {
    this.streams?.close();
    this.http.close();
    await this.data.close();
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

/** A data stream answer: the status and kind of its body, and the body. */
type StreamAnswer = ReturnType<typeof decodeDataAnswer>;

/** A data stream answer's JSON, or the TesseraError its error body carries (as parseJsonAnswer does for HTTP). */
function parseStreamJson<T>(answer: StreamAnswer, brokerUrl: string, route: string): T {
  if (answer.kind === DATA_ANSWER_FRAME) throw new TesseraError('INTERNAL', `data stream to ${brokerUrl}: ${route} answered a frame instead of JSON`);
  return parseJsonAnswer<T>(answer.status, answer.payload.toString('utf8'), 'STREAM', brokerUrl + route);
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
