import type { ConsumedRecord } from '@tessera/client';

/**
 * One consumed record as printed: `{"topic","partition","offset","key","value","timestamp"}`,
 * plus `"headers"` when the record has any. Field order is fixed so output diffs cleanly.
 */
export function recordLine(record: ConsumedRecord): string {
  const out: Record<string, unknown> = {
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
    key: record.key ?? null,
    value: record.value,
    timestamp: record.timestamp,
  };
  if (record.headers && Object.keys(record.headers).length > 0) out.headers = record.headers;
  return JSON.stringify(out) + '\n';
}
