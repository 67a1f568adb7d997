// The ACL and credential flags: exactly one resource per ACL, sensible default operations, and credentials that go together.
import { describe, expect, it } from 'vitest';
import { credentialsFromFlags } from '../program.js';
import { aclFromFlags } from './auth.js';

describe('aclFromFlags', () => {
  it('builds one entry per resource kind', () => {
    expect(aclFromFlags({ allowPrincipal: 'a', topic: 'orders', operation: 'produce' })).toEqual({
      principal: 'a', resource: 'topic', name: 'orders', prefix: false, operation: 'produce',
    });
    expect(aclFromFlags({ allowPrincipal: 'a', topicPrefix: 'team.', operation: 'consume' })).toMatchObject({ name: 'team.', prefix: true });
    expect(aclFromFlags({ allowPrincipal: 'a', group: 'billing' })).toMatchObject({ resource: 'group', operation: 'consume' });
    expect(aclFromFlags({ allowPrincipal: 'a', cluster: true })).toMatchObject({ resource: 'cluster', name: '', operation: 'admin' });
  });

  it('refuses zero or two resources, and a topic without an operation', () => {
    expect(() => aclFromFlags({ allowPrincipal: 'a', operation: 'produce' })).toThrow(/exactly one/);
    expect(() => aclFromFlags({ allowPrincipal: 'a', topic: 't', group: 'g', operation: 'consume' })).toThrow(/exactly one/);
    expect(() => aclFromFlags({ allowPrincipal: 'a', topic: 't' })).toThrow(/needs --operation/);
  });
});

describe('credentialsFromFlags', () => {
  it('takes a token, or a principal with a secret from the flag or TESSERA_SECRET', () => {
    expect(credentialsFromFlags({ token: 't' }, {})).toEqual({ token: 't' });
    expect(credentialsFromFlags({ principal: 'p', secret: 's' }, {})).toEqual({ principal: 'p', secret: 's' });
    expect(credentialsFromFlags({ principal: 'p' }, { TESSERA_SECRET: 'e' })).toEqual({ principal: 'p', secret: 'e' });
    expect(credentialsFromFlags({}, {})).toBeUndefined();
  });

  it('refuses a principal without a secret, a secret without a principal, and both kinds at once', () => {
    expect(() => credentialsFromFlags({ principal: 'p' }, {})).toThrow(/needs --secret/);
    expect(() => credentialsFromFlags({ secret: 's' }, {})).toThrow(/needs --principal/);
    expect(() => credentialsFromFlags({ token: 't', principal: 'p' }, {})).toThrow(/not both/);
  });
});
