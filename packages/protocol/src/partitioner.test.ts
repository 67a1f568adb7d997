// Proves the partitioner is murmurhash3_32 over UTF-8 with seed 0: published vectors, and an
// independent reference implementation of the algorithm for multi-byte keys.
import { describe, expect, it } from 'vitest';
import { murmurhash3, partitionForKey } from './partitioner.js';

/** A plain reference murmur3 x86_32, written from the algorithm's description. */
function referenceMurmur3(bytes: Uint8Array, seed = 0): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed >>> 0;
  const blocks = bytes.length >> 2;
  for (let i = 0; i < blocks; i++) {
    let k = bytes[i * 4] | (bytes[i * 4 + 1] << 8) | (bytes[i * 4 + 2] << 16) | (bytes[i * 4 + 3] << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  const tail = blocks * 4;
  switch (bytes.length & 3) {
    case 3:
      k ^= bytes[tail + 2] << 16;
    // falls through
    case 2:
      k ^= bytes[tail + 1] << 8;
    // falls through
    case 1:
      k ^= bytes[tail];
      k = Math.imul(k, c1);
      k = (k << 15) | (k >>> 17);
      k = Math.imul(k, c2);
      h ^= k;
  }
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

describe('murmurhash3', () => {
  it('matches the published murmur3_32 vectors with seed 0', () => {
    expect(murmurhash3('')).toBe(0);
    expect(murmurhash3('hello')).toBe(0x248bfa47);
    expect(murmurhash3('The quick brown fox jumps over the lazy dog')).toBe(0x2e4ff723);
  });

  it('hashes the UTF-8 bytes of non-ASCII keys', () => {
    const utf8 = new TextEncoder();
    for (const key of ['ü', 'naïve café', '日本語のキー', '🙂 emoji', 'a', 'ab', 'abc', 'abcd']) {
      expect(murmurhash3(key)).toBe(referenceMurmur3(utf8.encode(key)));
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
