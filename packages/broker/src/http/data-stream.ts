/**
 * The broker's end of the clients' data stream (`@tessera/protocol`, data-stream.ts): produce,
 * fetch and commit on a kept-open connection, with exactly what the HTTP routes do. Each call
 * is checked like the HTTP request it stands for: the caller is identified again from the
 * upgrade's credential (a token that expired, or whose principal was removed or given a new
 * secret, is refused from then on, as over HTTP) and the route's access rule decides; its
 * answer carries the status and body the route would have answered, and its duration is
 * observed as `method="STREAM"` with the route. The upgrade itself is checked with its own rule
 * (`GET /data-stream`: an authenticated caller): a credential already bad, or none while client
 * authentication is on, is refused there with the HTTP error body (401), so a connection is open
 * only to a caller whose calls could be served.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  DATA_ANSWER_FRAME,
  DATA_ANSWER_JSON,
  DATA_CALL_ROUTES,
  DATA_STREAM_PATH,
  DATA_STREAM_PROTOCOL,
  BROKER_ROUTES,
  InvariantError,
  TesseraError,
  acceptUpgrade,
  encodeDataAnswer,
  refuseUpgrade,
  serveStream,
  type DataCallRoute,
  type SharedBodyBudget,
} from '@tessera/protocol';
import { DEFAULT_SERVER_LIMITS, checkAccess, refusalOf, type AccessControl, type Caller, type Logger, type ServiceMetrics } from '@tessera/service';
import { commitOffsets } from '../groups/commit-handler.js';
import type { FetchHandler } from '../fetch/fetch-handler.js';
import { produceBatches } from '../produce/produce-handler.js';
import type { HandlerDeps } from './deps.js';
import { StreamSockets, type UpgradeTarget } from './upgrades.js';

export interface DataStreamOptions {
  deps: HandlerDeps;
  fetch: FetchHandler;
  /** Who may call what (the HTTP edge's); undefined: everyone may (an embedded broker in a test). */
  access: AccessControl | undefined;
  metrics: ServiceMetrics;
  /** True without cluster secrets: no caller can be told to be a member (as on the HTTP edge). */
  membersUnchecked: boolean;
  /** The largest request, as for HTTP request bodies. */
  maxMessageBytes: number;
  /**
   * The HTTP edge's body budget: the requests of every data stream are held against it with the
   * broker's HTTP request bodies, so that many connections cannot fill the memory between them.
   */
  bodyBudget: SharedBodyBudget;
  /** How long a message may take to arrive once begun, as an HTTP request (default: the HTTP edge's). */
  messageTimeoutMs?: number;
  /**
   * How long after the upgrade the first call may take to begin, as an HTTP connection has to send
   * its headers (default: the HTTP edge's headers deadline).
   */
  firstMessageTimeoutMs?: number;
  logger: Logger;
  onInvariantBroken: (error: Error) => void;
}

/**
 * A client connection that sends nothing for this long is closed (the client opens a new one when
 * it needs one). One that has not begun a call yet has only the headers deadline: a client opens
 * a stream to make a call, so a connection that makes none holds a slot of `--max-connections`
 * no longer than a connection that never finishes its headers.
 */
const IDLE_TIMEOUT_MS = 5 * 60_000;
/**
 * Calls in service at once on one connection; reading pauses beyond it. A fetch waiting in its
 * long poll does not count (the broker bounds those as a whole, `maxPendingFetches`): a client
 * has one produce per broker and a commit per consumer in flight, and fetches that answer at
 * once, so this bounds only abuse (with the bytes below: what a fetch reads counts until sent).
 */
const MAX_IN_FLIGHT = 32;
/** Requests of the largest size served at once on one connection (their bytes bound the memory it holds). */
const MAX_IN_FLIGHT_MESSAGES_OF_MAX_SIZE = 4;

export class DataStreamServer implements UpgradeTarget {
  readonly path = DATA_STREAM_PATH;
  readonly protocol = DATA_STREAM_PROTOCOL;
  private readonly sockets = new StreamSockets();

  constructor(private readonly options: DataStreamOptions) {}

  close(): void {
    this.sockets.close();
  }

  accept(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    void this.identify(request).then(
      () => {
        // A broker that began stopping meanwhile takes no new stream (add() closes it).
        if (!this.sockets.add(socket)) return;
        acceptUpgrade(socket, DATA_STREAM_PROTOCOL);
        const gone = new Gone(socket);
        serveStream(socket, head, {
          maxMessageBytes: this.options.maxMessageBytes + 1,
          maxInFlight: MAX_IN_FLIGHT,
          maxInFlightBytes: MAX_IN_FLIGHT_MESSAGES_OF_MAX_SIZE * this.options.maxMessageBytes,
          budget: { bodies: this.options.bodyBudget, refusal: (error) => this.refusal(error) },
          idleTimeoutMs: IDLE_TIMEOUT_MS,
          messageTimeoutMs: this.options.messageTimeoutMs ?? DEFAULT_SERVER_LIMITS.requestTimeoutMs,
          firstMessageTimeoutMs: this.options.firstMessageTimeoutMs ?? DEFAULT_SERVER_LIMITS.headersTimeoutMs,
          serve: (_id, body, waiting) => this.serve(request, gone, body, waiting),
          onBadMessage: (reason, detail) => this.options.logger.info({ reason, detail }, 'data stream closed: a bad message'),
        });
      },
      (error: unknown) => refuseUpgrade(socket, refusalOf(error, this.options.logger, 'GET', DATA_STREAM_PATH)),
    );
  }

