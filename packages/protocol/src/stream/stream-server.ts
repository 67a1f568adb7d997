/**
 * The serving end of a stream (framing.ts): after the 101 answer to an upgrade, every message
 * read is one request, served side by side with the others, and answered with its id.
 *
 * Bounds: at most `maxInFlight` requests, of at most `maxInFlightBytes` together, are served at
 * once on a connection (what is read beyond that waits, and reading pauses until it is served,
 * so a client cannot pile up work or memory by pipelining); a connection that sends
 * nothing for `idleTimeoutMs` is closed; a message larger than `maxMessageBytes`, bytes that are
 * not a message, a sealed message that fails its check, or a request id that does not grow
 * close the connection (one whose bytes cannot be trusted any more).
 */
import type { Duplex } from 'node:stream';
import type { TesseraError } from '../errors.js';
import { MAC_BYTES, MessageReader, writeMessage, type MessageSeal } from './framing.js';

export interface StreamSessionOptions {
  maxMessageBytes: number;
  /** Checks each request's MAC and signs each answer; undefined: messages carry none. */
  seal?: MessageSeal;
  maxInFlight: number;
  /** Most bytes of requests served at once on the connection (one request is always served, whatever its size). */
  maxInFlightBytes: number;
  idleTimeoutMs: number;
  /** Serves one request; resolves with its answer's chunks, or undefined to send none (the service is stopping). */
  serve(id: number, body: Buffer): Promise<readonly Buffer[] | undefined>;
  /** The connection is being closed for a message that is not one, or one that failed its check. */
  onBadMessage(reason: 'not_a_message' | 'failed_check', detail: string): void;
}

/** Answers an upgrade with 101 and `headers` (lines `name: value`). */
export function acceptUpgrade(socket: Duplex, protocol: string, headers: Record<string, string> = {}): void {
  let extra = '';
  for (const [name, value] of Object.entries(headers)) extra += `${name}: ${value}\r\n`;
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${protocol}\r\n${extra}\r\n`);
}

/** Answers an upgrade that is not taken with a plain HTTP error (the error body every route uses) and closes. */
export function refuseUpgrade(socket: Duplex, error: TesseraError): void {
  const body = JSON.stringify(error.toBody());
  socket.end(
    `HTTP/1.1 ${error.status} ${REASONS[error.status] ?? 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

const REASONS: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 503: 'Service Unavailable' };

/** Serves the requests of one upgraded connection until it closes (`head`: bytes read with the upgrade). */
export function serveStream(socket: Duplex, head: Buffer, options: StreamSessionOptions): void {
  const { seal } = options;
  (socket as Duplex & { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  (socket as Duplex & { setTimeout?: (ms: number, onTimeout: () => void) => void }).setTimeout?.(options.idleTimeoutMs, () => socket.destroy());
  // An upgraded socket is half-open: without this, a peer that hangs up would leave it open here.
  socket.on('end', () => socket.destroy());
  const reader = new MessageReader(options.maxMessageBytes, seal === undefined ? 0 : MAC_BYTES);
  let lastId = 0;
  let inFlight = 0;
  let inFlightBytes = 0;
  /** Requests read while `maxInFlight` were served (reading is paused until they are all taken). */
  let backlog: Array<{ id: number; body: Buffer }> = [];

  const hasRoom = (bytes: number) => inFlight === 0 || (inFlight < options.maxInFlight && inFlightBytes + bytes <= options.maxInFlightBytes);

  const start = (id: number, body: Buffer) => {
    inFlight++;
    inFlightBytes += body.length;
    void answer(id, body);
  };

  const answer = async (id: number, body: Buffer) => {
    let chunks: readonly Buffer[] | undefined;
    try {
      chunks = await options.serve(id, body);
    } catch {
      socket.destroy();
      return;
    } finally {
      inFlight--;
      inFlightBytes -= body.length;
      while (backlog.length > 0 && !socket.destroyed && hasRoom(backlog[0]!.body.length)) {
        const next = backlog.shift()!;
        start(next.id, next.body);
        if (backlog.length === 0) socket.resume();
      }
    }
    if (chunks === undefined || socket.destroyed) return;
    try {
      writeMessage(socket, id, seal?.sign('answer', id, chunks), chunks);
    } catch {
      socket.destroy();
    }
  };

  const onData = (chunk: Buffer) => {
    let messages;
    try {
      messages = reader.push(chunk);
    } catch (error) {
      options.onBadMessage('not_a_message', (error as Error).message);
      socket.destroy();
      return;
    }
    for (const message of messages) {
      if (message.id <= lastId || (seal !== undefined && !seal.check('request', message.id, message.body, message.mac))) {
        options.onBadMessage('failed_check', `message ${message.id} after ${lastId}`);
        socket.destroy();
        return;
      }
      lastId = message.id;
      if (backlog.length === 0 && hasRoom(message.body.length)) {
        start(message.id, message.body);
      } else {
        backlog.push(message);
      }
    }
    if (backlog.length > 0) socket.pause();
  };
  socket.on('close', () => (backlog = []));
  socket.on('data', onData);
  if (head.length > 0) onData(head);
}
