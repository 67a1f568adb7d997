/**
 * The serving end of a stream (framing.ts): after the 101 answer to an upgrade, every message
 * read is one request, served side by side with the others, and answered with its id.
 *
 * Bounds, so that a peer cannot pile up work or memory by pipelining:
 * - at most `maxInFlight` requests are in service at once on a connection, and the bytes held
 *   for it (requests in service, and answers not yet handed to the kernel: a peer that does not
 *   read its answers holds their slots) stay within `maxInFlightBytes`, one request excepted
 *   whatever its size. What is read beyond that waits, and reading pauses until it is served. A
 *   request that only waits (a long poll, bounded by its service as a whole) may say so and gives
 *   its slot back until its answer is ready (its bytes stay counted: it is still held);
 * - a connection that sends nothing for `idleTimeoutMs` is closed, and so is one that leaves a
 *   message unfinished for `messageTimeoutMs`;
 * - a message larger than `maxMessageBytes`, bytes that are not a message, a sealed message that
 *   fails its check, or a request id that does not grow close the connection (its bytes cannot
 *   be trusted any more).
 * A peer that hangs up (the upgraded socket is half-open) is closed once its answers are sent.
 */
import type { Duplex } from 'node:stream';
import type { TesseraError } from '../errors.js';
import { MAC_BYTES, MessageReader, writeMessage, type MessageSeal } from './framing.js';

export interface StreamSessionOptions {
  maxMessageBytes: number;
  /** Checks each request's MAC and signs each answer; undefined: messages carry none. */
  seal?: MessageSeal;
  /** Most requests in service at once on the connection. */
  maxInFlight: number;
  /** Most bytes held for the connection: requests in service and answers not yet written out (one request is always served). */
  maxInFlightBytes: number;
  idleTimeoutMs: number;
  /** How long a message may stay unfinished (its first bytes read, not its last). */
  messageTimeoutMs: number;
  /**
   * Serves one request; resolves with its answer's chunks, or undefined to send none (the service
   * is stopping). `waiting()` says the request only waits now (a long poll): it gives its slot
   * back until its answer is ready (its bytes stay counted).
   */
  serve(id: number, body: Buffer, waiting: () => void): Promise<readonly Buffer[] | undefined>;
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
  const reader = new MessageReader(options.maxMessageBytes, seal === undefined ? 0 : MAC_BYTES);
  let lastId = 0;
  /** Requests holding a slot, and the bytes held: theirs, and answers not yet written out. */
  let inFlight = 0;
  let heldBytes = 0;
  /** Requests and answers not finished yet (a request that gave its slot back included). */
  let unfinished = 0;
  /** Requests read while there was no room (reading is paused until they are all started). */
  let backlog: Array<{ id: number; body: Buffer }> = [];
  let ended = false;
  let messageTimer: NodeJS.Timeout | undefined;

  const hasRoom = (bytes: number) => (inFlight === 0 && heldBytes === 0) || (inFlight < options.maxInFlight && heldBytes + bytes <= options.maxInFlightBytes);

  /** Starts what waits while there is room; resumes reading once nothing waits. */
  const startWaiting = () => {
    while (backlog.length > 0 && !socket.destroyed && hasRoom(backlog[0]!.body.length)) {
      const next = backlog.shift()!;
      start(next.id, next.body);
      if (backlog.length === 0) socket.resume();
    }
    if (ended && unfinished === 0 && backlog.length === 0) socket.destroy();
  };

  const start = (id: number, body: Buffer) => {
    inFlight++;
    heldBytes += body.length;
    unfinished++;
    void answer(id, body);
  };

  const answer = async (id: number, body: Buffer) => {
    const size = body.length;
    let holdingSlot = true;
    // A request that waits (a long poll) gives its slot back, but its bytes stay counted until it
    // is answered: the request is still in memory, and a connection's waiting requests may not
    // hold more than its bound (a waiting fetch is small; one padded to the message limit is not).
    const freeSlot = () => {
      if (!holdingSlot) return;
      holdingSlot = false;
      inFlight--;
    };
    let chunks: readonly Buffer[] | undefined;
    try {
      chunks = await options.serve(id, body, () => {
        freeSlot();
        startWaiting();
      });
    } catch {
      chunks = undefined;
      socket.destroy();
    }
    freeSlot();
    heldBytes -= size;
    if (chunks === undefined || socket.destroyed) {
      unfinished--;
      startWaiting();
      return;
    }
    let bytes = 0;
    for (const chunk of chunks) bytes += chunk.length;
    heldBytes += bytes;
    let done = false;
    // Called once: by the write, or (a write that threw) here; a destroyed socket calls back with an error.
    const written = () => {
      if (done) return;
      done = true;
      heldBytes -= bytes;
      unfinished--;
      startWaiting();
    };
    try {
      writeMessage(socket, id, seal?.sign('answer', id, chunks), chunks, written);
    } catch {
      socket.destroy();
      written();
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
    // A message begun must be finished in time: a trickle of bytes is no way to hold a connection.
    // The deadline is each message's own: one that completed ends it, the next starts its own.
    if (messages.length > 0 && messageTimer !== undefined) {
      clearTimeout(messageTimer);
      messageTimer = undefined;
    }
    if (reader.hasPartial && messageTimer === undefined) {
      messageTimer = setTimeout(() => {
        options.onBadMessage('not_a_message', `a message unfinished after ${options.messageTimeoutMs} ms`);
        socket.destroy();
      }, options.messageTimeoutMs);
      messageTimer.unref();
    } else if (!reader.hasPartial && messageTimer !== undefined) {
      clearTimeout(messageTimer);
      messageTimer = undefined;
    }
  };
  socket.on('data', onData);
  // The upgraded socket is half-open: a peer that hangs up is closed here once its answers are out.
  socket.on('end', () => {
    ended = true;
    if (unfinished === 0) socket.destroy();
  });
  socket.on('close', () => {
    backlog = [];
    if (messageTimer !== undefined) clearTimeout(messageTimer);
  });
  if (head.length > 0) onData(head);
}
