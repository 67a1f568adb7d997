/**
 * Records as curl users write and read them, and the RecordBatches they become at the edge
 * (the broker's JSON produce route and the coordinator's routed produce): keys and header
 * values are UTF-8 text; a value is UTF-8 text, or base64 with `"valueEncoding": "base64"`.
 * On the way out (JSON fetch), a record whose key, value or header values are not valid
 * UTF-8 carries `"encoding": "base64"` and all of them in base64.
 */
import { isUtf8 } from 'node:buffer';
import { encodeRecordBatch, type DecodedRecord, type EncodeBatchOptions } from './batch/record-batch.js';
import { TesseraError } from './errors.js';

export interface JsonRecordInput {
  key?: string | null;
  value: string;
  headers?: Record<string, string> | null;
  timestamp?: number;
  valueEncoding?: 'utf8' | 'base64';
}

export interface JsonRecordOutput {
  offset: number;
  timestamp: number;
  key: string | null;
  value: string | null;
  headers: Record<string, string | null> | null;
  /** Present when the record's bytes are not UTF-8: key, value and header values are base64. */
  encoding?: 'base64';
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * `IDEMPOTENCY_KEY_HEADER`: the HTTP header of a JSON produce that the partition stores once
 * within the broker's idempotency window; every record of the request carries it as a record
 * header of the same name, so consumers see it too.
 */
export const IDEMPOTENCY_KEY_HEADER = 'Idempotency-Key';

/**
 * JSON records as one batch (offsets from 0, no epoch yet). A value over `maxValueBytes`, or a
 * value that is not the base64 it claims to be, refuses the whole request, so nothing is stored.
 * `options` sets the producer fields; `extraHeader` is added to every record (replacing a header
 * of the same name).
 */
export function jsonRecordsToBatch(
  records: readonly JsonRecordInput[],
  maxValueBytes: number,
  nowMs = Date.now(),
  options: EncodeBatchOptions = {},
  extraHeader?: { key: string; value: string },
): Buffer {
  const inputs = records.map((record, i) => {
    if (record.valueEncoding === 'base64' && !BASE64.test(record.value)) {
      throw new TesseraError('INVALID_REQUEST', `record ${i}: value is not valid base64 (valueEncoding "base64"); nothing was stored`);
    }
    const value = Buffer.from(record.value, record.valueEncoding === 'base64' ? 'base64' : 'utf8');
    if (value.length > maxValueBytes) {
      throw new TesseraError('PAYLOAD_TOO_LARGE', `record ${i}: value is larger than ${maxValueBytes} bytes; nothing was stored`);
    }
    return {
      key: record.key == null ? null : Buffer.from(record.key, 'utf8'),
      value,
      headers: [
        ...Object.entries(record.headers ?? {})
          .filter(([key]) => key !== extraHeader?.key)
          .map(([key, text]) => ({ key, value: Buffer.from(text, 'utf8') })),
        ...(extraHeader === undefined ? [] : [{ key: extraHeader.key, value: Buffer.from(extraHeader.value, 'utf8') }]),
      ],
      timestamp: record.timestamp ?? nowMs,
    };
  });
  return encodeRecordBatch(inputs, options);
}

/** A decoded record as JSON text (base64 for all of its bytes when any of them is not UTF-8). */
export function recordToJson(record: DecodedRecord): JsonRecordOutput {
  const binary = [record.key, record.value, ...record.headers.map((h) => h.value)].some((bytes) => bytes !== null && !isUtf8(bytes));
  const text = (bytes: Buffer | null) => (bytes === null ? null : bytes.toString(binary ? 'base64' : 'utf8'));
  return {
    offset: record.offset,
    timestamp: record.timestamp,
    key: text(record.key),
    value: text(record.value),
    headers: record.headers.length === 0 ? null : Object.fromEntries(record.headers.map((h) => [h.key, text(h.value)])),
    ...(binary ? { encoding: 'base64' as const } : {}),
  };
}
