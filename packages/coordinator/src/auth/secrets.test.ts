// Secrets are stored as salted scrypt hashes: the right secret verifies, any other does not.
import { describe, expect, it } from 'vitest';
import { generateSecret, hashSecret, verifySecret } from './secrets.js';

describe('secret hashes', () => {
  it('verify the secret they were made from and nothing else, with a fresh salt each time', async () => {
    const secret = generateSecret();
    const stored = await hashSecret(secret);
    expect(stored).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect(stored).not.toContain(secret);
    expect(await verifySecret(secret, stored)).toBe(true);
    expect(await verifySecret(secret + 'x', stored)).toBe(false);
    expect(await verifySecret('', stored)).toBe(false);
    expect(await hashSecret(secret)).not.toBe(stored);
  });
});
