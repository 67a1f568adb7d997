// Proves the consume output shape: fixed field order, headers only when present, base64 for bytes that are not UTF-8.
import { describe, expect, it } from 'vitest';
import type { ConsumedRecord } from '@tessera/client';
import { recordLine } from './format.js';

describe('recordLine', () => {
  const base: ConsumedRecord = { topic: 't', partition: 1, offset: 5, key: Buffer.from('k'), value: Buffer.from('v'), timestamp: 1000, headers: {} };

  it('prints the documented fields in order, as text', () => {
    expect(recordLine(base)).toBe('{"topic":"t","partition":1,"offset":5,"key":"k","value":"v","timestamp":1000}\n');
  });

  it('adds headers when the record has some, and keeps null keys and values null', () => {
    expect(JSON.parse(recordLine({ ...base, key: null, value: null, headers: { a: Buffer.from('b') } }))).toEqual({
      topic: 't',
      partition: 1,
      offset: 5,
      key: null,
      value: null,
      timestamp: 1000,
      headers: { a: 'b' },
    });
  });

  it('prints every byte field as base64 with "encoding":"base64" when one of them is not UTF-8', () => {
    const value = Buffer.from([0, 0xff, 0xfe, 0x41]);
    const line = JSON.parse(recordLine({ ...base, value, headers: { h: Buffer.from('ü') } }));
    expect(line).toMatchObject({ key: Buffer.from('k').toString('base64'), value: value.toString('base64'), encoding: 'base64' });
    expect(Buffer.from(line.value, 'base64')).toEqual(value);
    expect(Buffer.from(line.headers.h, 'base64').toString()).toBe('ü');
    // NUL bytes alone are valid UTF-8: printed as text (JSON escapes them).
    expect(JSON.parse(recordLine({ ...base, value: Buffer.from([0x61, 0]) })).value).toBe('a\u0000');
  });
});
