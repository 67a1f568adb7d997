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
 * - over all connections, a request holds its bytes against a shared budget (`budget`, the
 *   service's body budget) from the moment its length is read until it is answered; one that
 *   does not fit is skipped unread and answered with the budget's refusal (UNAVAILABLE,
 *   retriable), and the connection goes on;
 * - a connection that sends nothing for `idleTimeoutMs` is closed, and so is one that leaves a
 *   message unfinished for `messageTimeoutMs`, or does not begin its first message within
 *   `firstMessageTimeoutMs`;
 * - a message larger than `maxMessageBytes`, bytes that are not a message, a sealed message that
 *   fails its check, or a request id that does not grow close the connection (its bytes cannot
 *   be trusted any more).
 * A peer that hangs up (the upgraded socket is half-open) is closed once its answers are sent.
 */
import type { Duplex } from 'node:stream';
import type { TesseraError } from '../errors.js';
import { MAC_BYTES, MessageReader, writeMessage, type MessageAdmission, type MessageSeal } from './framing.js';

/**
 * A bound on the bytes of request bodies being read or held at once, shared by many connections
 * (`@tessera/service`'s BodyBudget, which also bounds the HTTP edge's request bodies).
 */
export interface SharedBodyBudget {
  /** Holds `bytes` and returns true, or returns false and holds nothing when they do not fit. */
  tryTake(bytes: number): boolean;
  release(bytes: number): void;
  /** The error a request that did not fit is answered with (UNAVAILABLE, retriable). */
  refusal(): TesseraError;
}

