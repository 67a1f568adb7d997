// Proves the consume output shape: fixed field order, headers only when present.
import { describe, expect, it } from 'vitest';
import { recordLine } from './format.js';

describe('recordLine', () => {
  const base = { topic: 't', partition: 1, offset: 5, key: 'k', value: 'v', timestamp: 1000 };

  it('prints the documented fields in order', () => {
    expect(recordLine({ ...base, headers: null } as never)).toBe(
      '{"topic":"t","partition":1,"offset":5,"key":"k","value":"v","timestamp":1000}\n',
    );
  });

  it('adds headers when the record has some', () => {
    expect(JSON.parse(recordLine({ ...base, key: null, headers: { a: 'b' } } as never))).toEqual({ ...base, key: null, headers: { a: 'b' } });
  });
});
