/**
 * Turns a `ProducerRecord` into what a RecordBatch holds (bytes, headers as a list, a
 * timestamp), refusing bad input with INVALID_REQUEST or PAYLOAD_TOO_LARGE before anything
 * is sent. The limits are the brokers' (a broker checks them again).
 */
import {
  DEFAULT_MAX_VALUE_BYTES,
  MAX_HEADERS_PER_RECORD,
  TesseraError,
  type BatchHeaderInput,
  type BatchRecordInput,
} from '@tessera/protocol';
import { toBytes, type Bytes, type ProducerRecord } from '../records.js';

export const MAX_KEY_BYTES = 64 * 1024;
export const MAX_HEADER_NAME_LENGTH = 256;
export const MAX_HEADER_VALUE_BYTES = 64 * 1024;
/** A record as its batch holds it. */
export type PreparedRecord = BatchRecordInput;

export function prepareRecord(input: ProducerRecord, nowMs: number): PreparedRecord {
  if (typeof input !== 'object' || input === null) throw invalid('a record must be an object');
  const value = input.value === null ? null : bytesOf(input.value, 'value');
  if (value !== null && value.length > DEFAULT_MAX_VALUE_BYTES) {
    throw new TesseraError('PAYLOAD_TOO_LARGE', `record value is ${value.length} bytes, more than ${DEFAULT_MAX_VALUE_BYTES}`);
  }
  const key = input.key == null ? null : bytesOf(input.key, 'key');
  if (key !== null && key.length > MAX_KEY_BYTES) throw invalid(`record key is ${key.length} bytes, more than ${MAX_KEY_BYTES}`);
  let headers: BatchHeaderInput[] | undefined;
  if (input.headers != null) {
    if (typeof input.headers !== 'object' || Array.isArray(input.headers)) throw invalid('record headers must be an object of name → bytes');
    const entries = Object.entries(input.headers);
    if (entries.length > MAX_HEADERS_PER_RECORD) throw invalid(`a record has at most ${MAX_HEADERS_PER_RECORD} headers, got ${entries.length}`);
    headers = entries.map(([name, headerValue]) => {
      if (name.length > MAX_HEADER_NAME_LENGTH) throw invalid(`header name longer than ${MAX_HEADER_NAME_LENGTH} characters`);
      const bytes = bytesOf(headerValue, `header ${name}`);
      if (bytes.length > MAX_HEADER_VALUE_BYTES) throw invalid(`header ${name} is ${bytes.length} bytes, more than ${MAX_HEADER_VALUE_BYTES}`);
      return { key: name, value: bytes };
    });
  }
  const timestamp = input.timestamp ?? nowMs;
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw invalid(`record timestamp must be a non-negative integer of milliseconds, got ${timestamp}`);
  }
  return { key, value, headers, timestamp };
}

function bytesOf(value: Bytes, what: string): Uint8Array {
  try {
    return toBytes(value);
  } catch (error) {
    throw invalid(`record ${what}: ${(error as Error).message}`);
  }
}

function invalid(message: string): TesseraError {
  return new TesseraError('INVALID_REQUEST', message);
}
