// Proves the stdin → record rules: key separator, fixed key, and line splitting across chunks.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { LineSplitter, lineToRecord, readLines } from './lines.js';

describe('lineToRecord', () => {
  it('takes the text before the first separator as the key', () => {
    expect(lineToRecord('user-1:hello:world', { keySeparator: ':' })).toEqual({ key: 'user-1', value: 'hello:world' });
  });

  it('leaves a line without the separator keyless', () => {
    expect(lineToRecord('no key here', { keySeparator: ':' })).toEqual({ value: 'no key here' });
  });

  it('accepts an empty key and a multi-character separator', () => {
    expect(lineToRecord(':v', { keySeparator: ':' })).toEqual({ key: '', value: 'v' });
    expect(lineToRecord('k=>v=>w', { keySeparator: '=>' })).toEqual({ key: 'k', value: 'v=>w' });
  });

  it('gives every record the fixed key and the partition', () => {
    expect(lineToRecord('a:b', { key: 'K', partition: 3 })).toEqual({ key: 'K', value: 'a:b', partition: 3 });
  });

  it('sends the whole line as the value without key options', () => {
    expect(lineToRecord('a:b', {})).toEqual({ value: 'a:b' });
  });

  it('decodes base64 values and keys, and refuses what is not base64', () => {
    const bytes = Buffer.from([0, 0xff, 0xfe, 10, 13]);
    expect(lineToRecord(`k:${bytes.toString('base64')}`, { keySeparator: ':', valueFormat: 'base64' })).toEqual({ key: 'k', value: bytes });
    expect(lineToRecord(`AP8=:`, { keySeparator: ':', keyFormat: 'base64', valueFormat: 'base64' })).toEqual({ key: Buffer.from([0, 0xff]), value: Buffer.alloc(0) });
    expect(() => lineToRecord('not base64!', { valueFormat: 'base64' })).toThrow(/the value is not valid base64/);
    expect(() => lineToRecord('x', { key: 'AB', keyFormat: 'base64' })).toThrow(/the key is not valid base64/);
  });
});

describe('LineSplitter', () => {
  it('joins lines split across chunks and strips CRLF', () => {
    const splitter = new LineSplitter();
    expect(splitter.push('ab')).toEqual([]);
    expect(splitter.push('c\r\nde')).toEqual(['abc']);
    expect(splitter.push('f\n\ng')).toEqual(['def', '']);
    expect(splitter.end()).toEqual(['g']);
  });

  it('does not invent a last empty line after a final newline', () => {
    const splitter = new LineSplitter();
    expect(splitter.push('a\nb\n')).toEqual(['a', 'b']);
    expect(splitter.end()).toEqual([]);
  });
});

describe('readLines', () => {
  it('reads lines of a stream, including a multi-byte character split across chunks', async () => {
    const euro = Buffer.from('€');
    const chunks = [Buffer.from('k:1\nk:'), euro.subarray(0, 1), Buffer.concat([euro.subarray(1), Buffer.from('\nlast')])];
    const lines: string[] = [];
    for await (const line of readLines(Readable.from(chunks))) lines.push(line);
    expect(lines).toEqual(['k:1', 'k:€', 'last']);
  });
});
