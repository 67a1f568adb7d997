// Proves the dev supervisor's process handling with fake services (tiny HTTP servers that
// answer /ready): start order and addresses, dev.json PIDs, restart after a kill, and a
// clean stop that leaves no process behind.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { freePortRange } from '@tessera/protocol/test-support/ports';
import { DevCluster } from './supervisor.js';
import { isAlive, readDevState } from './state.js';

const FAKE_SERVICE = `
import http from 'node:http';
const args = process.argv.slice(2);
const port = Number(args[args.indexOf('--port') + 1]);
const server = http.createServer((req, res) => { res.writeHead(req.url === '/ready' ? 200 : 404); res.end('{}'); });
server.listen(port, '127.0.0.1', () => console.log(JSON.stringify({ msg: 'listening', port, args })));
process.on('SIGTERM', () => { console.log('stopping'); server.close(() => process.exit(0)); });
`;

function collect(stream: PassThrough): () => string {
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return () => text;
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function setup(restartOnExit: boolean) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-dev-test-'));
  const entry = path.join(dir, 'fake-service.mjs');
  fs.writeFileSync(entry, FAKE_SERVICE);
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  return { dir, entry, stdout, stderr, out: collect(stdout), err: collect(stderr), restartOnExit };
}

/** A running DevCluster of the fake services, one broker, without restarts; stopped after the test. */
async function startOneBroker() {
  const t = setup(false);
  const port = await freePortRange(2);
  const dataDir = path.join(t.dir, 'data');
  const cluster = new DevCluster({ brokers: 1, dataDir, port, restartOnExit: false, coordinatorEntry: t.entry, brokerEntry: t.entry, stdout: t.stdout, stderr: t.stderr });
  const run = cluster.run();
  cleanups.push(async () => {
    await cluster.shutdown();
    await run.catch(() => undefined);
    fs.rmSync(t.dir, { recursive: true, force: true });
  });
  await waitFor(() => t.out().includes('broker-1'), 'the addresses');
  return { t, dataDir, cluster, run };
}

describe('DevCluster', () => {
  it('starts, records PIDs, restarts a killed broker, and stops everything', async () => {
    const t = setup(true);
    const port = await freePortRange(3);
    const dataDir = path.join(t.dir, 'data');
    const cluster = new DevCluster({
      brokers: 2,
      dataDir,
      port,
      restartOnExit: true,
      coordinatorEntry: t.entry,
      brokerEntry: t.entry,
      stdout: t.stdout,
      stderr: t.stderr,
    });
    const run = cluster.run();
    cleanups.push(async () => {
      await cluster.shutdown();
      await run.catch(() => undefined);
      fs.rmSync(t.dir, { recursive: true, force: true });
    });

    await waitFor(() => t.out().includes('broker-2'), 'the addresses');
    expect(t.out()).toContain(`coordinator  http://127.0.0.1:${port}`);
    expect(t.out()).toContain(`broker-1     http://127.0.0.1:${port + 1}`);
    expect(t.err()).toContain('[broker-1] {"msg":"listening"');
    expect(t.err()).toContain(`"--coordinator","http://127.0.0.1:${port}"`);

    const state = readDevState(dataDir)!;
    expect(state.processes.map((p) => [p.id, p.role, p.port])).toEqual([
      ['coordinator', 'coordinator', port],
      [1, 'broker', port + 1],
      [2, 'broker', port + 2],
    ]);
    const pids = state.processes.map((p) => p.pid!);
    expect(pids.every(isAlive)).toBe(true);

    // The admin credentials the CLI finds: readable by their owner only, naming this coordinator.
    const credentialsFile = path.join(dataDir, 'credentials.json');
    expect(fs.statSync(credentialsFile).mode & 0o777).toBe(0o600);
    const credentials = JSON.parse(fs.readFileSync(credentialsFile, 'utf8'));
    expect(credentials).toMatchObject({ coordinator: `http://127.0.0.1:${port}`, principal: 'admin' });
    expect(t.err()).not.toContain(credentials.secret);

    // SIGKILL broker 2: reported, restarted with a new PID, dev.json updated.
    process.kill(pids[2]!, 'SIGKILL');
    await waitFor(() => t.err().includes('broker-2 is back'), 'the restart');
    expect(t.err()).toContain(`broker-2 (pid ${pids[2]}) was killed by SIGKILL`);
    const restarted = readDevState(dataDir)!.processes[2]!;
    expect(restarted.pid).not.toBe(pids[2]);
    expect(restarted.restarts).toBe(1);

    await cluster.shutdown('SIGTERM');
    expect(await run).toBe(0);
    for (const pid of [...pids.slice(0, 2), restarted.pid!]) expect(isAlive(pid)).toBe(false);
    expect(readDevState(dataDir)).toBeUndefined();
  });

  it('keeps the others serving when a process dies without --restart-on-exit', async () => {
    const { t, dataDir, cluster, run } = await startOneBroker();
    const [coordinator, broker] = readDevState(dataDir)!.processes;
    process.kill(broker!.pid!, 'SIGKILL');
    await waitFor(() => t.err().includes('keep serving'), 'the report');
    expect(readDevState(dataDir)!.processes[1]!.pid).toBeNull();
    expect(isAlive(coordinator!.pid!)).toBe(true);
    await cluster.shutdown('SIGTERM');
    expect(await run).toBe(0);
    expect(isAlive(coordinator!.pid!)).toBe(false);
  });

  it('stops cleanly with exit 0 when one Ctrl-C arrives twice at once (terminal and pnpm)', async () => {
    const { t, dataDir, cluster, run } = await startOneBroker();
    const pids = readDevState(dataDir)!.processes.map((p) => p.pid!);
    const first = cluster.shutdown('SIGINT');
    const second = cluster.shutdown('SIGINT');
    await Promise.all([first, second]);
    expect(await run).toBe(0);
    expect(t.err()).not.toContain('again: killing');
    // Each fake service stopped on its SIGTERM (it prints "stopping"), none was killed.
    expect(t.err().match(/\] stopping/g)?.length).toBe(2);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
  });

  it('refuses a port that is taken, naming it', async () => {
    const t = setup(false);
    const blocker = net.createServer();
    const port = await new Promise<number>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve((blocker.address() as net.AddressInfo).port)));
    cleanups.push(() => {
      blocker.close();
      fs.rmSync(t.dir, { recursive: true, force: true });
    });
    const cluster = new DevCluster({ brokers: 1, dataDir: path.join(t.dir, 'data'), port, restartOnExit: false, coordinatorEntry: t.entry, brokerEntry: t.entry, stdout: t.stdout, stderr: t.stderr });
    await expect(cluster.run()).rejects.toThrow(`port ${port} on 127.0.0.1 is already in use`);
  });
});

