/**
 * Every error Tessera reports, as one table: the stable code a client matches on,
 * the HTTP status a service answers with, and whether retrying the same request
 * may succeed. Servers build error bodies from this table and clients map a body
 * back to a typed error, so nothing anywhere matches on message text.
 */
export const ERRORS = {
  INVALID_REQUEST: { status: 400, retriable: false },
  UNAUTHORIZED: { status: 401, retriable: false },
  FORBIDDEN: { status: 403, retriable: false },
  NOT_FOUND: { status: 404, retriable: false },
  TOPIC_NOT_FOUND: { status: 404, retriable: false },
  /** The partition number does not exist in the topic, or this broker holds no replica of it (yet). */
  PARTITION_NOT_FOUND: { status: 404, retriable: true },
  GROUP_NOT_FOUND: { status: 404, retriable: false },
  /** The group has live members: an operation that needs it empty (reset, delete) is refused. */
  GROUP_NOT_EMPTY: { status: 409, retriable: false },
  /** The member is not (or no longer) in the group: rejoin. */
  UNKNOWN_MEMBER: { status: 409, retriable: false },
  TOPIC_EXISTS: { status: 409, retriable: false },
  PRINCIPAL_NOT_FOUND: { status: 404, retriable: false },
  PRINCIPAL_EXISTS: { status: 409, retriable: false },
  SUBSCRIPTION_NOT_FOUND: { status: 404, retriable: false },
  SUBSCRIPTION_EXISTS: { status: 409, retriable: false },
  /** The request carries an epoch older than the one the receiver knows. */
  STALE_EPOCH: { status: 409, retriable: true },
  /**
   * The request names a partition epoch newer than the broker's: the broker has not applied
   * the cluster map the caller routes by yet (it fetches it now). Retry after a backoff.
   */
  UNKNOWN_EPOCH: { status: 409, retriable: true },
  /**
   * A primary's ISR change or move completion was decided on an older assignment of the
   * partition than the coordinator's (its `version` moved on): fetch the map and decide again.
   */
  STALE_ASSIGNMENT: { status: 409, retriable: true },
  /** A commit carries a group generation older than the current one. */
  GENERATION_MISMATCH: { status: 409, retriable: true },
  /** Replication: the batch does not start at the receiver's log end offset. */
  OFFSET_MISMATCH: { status: 409, retriable: true },
  /** The fetch offset is below the log start or above the high watermark. */
  OFFSET_OUT_OF_RANGE: { status: 416, retriable: false },
  /** This broker does not lead the partition; the body names the primary it knows, if any. */
  NOT_PRIMARY: { status: 421, retriable: true },
  PAYLOAD_TOO_LARGE: { status: 413, retriable: false },
  /**
   * Idempotent produce: the batch's sequence number does not follow the last one the partition
   * stored for its producer (a batch in between is missing). The producer starts over with a
   * new producer id; the records of the refused batch were not stored.
   */
  OUT_OF_ORDER_SEQUENCE: { status: 409, retriable: false },
  /** Idempotent produce: the batch carries an older epoch of its producer id than the partition has seen. */
  PRODUCER_FENCED: { status: 409, retriable: false },
  /** Too many requests of this kind at once (token requests beyond the coordinator's bound): retry shortly. */
  TOO_MANY_REQUESTS: { status: 429, retriable: true },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, retriable: false },
  INTERNAL: { status: 500, retriable: true },
  /** The service cannot serve now (starting, or a dependency is unreachable). */
  UNAVAILABLE: { status: 503, retriable: true },
  /** The partition's ISR is smaller than the topic's minInsyncReplicas. */
  NOT_ENOUGH_REPLICAS: { status: 503, retriable: true },
  /** No in-sync replica of the partition is alive. */
  PARTITION_OFFLINE: { status: 503, retriable: true },
  /** Not enough live brokers to place the replicas asked for. */
  NOT_ENOUGH_BROKERS: { status: 503, retriable: true },
  /**
   * The service's disk is (nearly) full: the write was refused before anything was stored.
   * Retry later; deleting or purging topics frees space, and writes resume by themselves.
   */
  STORAGE_FULL: { status: 507, retriable: true },
  /** The request was not answered in time; its outcome is unknown. */
  TIMEOUT: { status: 504, retriable: true },
} as const satisfies Record<string, { status: number; retriable: boolean }>;

export type ErrorCode = keyof typeof ERRORS;

/** The body of every error answer: `{"error": {"code", "message", "retriable", ...details}}`. */
export interface ErrorBody {
  error: {
    code: ErrorCode;
    message: string;
    retriable: boolean;
    /** NOT_PRIMARY: the primary the answering broker knows, so a client can go there directly. */
    primary?: { id: number; url: string } | null;
    /** STALE_EPOCH, UNKNOWN_EPOCH: the epoch the answering side knows. */
    epoch?: number;
    /** STALE_ASSIGNMENT: the partition's assignment version the coordinator knows. */
    version?: number;
    /** GENERATION_MISMATCH: the group generation the answering side knows. */
    generation?: number;
    /** OFFSET_MISMATCH / OFFSET_OUT_OF_RANGE: details of the log. */
    leo?: number;
    logStartOffset?: number;
    highWatermark?: number;
    /** OFFSET_MISMATCH: the receiver's epoch history, `[epoch, startOffset]` pairs. */
    epochs?: Array<[number, number]>;
    /** INVALID_REQUEST: where the body is wrong. */
    issues?: Array<{ path: string; message: string }>;
  };
}

export type ErrorDetails = Omit<ErrorBody['error'], 'code' | 'message' | 'retriable'>;

/** The base of every Tessera error, on the server and in the client. */
export class TesseraError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retriable: boolean;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TesseraError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.retriable = ERRORS[code].retriable;
    this.details = details;
  }

  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, retriable: this.retriable, ...this.details } };
  }

  /** Rebuilds the error a service answered with, or undefined when the body is not an error body. */
  static fromBody(body: unknown, options?: ErrorOptions): TesseraError | undefined {
    if (typeof body !== 'object' || body === null || !('error' in body)) return undefined;
    const error = (body as { error: unknown }).error;
    if (typeof error !== 'object' || error === null) return undefined;
    const { code, message, retriable: _retriable, ...details } = error as Record<string, unknown>;
    if (typeof code !== 'string' || !(code in ERRORS)) return undefined;
    return new TesseraError(code as ErrorCode, String(message ?? code), details as ErrorDetails, options);
  }
}

export function isTesseraError(error: unknown, code?: ErrorCode): error is TesseraError {
  return error instanceof TesseraError && (code === undefined || error.code === code);
}

export const isNotPrimary = (error: unknown): error is TesseraError => isTesseraError(error, 'NOT_PRIMARY');
export const isStaleEpoch = (error: unknown): error is TesseraError => isTesseraError(error, 'STALE_EPOCH');
export const isGenerationMismatch = (error: unknown): error is TesseraError =>
  isTesseraError(error, 'GENERATION_MISMATCH');

/** An error a client may retry: a retriable Tessera error, or a network failure (no answer at all). */
export function isRetriable(error: unknown): boolean {
  if (error instanceof TesseraError) return error.retriable;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && NETWORK_ERROR_CODES.has(code);
}

/** Node, got and undici codes that mean "no answer": the request may or may not have been applied. */
export const NETWORK_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ERR_GOT_REQUEST_ERROR',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
]);
