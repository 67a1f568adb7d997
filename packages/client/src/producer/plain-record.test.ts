import { describe, expect, it } from 'vitest';
import { recordInput } from '@tessera/protocol';
import { plainRecord, type ProducerRecord } from './producer.js';

// The producer skips the schema for plain records; this proves the shortcut accepts only what
// the schema accepts, and gives the same record, on valid, borderline and invalid inputs.
describe('plainRecord', () => {
  const cases: Array<Partial<ProducerRecord> & { value: unknown }> = [
    { value: 'v' },
    { value: '' },
    { value: 'v', key: 'k' },
    { value: 'v', key: null },
    { value: 'v', key: '' },
    { value: 'v', key: 'k'.repeat(64 * 1024) },
    { value: 'v', key: 'k'.repeat(64 * 1024 + 1) },
    { value: 'v', timestamp: 0 },
    { value: 'v', timestamp: 1_700_000_000_000 },
    { value: 'v', timestamp: -1 },
    { value: 'v', timestamp: 1.5 },
    { value: 'v', timestamp: Number.MAX_SAFE_INTEGER + 1 },
    { value: 'v', headers: { a: 'b' } },
    { value: 'v', headers: null },
    { value: 42 },
    { value: undefined },
    { value: 'v', key: 7 as unknown as string },
  ];

  it.each(cases)('agrees with the schema on %j', (input) => {
    const record = { topic: 't', ...input } as ProducerRecord;
    const fast = plainRecord(record);
    const schema = recordInput.safeParse({ key: record.key, value: record.value, headers: record.headers, timestamp: record.timestamp });
    if (fast !== undefined) {
      expect(schema.success).toBe(true);
      expect(JSON.stringify(fast)).toBe(JSON.stringify(schema.data));
    }
    // Whatever the shortcut leaves out goes through the schema, so only "accepted" needs checking.
  });

  it('takes the common shapes', () => {
    expect(plainRecord({ topic: 't', value: 'v', key: 'k' })).toEqual({ key: 'k', value: 'v', headers: undefined, timestamp: undefined });
    expect(plainRecord({ topic: 't', value: 'v' })).toBeDefined();
    expect(plainRecord({ topic: 't', value: 'v', headers: { a: 'b' } })).toBeUndefined();
  });
});
