/** Limits and defaults every service and client agrees on. */
export const TOPIC_NAME_PATTERN = /^[A-Za-z0-9._-]{1,200}$/;
export const GROUP_ID_PATTERN = /^[A-Za-z0-9._-]{1,200}$/;
export const MAX_PARTITIONS = 1024;
/** Largest record value, in bytes of UTF-8 (a broker can lower it). */
export const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024;
/** Largest request body any service accepts, in bytes; larger bodies get 413 PAYLOAD_TOO_LARGE. */
export const DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024;
/** Most records in one produce or replicate request. */
export const MAX_RECORDS_PER_REQUEST = 100_000;
/** Most records and bytes one fetch returns per partition. */
export const DEFAULT_FETCH_MAX_RECORDS = 10_000;
export const DEFAULT_FETCH_MAX_BYTES = 8 * 1024 * 1024;
/** Longest long-poll a fetch may ask for. */
export const MAX_FETCH_WAIT_MS = 60_000;
export const MAX_HEADERS_PER_RECORD = 64;

export const DEFAULT_COORDINATOR_PORT = 7070;
export const DEFAULT_COORDINATOR_URL = `http://127.0.0.1:${DEFAULT_COORDINATOR_PORT}`;
export const DEFAULT_HEARTBEAT_MS = 500;
export const DEFAULT_BROKER_TIMEOUT_MS = 3_000;
export const DEFAULT_GROUP_SESSION_TIMEOUT_MS = 10_000;
export const DEFAULT_GROUP_HEARTBEAT_MS = 1_000;
