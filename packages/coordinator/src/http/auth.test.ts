// Proves the coordinator's authentication API on a real coordinator in this process (ephemeral
// port, temp data dir): the bootstrap admin, the token exchange, principal and ACL management with
// their errors, immediate revocation on the coordinator, and that principals, ACLs and the signing
// key survive a restart (a token issued before it still works after it).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultConfig, startCoordinator, type CoordinatorConfig, type RunningCoordinator } from '../index.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const ADMIN_SECRET = 'admin-secret-of-this-test';

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-coordinator-auth-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** `bootstrapAdminSecret` null: none given, so the coordinator writes one to bootstrap-admin.json. */
async function coordinator(
  dataDir: string,
  bootstrapAdminSecret: string | null = ADMIN_SECRET,
  overrides: Partial<CoordinatorConfig> = {},
): Promise<RunningCoordinator> {
  const running = await startCoordinator(
    defaultConfig({ port: 0, dataDir, logLevel: 'silent', ...(bootstrapAdminSecret === null ? {} : { bootstrapAdminSecret }), ...overrides }),
  );
  cleanups.push(() => running.close());
  return running;
}

async function call(base: string, method: string, route: string, options: { token?: string; basic?: string; body?: unknown } = {}) {
  const headers: Record<string, string> = {};
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.basic !== undefined) headers.authorization = `Basic ${Buffer.from(options.basic).toString('base64')}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${base}${route}`, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

async function token(base: string, principal: string, secret: string): Promise<string> {
  const answer = await call(base, 'POST', '/auth/token', { basic: `${principal}:${secret}` });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return answer.body.token as string;
}