describe('DevCluster after its supervisor was killed', () => {
  it('stops the processes the previous run left behind, then starts', async () => {
    const t = setup(false);
    const port = await freePortRange(2);
    const dataDir = path.join(t.dir, 'data');
    const first = new DevCluster({ brokers: 1, dataDir, port, restartOnExit: false, coordinatorEntry: t.entry, brokerEntry: t.entry, stdout: t.stdout, stderr: t.stderr });
    const firstRun = first.run();
    await waitFor(() => t.out().includes('broker-1'), 'the first cluster');
    const orphans = readDevState(dataDir)!.processes.map((p) => p.pid!);
    // Pretend the supervisor died without cleaning up: dev.json names a dead supervisor, children alive.
    const state = readDevState(dataDir)!;
    fs.writeFileSync(path.join(dataDir, 'dev.json'), JSON.stringify({ ...state, pid: 2 ** 22 + 12345 }));
    const second = new DevCluster({ brokers: 1, dataDir, port, restartOnExit: false, coordinatorEntry: t.entry, brokerEntry: t.entry, stdout: t.stdout, stderr: t.stderr });
    const secondRun = second.run();
    cleanups.push(async () => {
      await second.shutdown();
      await first.shutdown();
      await Promise.allSettled([firstRun, secondRun]);
      fs.rmSync(t.dir, { recursive: true, force: true });
    });
    await waitFor(() => t.err().includes('left running by a previous tessera dev'), 'the takeover');
    await waitFor(() => readDevState(dataDir)?.pid === process.pid && readDevState(dataDir)!.processes.every((p) => p.ready), 'the second cluster');
    for (const pid of orphans) expect(isAlive(pid)).toBe(false);
  });
});

describe('childEnv', () => {
  it('drops per-process settings and keeps cluster-wide ones', async () => {
    const { childEnv } = await import('./child.js');
    const env = childEnv({ TESSERA_ADVERTISED_URL: 'http://x', TESSERA_PORT: '1', TESSERA_LOG_LEVEL: 'debug', PATH: '/bin' });
    expect(env).toEqual({ TESSERA_LOG_LEVEL: 'debug', PATH: '/bin', TESSERA_LOG_PRETTY: '1' });
  });
});
