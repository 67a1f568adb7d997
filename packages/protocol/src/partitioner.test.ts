// Proves the partitioner is murmurhash3_32 over UTF-8 with seed 0: published vectors, and the
// `murmurhash` package as the reference for every kind of key. The partitioner is hand-written
// because it hashes without allocating (the producer hashes every keyed record); this test is
// what keeps it equal to the package.
import murmurhash from 'murmurhash';
import { describe, expect, it } from 'vitest';
import { murmurhash3, partitionForKey } from './partitioner.js';

/** The reference: the `murmurhash` package's murmur3 x86_32 (over the UTF-8 bytes of a string). */
const referenceMurmur3 = (bytes: Uint8Array): number => murmurhash.v3(bytes, 0);

describe('murmurhash3', () => {
  it('matches the published murmur3_32 vectors with seed 0', () => {
    expect(murmurhash3('')).toBe(0);
    expect(murmurhash3('hello')).toBe(0x248bfa47);
    expect(murmurhash3('The quick brown fox jumps over the lazy dog')).toBe(0x2e4ff723);
  });

  it('hashes the UTF-8 bytes of non-ASCII keys, as the murmurhash package does for strings', () => {
    const utf8 = new TextEncoder();
    for (const key of ['ü', 'naïve café', '日本語のキー', '🙂 emoji', 'a', 'ab', 'abc', 'abcd']) {
      expect(murmurhash3(key)).toBe(referenceMurmur3(utf8.encode(key)));
      expect(murmurhash3(key)).toBe(murmurhash.v3(key, 0));
    }
  });

  it('hashes keys of every length the same way, inside and beyond the reusable buffer', () => {
    const utf8 = new TextEncoder();
    const keys = ['x'.repeat(1023), 'x'.repeat(1024), 'x'.repeat(1025), 'é'.repeat(1024), '日'.repeat(1100), '\ud800 lone surrogate', '🙂'.repeat(600)];
    for (let i = 0; i < 500; i++) keys.push(`key-${i}-${'ü'.repeat(i % 7)}`);
    for (const key of keys) expect(murmurhash3(key)).toBe(referenceMurmur3(utf8.encode(key)));
  });
});

describe('partitionForKey', () => {
  it('is the hash modulo the partition count', () => {
    expect(partitionForKey('hello', 7)).toBe(0x248bfa47 % 7);
    expect(partitionForKey('hello', 1)).toBe(0);
  });

  it('puts a byte key on the partition of the text whose UTF-8 bytes it is, and hashes any bytes', () => {
    for (const key of ['hello', 'naïve café', '🙂']) {
      expect(partitionForKey(Buffer.from(key, 'utf8'), 13)).toBe(partitionForKey(key, 13));
    }
    const bytes = new Uint8Array([0, 0xff, 0xfe, 0x80, 0]);
    expect(partitionForKey(bytes, 1000)).toBe(referenceMurmur3(bytes) % 1000);
  });

  it('spreads keys over every partition', () => {
    const counts = new Array(8).fill(0);
    for (let i = 0; i < 8000; i++) counts[partitionForKey(`key-${i}`, 8)]++;
    for (const count of counts) expect(count).toBeGreaterThan(800);
  });

  it('rejects a partition count that is not a positive integer', () => {
    expect(() => partitionForKey('k', 0)).toThrow(RangeError);
    expect(() => partitionForKey('k', 1.5)).toThrow(RangeError);
  });
});
