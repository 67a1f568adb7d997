// Proves numeric and URL flags reject bad input with commander's InvalidArgumentError (one line to the user).
import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { coordinatorUrl, integer, parseInteger } from './options.js';

describe('parseInteger', () => {
  it('accepts integers in range', () => {
    expect(parseInteger('12', { min: 1, max: 100 })).toBe(12);
    expect(parseInteger(' 0 ', { min: 0, max: 1 })).toBe(0);
  });

  it.each(['abc', '1.5', '', '1e3', '12abc', '0x10'])('rejects %j', (text) => {
    expect(() => parseInteger(text, { min: 0, max: 1e9 })).toThrow(InvalidArgumentError);
  });

  it('rejects numbers out of range', () => {
    expect(() => integer(1, 2)('3')).toThrow('expected an integer from 1 to 2.');
    expect(() => integer(1)('0')).toThrow(InvalidArgumentError);
  });
});

describe('coordinatorUrl', () => {
  it('accepts http URLs and drops a trailing slash', () => {
    expect(coordinatorUrl('http://127.0.0.1:7070/')).toBe('http://127.0.0.1:7070');
  });

  it('rejects anything else', () => {
    expect(() => coordinatorUrl('127.0.0.1:7070')).toThrow(InvalidArgumentError);
    expect(() => coordinatorUrl('ftp://x')).toThrow(InvalidArgumentError);
  });
});
