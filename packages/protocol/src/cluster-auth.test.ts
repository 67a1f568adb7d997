// Service identity's signature: what it accepts (the signer's own call, any configured secret
// during a rotation) and what it refuses (another secret, a changed body, path or method, an old
// timestamp, a malformed header).
import { describe, expect, it } from 'vitest';
import { ClusterSigner, loadClusterSecrets, verifyClusterAuth } from './cluster-auth.js';

const SECRET = 'a-cluster-secret-of-enough-length';
const NEXT = 'the-next-cluster-secret-in-rotation';
const body = JSON.stringify({ topic: 't', partition: 0 });

describe('cluster call signatures', () => {
  const signer = new ClusterSigner([SECRET], 'broker-3');
  const now = 1_800_000_000_000;
  const header = signer.header('POST', '/internal/replicate', body, now);

  it('names the signing node when the call is unchanged', () => {
    expect(verifyClusterAuth([SECRET], header, 'POST', '/internal/replicate', body, now)).toEqual({ ok: true, node: 'broker-3', secret: SECRET });
    expect(verifyClusterAuth([SECRET], header, 'POST', '/internal/replicate', Buffer.from(body), now + 59_000)).toMatchObject({ ok: true });
  });

  it('refuses another secret, a changed body, path, method or node, and an old call', () => {
    expect(verifyClusterAuth(['another-secret-of-enough-length'], header, 'POST', '/internal/replicate', body, now)).toEqual({ ok: false, reason: 'bad_signature' });
    expect(verifyClusterAuth([SECRET], header, 'POST', '/internal/replicate', body.replace('0', '1'), now)).toMatchObject({ reason: 'bad_signature' });
    expect(verifyClusterAuth([SECRET], header, 'POST', '/internal/metadata-changed', body, now)).toMatchObject({ reason: 'bad_signature' });
    expect(verifyClusterAuth([SECRET], header, 'DELETE', '/internal/replicate', body, now)).toMatchObject({ reason: 'bad_signature' });
    expect(verifyClusterAuth([SECRET], header.replace('broker-3', 'broker-1'), 'POST', '/internal/replicate', body, now)).toMatchObject({ reason: 'bad_signature' });
    expect(verifyClusterAuth([SECRET], header, 'POST', '/internal/replicate', body, now + 61_000)).toEqual({ ok: false, reason: 'expired' });
    for (const bad of ['', 'v1', `${header} `, header.replace('v1', 'v2'), 'v1 node=admin ts=1 sig=x']) {
      expect(verifyClusterAuth([SECRET], bad, 'POST', '/internal/replicate', body, now)).toEqual({ ok: false, reason: 'malformed' });
    }
  });

  it('accepts both secrets during a rotation and signs with the first', () => {
    const rotated = new ClusterSigner([NEXT, SECRET], 'coordinator').header('GET', '/metadata', undefined, now);
    expect(verifyClusterAuth([SECRET, NEXT], rotated, 'GET', '/metadata', undefined, now)).toEqual({ ok: true, node: 'coordinator', secret: NEXT });
    expect(verifyClusterAuth([SECRET], rotated, 'GET', '/metadata', undefined, now)).toMatchObject({ ok: false });
  });

  it('refuses short secrets, and reads them from the environment', () => {
    expect(() => new ClusterSigner(['short'], 'coordinator')).toThrow(/at least 16 characters/);
    expect(loadClusterSecrets(undefined, ` ${SECRET} ,${NEXT}`)).toEqual([SECRET, NEXT]);
    expect(loadClusterSecrets(undefined, undefined)).toBeUndefined();
  });
});
