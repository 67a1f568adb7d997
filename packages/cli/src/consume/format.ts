import { isUtf8 } from 'node:buffer';
import type { ConsumedRecord } from '@tessera/client';

/**
 * One consumed record as printed: `{"topic","partition","offset","key","value","timestamp"}`,
 * plus `"headers"` when the record has any. Key, value and header values are UTF-8 text;
 * when any of them is not valid UTF-8, all of them are base64 and the line says
 * `"encoding":"base64"` (the same rule as a broker's JSON fetch). Field order is fixed so
 * output diffs cleanly.
 */
export function recordLine(record: ConsumedRecord): string {
  const headers = Object.entries(record.headers);
  const binary = [record.key, record.value, ...headers.map(([, value]) => value)].some((bytes) => bytes !== null && !isUtf8(bytes));
  const text = (bytes: Buffer | null) => (bytes === null ? null : bytes.toString(binary ? 'base64' : 'utf8'));
  const out: Record<string, unknown> = {
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
    key: text(record.key),
    value: text(record.value),
    timestamp: record.timestamp,
  };
  if (headers.length > 0) out.headers = Object.fromEntries(headers.map(([name, value]) => [name, text(value)]));
  if (binary) out.encoding = 'base64';
  return JSON.stringify(out) + '\n';
}
