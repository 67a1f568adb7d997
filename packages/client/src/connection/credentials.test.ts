// Credentials a client finds by itself: the environment first, then a tessera dev data dir that names the same coordinator.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { TesseraError, type JsonHttpClient } from '@tessera/protocol';
import { DEV_CREDENTIALS_FILE, TokenSource, discoverCredentials } from './credentials.js';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

function devDir(coordinator: string): string {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-creds-'));
  dirs.push(cwd);
  fs.mkdirSync(path.join(cwd, '.tessera/dev'), { recursive: true });
  fs.writeFileSync(path.join(cwd, '.tessera/dev', DEV_CREDENTIALS_FILE), JSON.stringify({ coordinator, principal: 'admin', secret: 's'.repeat(20) }));
  return cwd;
}

describe('discoverCredentials', () => {
  it('prefers TESSERA_TOKEN, then TESSERA_PRINCIPAL with TESSERA_SECRET', () => {
    const cwd = devDir('http://127.0.0.1:7070');
    expect(discoverCredentials('http://127.0.0.1:7070', { TESSERA_TOKEN: 't', TESSERA_PRINCIPAL: 'p', TESSERA_SECRET: 'x' }, cwd)).toEqual({ token: 't' });
    expect(discoverCredentials('http://127.0.0.1:7070', { TESSERA_PRINCIPAL: 'p', TESSERA_SECRET: 'x' }, cwd)).toEqual({ principal: 'p', secret: 'x' });
    expect(() => discoverCredentials('http://127.0.0.1:7070', { TESSERA_PRINCIPAL: 'p' }, cwd)).toThrow(/go together/);
  });

  it('reads TESSERA_CREDENTIALS_FILE (the bootstrap admin file) before a dev cluster, and says when it is unusable', () => {
    const cwd = devDir('http://127.0.0.1:7070');
    const file = path.join(cwd, 'bootstrap-admin.json');
    fs.writeFileSync(file, JSON.stringify({ principal: 'admin', secret: 'b'.repeat(20) }));
    expect(discoverCredentials('http://127.0.0.1:7070', { TESSERA_CREDENTIALS_FILE: file }, cwd)).toEqual({ principal: 'admin', secret: 'b'.repeat(20) });
    expect(() => discoverCredentials('http://127.0.0.1:7070', { TESSERA_CREDENTIALS_FILE: path.join(cwd, 'none.json') }, cwd)).toThrow(
      /cannot read TESSERA_CREDENTIALS_FILE/,
    );
  });

  it('uses the dev credentials only for the coordinator they were written for', () => {
    const cwd = devDir('http://127.0.0.1:7070');
    expect(discoverCredentials('http://localhost:7070', {}, cwd)).toEqual({ principal: 'admin', secret: 's'.repeat(20) });
    expect(discoverCredentials('http://127.0.0.1:7170', {}, cwd)).toBeUndefined();
    expect(discoverCredentials('http://127.0.0.1:7070', {}, os.tmpdir())).toBeUndefined();
  });
});

describe('TokenSource', () => {
  // A coordinator outage must not stop a client before its token expires: renewal is due at 80%
  // of the token's life, and a renewal that fails leaves the still-valid token in use.
  it('keeps using a valid token while its renewal fails, and fails only once the token expired', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    try {
      let up = true;
      let issued = 0;
      const http = {
        async post() {
          if (!up) throw new TesseraError('UNAVAILABLE', 'cannot reach the coordinator');
          issued++;
          return { token: `t${issued}`, principal: 'p', expiresAtMs: Date.now() + 10_000 };
        },
      } as unknown as JsonHttpClient;
      const tokens = new TokenSource({ principal: 'p', secret: 's'.repeat(16) }, 'http://coordinator', http);
      expect(await tokens.header()).toEqual({ authorization: 'Bearer t1' });

      up = false;
      vi.setSystemTime(1_000_000 + 9_000); // past the renewal point, before the expiry
      expect(await tokens.header()).toEqual({ authorization: 'Bearer t1' });

      vi.setSystemTime(1_000_000 + 10_001); // expired: nothing valid is left to send
      await expect(tokens.header()).rejects.toMatchObject({ code: 'UNAVAILABLE' });

      up = true;
      expect(await tokens.header()).toEqual({ authorization: 'Bearer t2' });
    } finally {
      vi.useRealTimers();
    }
  });
});
