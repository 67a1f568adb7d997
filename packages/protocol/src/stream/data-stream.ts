/**
 * The clients' data stream: a kept-open connection to a broker over which a client makes its
 * data-path calls (produce, fetch, commit) without an HTTP request each. It starts as `GET
 * /data-stream` with `Upgrade: tessera-data/1` and the client's `Authorization` header, on the
 * broker's own port; after `101 Switching Protocols` it carries the messages of every stream
 * (framing.ts), without MACs (TLS protects them, as it protects HTTP requests).
 *
 * - A request's body is `[u8 call][payload]`: the call stands for a broker route (DATA_CALLS),
 *   the payload is what that route's request body would be (a frame for produce, JSON for
 *   fetch and commit).
 * - An answer's body is `[u16 status][u8 kind][payload]`: the HTTP status the route would have
 *   answered, and its body, JSON (kind 0: the route's answer, or the error body) or a frame
 *   (kind 1: a fetch's batches).
 */
import { TesseraError } from '../errors.js';
import { BROKER_ROUTES } from '../routes.js';

export const DATA_STREAM_PROTOCOL = 'tessera-data/1';
export const DATA_STREAM_PATH = '/data-stream';

/** The calls of the data stream, by the broker route each stands for. */
export const DATA_CALLS = {
  [BROKER_ROUTES.produceBatches]: 1,
  [BROKER_ROUTES.fetch]: 2,
  [BROKER_ROUTES.commit]: 3,
} as const satisfies Record<string, number>;

export type DataCallRoute = keyof typeof DATA_CALLS;

/** The route of each call number. */
export const DATA_CALL_ROUTES: ReadonlyMap<number, DataCallRoute> = new Map(Object.entries(DATA_CALLS).map(([route, call]) => [call, route as DataCallRoute]));

export const DATA_ANSWER_JSON = 0;
export const DATA_ANSWER_FRAME = 1;

/** The chunks of a request for `route` with `payload`. */
export function encodeDataCall(route: DataCallRoute, payload: readonly Buffer[]): Buffer[] {
  return [Buffer.of(DATA_CALLS[route]), ...payload];
}

/** The chunks of an answer. */
export function encodeDataAnswer(status: number, kind: typeof DATA_ANSWER_JSON | typeof DATA_ANSWER_FRAME, payload: readonly Buffer[]): Buffer[] {
  const head = Buffer.allocUnsafe(3);
  head.writeUInt16BE(status, 0);
  head.writeUInt8(kind, 2);
  return [head, ...payload];
}

/** An answer's parts; a body too short to be one is INTERNAL (the broker broke the protocol). */
export function decodeDataAnswer(body: Buffer): { status: number; kind: number; payload: Buffer } {
  if (body.length < 3) throw new TesseraError('INTERNAL', `data stream answer of ${body.length} bytes is too short`);
  return { status: body.readUInt16BE(0), kind: body.readUInt8(2), payload: body.subarray(3) };
}