export interface StreamSessionOptions {
  maxMessageBytes: number;
  /** Checks each request's MAC and signs each answer; undefined: messages carry none. */
  seal?: MessageSeal;
  /** Most requests in service at once on the connection. */
  maxInFlight: number;
  /** Most bytes held for the connection: requests in service and answers not yet written out (one request is always served). */
  maxInFlightBytes: number;
  /**
   * Bytes of requests being read or held over all connections sharing it; without one, only the
   * connection's own bounds apply. `refusal` is the answer's chunks for a request that did not fit.
   */
  budget?: { bodies: SharedBodyBudget; refusal: (error: TesseraError) => readonly Buffer[] };
  idleTimeoutMs: number;
  /** How long a message may stay unfinished (its first bytes read, not its last). */
  messageTimeoutMs: number;
  /**
   * How long after the upgrade the first message may take to begin, as an HTTP connection has
   * its headers deadline: a peer opens a stream to send a call at once. Undefined: the idle timeout.
   */
  firstMessageTimeoutMs?: number;
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
  const { seal, budget } = options;
  (socket as Duplex & { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  (socket as Duplex & { setTimeout?: (ms: number, onTimeout: () => void) => void }).setTimeout?.(options.idleTimeoutMs, () => socket.destroy());
  let lastId = 0;
  /**
   * Budget bytes held for messages read (or being read) that are not requests yet: a message
   * holds its bytes from its prefix on, and hands them to its request once it is whole.
   */
  let readingBytes = 0;
  /** Requests refused for want of budget while reading, to be answered with the messages read. */
  let refused: Request[] = [];
  // Ids are checked as each message begins, so a message that is skipped is checked too.
  const admit: MessageAdmission = (id, bodyBytes) => {
    if (id <= lastId) throw new IdNotGrowing(`message ${id} after ${lastId}`);
    lastId = id;
    if (budget === undefined) return true;
    if (!budget.bodies.tryTake(bodyBytes)) {
      refused.push({ id, answer: budget.refusal(budget.bodies.refusal()) });
      return false;
    }
    readingBytes += bodyBytes;
    return true;
  };
  const reader = new MessageReader(options.maxMessageBytes, seal === undefined ? 0 : MAC_BYTES, admit);
  /** Requests holding a slot, and the bytes held: theirs, and answers not yet written out. */
  let inFlight = 0;
  let heldBytes = 0;
  /** Requests and answers not finished yet (a request that gave its slot back included). */
  let unfinished = 0;
  /** Requests read while there was no room (reading is paused until they are all started). */
  let backlog: Request[] = [];
  let ended = false;
  let messageTimer: NodeJS.Timeout | undefined;
  let firstMessageTimer: NodeJS.Timeout | undefined;
  if (options.firstMessageTimeoutMs !== undefined) {
    firstMessageTimer = setTimeout(() => socket.destroy(), options.firstMessageTimeoutMs);
    firstMessageTimer.unref();
  }

  const hasRoom = (bytes: number) => (inFlight === 0 && heldBytes === 0) || (inFlight < options.maxInFlight && heldBytes + bytes <= options.maxInFlightBytes);
  const sizeOf = (request: Request) => ('body' in request ? request.body.length : 0);

  /** Starts what waits while there is room; resumes reading once nothing waits. */
  const startWaiting = () => {
    while (backlog.length > 0 && !socket.destroyed && hasRoom(sizeOf(backlog[0]!))) {
      start(backlog.shift()!);
      if (backlog.length === 0) socket.resume();
    }
    if (ended && unfinished === 0 && backlog.length === 0) socket.destroy();
  };

  const start = (request: Request) => {
    inFlight++;
    heldBytes += sizeOf(request);
    unfinished++;
    void answer(request);
  };

  const answer = async (request: Request) => {
    const { id } = request;
    const size = sizeOf(request);
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
      chunks =
        'answer' in request
          ? request.answer
          : await options.serve(id, request.body, () => {
              freeSlot();
              startWaiting();
            });
    } catch {
      chunks = undefined;
      socket.destroy();
    }
    freeSlot();
    heldBytes -= size;
    // Answered (or failed): its body is no longer held, whatever becomes of the connection.
    if (size > 0) budget?.bodies.release(size);
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

  /** Starts `request` now, or keeps it until there is room. */
  const admitRequest = (request: Request) => {
    if (backlog.length === 0 && hasRoom(sizeOf(request))) start(request);
    else backlog.push(request);
  };

  const onData = (chunk: Buffer) => {
    if (firstMessageTimer !== undefined) {
      clearTimeout(firstMessageTimer);
      firstMessageTimer = undefined;
    }
    let messages;
    const skippedBefore = reader.skippedMessages;
    try {
      messages = reader.push(chunk);
    } catch (error) {
      options.onBadMessage(error instanceof IdNotGrowing ? 'failed_check' : 'not_a_message', (error as Error).message);
      socket.destroy();
      return;
    }
    for (const message of messages) {
      if (seal !== undefined && !seal.check('request', message.id, message.body, message.mac)) {
        options.onBadMessage('failed_check', `message ${message.id} failed its check`);
        socket.destroy();
        return;
      }
      if (budget !== undefined) readingBytes -= message.body.length;
      admitRequest({ id: message.id, body: message.body });
    }
    for (const request of refused) admitRequest(request);
    refused = [];
    if (backlog.length > 0) socket.pause();
    // A message begun must be finished in time: a trickle of bytes is no way to hold a connection.
    // The deadline is each message's own: one that completed ends it, the next starts its own. A
    // message skipped (refused for the budget) completes too when its last byte is dropped.
    if ((messages.length > 0 || reader.skippedMessages > skippedBefore) && messageTimer !== undefined) {
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
    // What was read and never became a request in service holds no budget any more (requests in
    // service give theirs back when they are answered).
    let unread = readingBytes;
    for (const request of backlog) unread += sizeOf(request);
    readingBytes = 0;
    backlog = [];
    refused = [];
    if (unread > 0) budget?.bodies.release(unread);
    if (messageTimer !== undefined) clearTimeout(messageTimer);
    if (firstMessageTimer !== undefined) clearTimeout(firstMessageTimer);
  });
  if (head.length > 0) onData(head);
}

/** A request read in full (`body`), or one refused unread whose answer is ready (`answer`). */
type Request = { id: number; body: Buffer } | { id: number; answer: readonly Buffer[] };

/** A request id that does not grow: a replayed or reordered message, so the connection is closed. */
class IdNotGrowing extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IdNotGrowing';
  }
}
