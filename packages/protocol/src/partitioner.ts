import murmurhash from 'murmurhash';

/**
 * The one partitioning function of Tessera, used by the coordinator's routing
 * produce endpoint and by every client: murmurhash3_32 of the key's UTF-8 bytes
 * with seed 0, modulo the partition count.
 */
export function partitionForKey(key: string, partitionCount: number): number {
  if (!Number.isInteger(partitionCount) || partitionCount < 1) {
    throw new RangeError(`partitionCount must be a positive integer, got ${partitionCount}`);
  }
  return murmurhash3(key) % partitionCount;
}

const utf8 = new TextEncoder();

/** murmurhash3_32 (x86) of the UTF-8 bytes of `key`, seed 0, as an unsigned 32-bit integer. */
export function murmurhash3(key: string): number {
  return murmurhash.v3(utf8.encode(key), 0) >>> 0;
}
