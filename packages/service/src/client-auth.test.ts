// Token checks and ACL decisions as brokers and the coordinator make them: a valid token names its
// principal; an expired, foreign-signed, revoked or rotated one is refused with its reason; ACLs
// grant exact names, prefixes and *, topic admin implies the rest, and members pass member routes.
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import type { AclEntry, AuthStateResponse } from '@tessera/protocol';
import { AuthenticationFailure } from './access.js';
import { ClientAuth, TOKEN_ALGORITHM, TOKEN_ISSUER, grants } from './client-auth.js';

async function keyPair() {
  const { privateKey, publicKey } = await generateKeyPair(TOKEN_ALGORITHM, { crv: 'Ed25519', extractable: true });
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid: 'k1', alg: TOKEN_ALGORITHM } };
}

function sign(key: Awaited<ReturnType<typeof keyPair>>['privateKey'], sub: string, cid: string, expSeconds: number) {
  return new SignJWT({ cid }).setProtectedHeader({ alg: TOKEN_ALGORITHM, kid: 'k1' }).setIssuer(TOKEN_ISSUER).setSubject(sub).setExpirationTime(expSeconds).sign(key);
}

const acl = (entry: Partial<AclEntry> & Pick<AclEntry, 'resource' | 'operation'>): AclEntry => ({ principal: 'p', name: '', prefix: false, ...entry });

describe('ClientAuth tokens', () => {
  it('accepts a valid token and refuses expired, foreign, revoked and rotated ones with their reason', async () => {
    let nowMs = 1_700_000_000_000;
    const auth = new ClientAuth(() => nowMs);
    const ours = await keyPair();
    const theirs = await keyPair();
    const state: AuthStateResponse = { version: 1, enabled: true, keys: [ours.jwk], principals: [{ name: 'alice', credential: 'c1' }], acls: [] };
    auth.apply(state);
    const exp = nowMs / 1000 + 60;
    const reason = (promise: Promise<unknown>) =>
      promise.then(
        () => 'accepted',
        (error: unknown) => (error instanceof AuthenticationFailure ? error.reason : String(error)),
      );

    expect(await auth.verify(await sign(ours.privateKey, 'alice', 'c1', exp))).toBe('alice');
    expect(await reason(auth.verify(await sign(theirs.privateKey, 'alice', 'c1', exp)))).toBe('bad_signature');
    expect(await reason(auth.verify('not.a.token'))).toBe('malformed');
    expect(await reason(auth.verify(await sign(ours.privateKey, 'alice', 'old', exp)))).toBe('revoked');
    expect(await reason(auth.verify(await sign(ours.privateKey, 'mallory', 'c1', exp)))).toBe('revoked');

    const valid = await sign(ours.privateKey, 'alice', 'c1', exp);
    expect(await auth.verify(valid)).toBe('alice');
    nowMs += 61_000;
    expect(await reason(auth.verify(valid))).toBe('expired');
    nowMs -= 61_000;
    auth.apply({ ...state, version: 2, principals: [] });
    expect(await reason(auth.verify(valid))).toBe('revoked');
  });
});

describe('ACL decisions', () => {
  it('grants exact names, prefixes and *, with topic admin implying produce and consume', () => {
    expect(grants(acl({ resource: 'topic', name: 'orders', operation: 'produce' }), 'topic', 'orders', 'produce')).toBe(true);
    expect(grants(acl({ resource: 'topic', name: 'orders', operation: 'produce' }), 'topic', 'orders2', 'produce')).toBe(false);
    expect(grants(acl({ resource: 'topic', name: 'orders', operation: 'produce' }), 'topic', 'orders', 'consume')).toBe(false);
    expect(grants(acl({ resource: 'topic', name: 'team.', prefix: true, operation: 'consume' }), 'topic', 'team.x', 'consume')).toBe(true);
    expect(grants(acl({ resource: 'topic', name: 'team.', prefix: true, operation: 'consume' }), 'topic', 'teamx', 'consume')).toBe(false);
    expect(grants(acl({ resource: 'topic', name: '*', operation: 'consume' }), 'topic', 'anything', 'consume')).toBe(true);
    expect(grants(acl({ resource: 'topic', name: 'orders', operation: 'admin' }), 'topic', 'orders', 'produce')).toBe(true);
    expect(grants(acl({ resource: 'topic', name: 'orders', operation: 'consume' }), 'group', 'orders', 'consume')).toBe(false);
  });

  it('lets members through member routes, refuses principals there, and applies ACLs to principals', () => {
    const auth = new ClientAuth();
    auth.apply({ version: 1, enabled: true, keys: [], principals: [], acls: [acl({ principal: 'admin', resource: 'cluster', operation: 'admin' })] });
    const member = { kind: 'member' as const, node: 'broker-1' };
    expect(() => auth.authorize({ kind: 'member' }, member, false)).not.toThrow();
    expect(() => auth.authorize({ kind: 'member' }, { kind: 'principal', name: 'admin' }, false)).toThrow(/cluster-internal/);
    expect(() => auth.authorize({ kind: 'member' }, { kind: 'anonymous' }, false)).toThrow(AuthenticationFailure);
    expect(() => auth.authorize({ kind: 'cluster-admin' }, { kind: 'principal', name: 'admin' }, false)).not.toThrow();
    expect(() => auth.authorize({ kind: 'cluster-admin' }, { kind: 'principal', name: 'bob' }, false)).toThrow('principal bob is not allowed to administer the cluster');
    expect(() => auth.authorize({ kind: 'topic', operation: 'produce', topics: ['t'] }, { kind: 'anonymous' }, false)).toThrow(/authentication required/);
    expect(() => auth.authorize({ kind: 'public' }, { kind: 'anonymous' }, false)).not.toThrow();
  });

  it('holds HEAD to the rule of the GET route it runs', () => {
    const auth = new ClientAuth();
    auth.apply({ version: 1, enabled: true, keys: [], principals: [], acls: [] });
    const access = auth.accessControl({ 'GET /users': () => ({ kind: 'cluster-admin' }) });
    const asked = (method: string) => () =>
      access.authorize({ method, route: '/users', params: {}, headers: {}, body: undefined, caller: { kind: 'principal', name: 'bob' }, membersUnchecked: false });
    expect(asked('GET')).toThrow('principal bob is not allowed to administer the cluster');
    expect(asked('HEAD')).toThrow('principal bob is not allowed to administer the cluster');
  });
});
