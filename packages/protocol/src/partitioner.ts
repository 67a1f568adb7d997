/**
 * The one partitioning function of Tessera, used by the coordinator's routing
 * produce endpoint and by every client: murmurhash3_32 of the key's bytes (a text
 * key: its UTF-8 bytes) with seed 0, modulo the partition count.
 */
export function partitionForKey(key: string | Uint8Array, partitionCount: number): number {
  if (!Number.isInteger(partitionCount) || partitionCount < 1) {
    throw new RangeError(`partitionCount must be a positive integer, got ${partitionCount}`);
  }
  return (typeof key === 'string' ? murmurhash3(key) : murmur3Bytes(key, key.length, 0)) % partitionCount;
}

const utf8 = new TextEncoder();
/**
 * Keys are encoded into this buffer instead of a new array per key: the producer hashes
 * every keyed record, and that allocation was a visible share of its garbage. A UTF-16 unit
 * takes at most 3 UTF-8 bytes, so keys up to a third of its size always fit.
 */
const scratch = new Uint8Array(3 * 1024);

/** murmurhash3_32 (x86) of the UTF-8 bytes of `key`, seed 0, as an unsigned 32-bit integer. */
export function murmurhash3(key: string): number {
  if (key.length * 3 <= scratch.length) {
    const { written } = utf8.encodeInto(key, scratch);
    return murmur3Bytes(scratch, written, 0);
  }
  const bytes = utf8.encode(key);
  return murmur3Bytes(bytes, bytes.length, 0);
}

/** murmur3 x86_32 over the first `length` bytes of `bytes`. */
function murmur3Bytes(bytes: Uint8Array, length: number, seed: number): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed >>> 0;
  const tail = length & ~3;
  for (let i = 0; i < tail; i += 4) {
    let k = bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const rest = length & 3;
  if (rest > 0) {
    let k = bytes[tail];
    if (rest > 1) k ^= bytes[tail + 1] << 8;
    if (rest > 2) k ^= bytes[tail + 2] << 16;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