describe('coordinator authentication API', () => {
  it('exchanges secrets for tokens and manages principals and ACLs, with a clear error for each mistake', async () => {
    const dataDir = tempDir();
    const { url } = await coordinator(dataDir);
    // The bootstrap secret came from the environment: no file with it was written.
    expect(fs.existsSync(path.join(dataDir, 'bootstrap-admin.json'))).toBe(false);
    const admin = await token(url, 'admin', ADMIN_SECRET);

    expect(await call(url, 'POST', '/auth/token', { basic: 'admin:wrong-secret-xxxxxxx' })).toMatchObject({
      status: 401,
      body: { error: { code: 'UNAUTHORIZED', message: 'authentication failed for principal admin' } },
    });
    expect((await call(url, 'POST', '/auth/token', { basic: 'nobody:wrong-secret-xxxxxxx' })).body.error.message).toBe(
      'authentication failed for principal nobody',
    );
    expect((await call(url, 'POST', '/auth/token')).status).toBe(401);
    expect((await call(url, 'GET', '/topics')).status).toBe(401);
    expect((await call(url, 'GET', '/topics', { token: 'garbage' })).body.error.code).toBe('UNAUTHORIZED');

    const created = await call(url, 'POST', '/users', { token: admin, body: { name: 'alice' } });
    expect(created.status).toBe(201);
    expect(created.body.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await call(url, 'POST', '/users', { token: admin, body: { name: 'alice' } })).body.error.code).toBe('PRINCIPAL_EXISTS');
    expect((await call(url, 'POST', '/users', { token: admin, body: { name: 'bob', secret: 'short' } })).body.error.code).toBe('INVALID_REQUEST');
    expect((await call(url, 'DELETE', '/users/nobody', { token: admin })).body.error.code).toBe('PRINCIPAL_NOT_FOUND');
    expect((await call(url, 'GET', '/users', { token: admin })).body.principals.map((p: { name: string }) => p.name)).toEqual(['admin', 'alice']);

    const alice = await token(url, 'alice', created.body.secret);
    expect((await call(url, 'GET', '/topics', { token: alice })).status).toBe(200);
    expect(await call(url, 'GET', '/users', { token: alice })).toMatchObject({
      status: 403,
      body: { error: { code: 'FORBIDDEN', message: 'principal alice is not allowed to administer the cluster' } },
    });
    // A client credential never opens the brokers' routes.
    expect((await call(url, 'POST', '/brokers/heartbeat', { token: admin, body: { id: 1, url: 'http://127.0.0.1:9', replicas: [] } })).status).toBe(403);

    const badAcls = [
      { principal: 'alice', resource: 'group', name: 'g', operation: 'produce' },
      { principal: 'alice', resource: 'cluster', name: 'x', operation: 'admin' },
      { principal: 'alice', resource: 'topic', operation: 'produce' },
      { principal: 'alice', resource: 'topic', name: 'a b', operation: 'produce' },
    ];
    for (const acl of badAcls) expect((await call(url, 'POST', '/acls', { token: admin, body: acl })).status, JSON.stringify(acl)).toBe(400);
    const grant = { principal: 'alice', resource: 'topic', name: 'alice.', prefix: true, operation: 'admin' };
    expect(await call(url, 'POST', '/acls', { token: admin, body: grant })).toMatchObject({ status: 201, body: { added: true } });
    expect(await call(url, 'POST', '/acls', { token: admin, body: grant })).toMatchObject({ status: 200, body: { added: false } });
    expect((await call(url, 'GET', '/acls?principal=alice', { token: admin })).body.acls).toEqual([grant]);
    // With admin on the prefix alice may create its own topics (no broker is needed to be refused for want of brokers).
    expect((await call(url, 'POST', '/topics', { token: alice, body: { name: 'alice.orders', partitions: 1 } })).body.error.code).toBe(
      'NOT_ENOUGH_BROKERS',
    );
    expect((await call(url, 'POST', '/topics', { token: alice, body: { name: 'bob.orders', partitions: 1 } })).body.error.code).toBe('FORBIDDEN');
    expect(await call(url, 'POST', '/acls/remove', { token: admin, body: grant })).toMatchObject({ status: 200, body: { removed: true } });
    expect((await call(url, 'POST', '/topics', { token: alice, body: { name: 'alice.orders', partitions: 1 } })).body.error.code).toBe('FORBIDDEN');

    // Rotation and deletion refuse the old tokens on the coordinator at once.
    const rotated = await call(url, 'POST', '/users/alice/secret', { token: admin, body: {} });
    expect((await call(url, 'GET', '/topics', { token: alice })).body.error.message).toBe('authentication failed for principal alice: its secret was changed');
    const alice2 = await token(url, 'alice', rotated.body.secret);
    expect((await call(url, 'DELETE', '/users/alice', { token: admin })).status).toBe(204);
    expect((await call(url, 'GET', '/topics', { token: alice2 })).body.error.message).toBe('authentication failed for principal alice: it no longer exists');

    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/tessera_auth_failures_total\{reason="bad_secret"\} [1-9]/);
    expect(metrics).toMatch(/tessera_auth_failures_total\{reason="revoked"\} [1-9]/);
    expect(metrics).toMatch(/tessera_auth_denied_total\{principal="alice"\} [1-9]/);
  });

  it('keeps principals, ACLs and the signing key across a restart, and bootstraps only once', async () => {
    const dataDir = tempDir();
    const first = await coordinator(dataDir, null);
    const file = path.join(dataDir, 'bootstrap-admin.json');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const { secret } = JSON.parse(fs.readFileSync(file, 'utf8')) as { secret: string };
    const admin = await token(first.url, 'admin', secret);
    const carol = (await call(first.url, 'POST', '/users', { token: admin, body: { name: 'carol', secret: 'carol-secret-123456' } })).body;
    expect(carol.name).toBe('carol');
    await call(first.url, 'POST', '/acls', { token: admin, body: { principal: 'carol', resource: 'cluster', operation: 'admin' } });
    await first.close();

    // A second start with another bootstrap secret changes nothing: the admin exists.
    const second = await coordinator(dataDir, 'another-secret-that-is-ignored');
    expect((await call(second.url, 'GET', '/users', { token: admin })).status).toBe(200);
    expect((await call(second.url, 'POST', '/auth/token', { basic: 'admin:another-secret-that-is-ignored' })).status).toBe(401);
    const carolToken = await token(second.url, 'carol', 'carol-secret-123456');
    expect((await call(second.url, 'GET', '/users', { token: carolToken })).status).toBe(200);
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).secret).toBe(secret);
    const versionBefore = (await call(second.url, 'GET', '/internal/auth')).body.version as number;
    await second.close();

    // Replacing the signing key (as docs/operations.md describes): old tokens are refused, a new auth version tells brokers.
    const db = new Database(path.join(dataDir, 'coordinator.db'));
    db.prepare("DELETE FROM meta WHERE key = 'token_signing_key'").run();
    db.close();
    const third = await coordinator(dataDir);
    expect((await call(third.url, 'GET', '/users', { token: carolToken })).body.error.message).toBe('token refused: its signature does not verify');
    expect((await call(third.url, 'GET', '/users', { token: await token(third.url, 'carol', 'carol-secret-123456') })).status).toBe(200);
    expect((await call(third.url, 'GET', '/internal/auth')).body.version).toBeGreaterThan(versionBefore);
  });

  it('checks a bounded number of secrets at once and refuses the excess with 429, answering everything else', async () => {
    const { url } = await coordinator(tempDir(), ADMIN_SECRET, { secretChecks: { running: 1, waiting: 2 } });
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => call(url, 'POST', '/auth/token', { basic: 'admin:a-wrong-guess-of-the-secret' })),
    );
    // One check runs and two wait; the rest arrive while those are busy (a check takes tens of ms).
    const statuses = answers.map((a) => a.status);
    expect(statuses.every((status) => status === 401 || status === 429)).toBe(true);
    expect(statuses.filter((status) => status === 401).length).toBeGreaterThanOrEqual(3);
    expect(statuses.filter((status) => status === 429).length).toBeGreaterThanOrEqual(1);
    expect(answers.find((a) => a.status === 429)!.body.error).toMatchObject({ code: 'TOO_MANY_REQUESTS', retriable: true });
    expect((await call(url, 'GET', '/health')).status).toBe(200);
    // Once the checks ended, the right secret gets its token.
    expect((await token(url, 'admin', ADMIN_SECRET)).length).toBeGreaterThan(0);
  });
});