  /**
   * The upgrade's caller, checked with the rule of `GET /data-stream` (an authenticated caller;
   * anyone while authentication is off): a bad credential, or none where every call would be
   * refused for the want of one, is refused before the stream opens. Without this an anonymous
   * caller could hold a connection, and have its messages read into memory, on a broker that
   * serves it nothing.
   */
  private async identify(request: IncomingMessage): Promise<Caller> {
    return this.check('GET', request, DATA_STREAM_PATH, undefined, undefined);
  }

  /**
   * Identifies the caller from the upgrade's headers and applies `route`'s rule; null applies the
   * rule of no route (an authenticated caller, as for an HTTP request to no route).
   */
  private async caller(request: IncomingMessage, route: DataCallRoute | null, body: unknown, frame: Buffer | undefined): Promise<Caller> {
    return this.check('POST', request, route ?? undefined, body, frame);
  }

  private async check(method: 'GET' | 'POST', request: IncomingMessage, route: string | undefined, body: unknown, frame: Buffer | undefined): Promise<Caller> {
    const { access } = this.options;
    if (access === undefined) return { kind: 'anonymous' };
    return checkAccess(access, this.options.metrics, {
      method,
      route,
      params: {},
      headers: request.headers,
      body,
      frame,
      member: undefined,
      membersUnchecked: this.options.membersUnchecked,
    });
  }

  /**
   * The answer to a call not read for want of budget, logged and observed as the HTTP edge's
   * refusal of a body is (its route is not known: the call was not read).
   */
  private refusal(error: TesseraError): Buffer[] {
    const refusal = refusalOf(error, this.options.logger, 'STREAM', DATA_STREAM_PATH);
    this.options.metrics.requestDuration.observe({ method: 'STREAM', route: 'unmatched', status: String(refusal.status) }, 0);
    return json(refusal.toBody(), refusal.status);
  }

  private async serve(request: IncomingMessage, gone: Gone, message: Buffer, waiting: () => void): Promise<Buffer[] | undefined> {
    const route = message.length > 0 ? DATA_CALL_ROUTES.get(message[0]!) : undefined;
    const stop = this.options.metrics.requestDuration.startTimer();
    let status = 200;
    try {
      if (route === undefined) {
        // As an HTTP request to no route: a caller that may not call at all hears that first.
        await this.caller(request, null, undefined, undefined);
        throw new TesseraError('INVALID_REQUEST', `unknown data stream call ${message.length > 0 ? message[0] : '(empty message)'}`);
      }
      const payload = message.subarray(1);
      if (route === BROKER_ROUTES.produceBatches) {
        const caller = await this.caller(request, route, undefined, payload);
        return json(await produceBatches(this.options.deps, payload, caller, this.options.membersUnchecked));
      }
      const body = parseJson(payload);
      await this.caller(request, route, body, undefined);
      if (route === BROKER_ROUTES.commit) return json(await commitOffsets(this.options.deps, body));
      const answer = await this.options.fetch.fetch(body, true, (finish) => gone.subscribe(finish), waiting);
      return 'frame' in answer ? encodeDataAnswer(200, DATA_ANSWER_FRAME, answer.frame) : json(answer.json);
    } catch (error) {
      if (error instanceof InvariantError) {
        status = 500;
        this.options.onInvariantBroken(error);
        return undefined;
      }
      const refusal = refusalOf(error, this.options.logger, 'STREAM', route ?? DATA_STREAM_PATH);
      status = refusal.status;
      return json(refusal.toBody(), status);
    } finally {
      stop({ method: 'STREAM', route: route ?? 'unmatched', status: String(status) });
    }
  }
}

/** Tells the long polls of one connection that it closed (one listener on the socket, however many polls wait). */
class Gone {
  private readonly waiting = new Set<() => void>();
  private closed = false;

  constructor(socket: Duplex) {
    socket.once('close', () => {
      this.closed = true;
      for (const finish of this.waiting) finish();
      this.waiting.clear();
    });
  }

  subscribe(finish: () => void): () => void {
    if (this.closed) {
      queueMicrotask(finish);
      return () => undefined;
    }
    this.waiting.add(finish);
    return () => this.waiting.delete(finish);
  }
}

/** A JSON answer (a route's answer, or an error body with its status). */
function json(answer: unknown, status = 200): Buffer[] {
  return encodeDataAnswer(status, DATA_ANSWER_JSON, [Buffer.from(JSON.stringify(answer), 'utf8')]);
}

function parseJson(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch (error) {
    throw new TesseraError('INVALID_REQUEST', `request body is not valid JSON: ${(error as Error).message}`);
  }
}
