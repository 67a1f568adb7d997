// Proves the command line entry point: it prints one JSON "listening" line with its url on
// stdout, serves, honours env and flags, and exits 0 on SIGTERM. Runs the built dist/main.js.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterSigner, JsonHttpClient } from '@tessera/protocol';

const CLUSTER_SECRET = 'the-cluster-secret-of-this-test';

const mainJs = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/main.js');
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

describe('main', () => {
  it('logs the listening url, serves, and stops cleanly on SIGTERM', async () => {
    expect(fs.existsSync(mainJs), `${mainJs} is missing: build first (npx tsc -b packages/coordinator)`).toBe(true);
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-coordinator-main-'));
    cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
    const child = spawn(process.execPath, [mainJs, '--port', '0', '--heartbeat-ms', '100'], {
      env: { ...process.env, TESSERA_DATA_DIR: dataDir, TESSERA_LOG_LEVEL: 'info', TESSERA_CLUSTER_SECRET: CLUSTER_SECRET },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    cleanups.push(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const logged: string[] = [];
    const url = await new Promise<string>((resolve, reject) => {
      const lines = readline.createInterface({ input: child.stdout });
      lines.on('line', (line) => {
        logged.push(line);
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === 'listening' && entry.url) resolve(entry.url);
      });
      child.once('exit', (code) => reject(new Error(`coordinator exited with ${code} before listening`)));
    });
    // Registration is for cluster members: refused unsigned, accepted when signed with the secret from the environment.
    const register = { id: 1, url: 'http://127.0.0.1:9' };
    expect((await fetch(`${url}/brokers/register`, { method: 'POST', body: JSON.stringify(register) })).status).toBe(401);
    const member = new JsonHttpClient({ timeoutMs: 2_000, signer: new ClusterSigner([CLUSTER_SECRET], 'broker-1') });
    cleanups.push(() => member.close());
    expect((await member.post<{ heartbeatMs: number }>(`${url}/brokers/register`, register)).heartbeatMs).toBe(100);
    expect(fs.existsSync(path.join(dataDir, 'coordinator.db'))).toBe(true);
    // Authentication is on by default: the bootstrap admin's secret is in a file only its owner can read, and in no log line.
    const bootstrapFile = path.join(dataDir, 'bootstrap-admin.json');
    expect(fs.statSync(bootstrapFile).mode & 0o777).toBe(0o600);
    const { principal, secret } = JSON.parse(fs.readFileSync(bootstrapFile, 'utf8')) as { principal: string; secret: string };
    expect(principal).toBe('admin');
    expect(secret.length).toBeGreaterThanOrEqual(32);
    expect((await fetch(`${url}/topics`)).status).toBe(401);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(logged.some((line) => line.includes('bootstrap admin'))).toBe(true);
    expect(logged.filter((line) => line.includes(secret))).toEqual([]);
  });

  it('refuses to start without a cluster secret, in one line', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-coordinator-main-'));
    cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
    const { TESSERA_CLUSTER_SECRET: _unset, TESSERA_CLUSTER_SECRET_FILE: _unsetFile, ...env } = process.env;
    const child = spawn(process.execPath, [mainJs, '--port', '0'], { env: { ...env, TESSERA_DATA_DIR: dataDir }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    expect(await new Promise((resolve) => child.once('exit', resolve))).toBe(1);
    expect(stderr.trim().split('\n')).toEqual([expect.stringMatching(/^tessera-coordinator: no cluster secret: give --cluster-secret-file/)]);
  });
});
