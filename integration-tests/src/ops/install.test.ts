// Proves the client library and the CLI install as a user outside the repository installs them:
// `pnpm pack:release` writes their tarballs, npm installs the client into an empty project and the
// CLI globally under a temporary prefix (both offline: the tarballs bundle what they need), the
// installed `tessera` starts a dev cluster from the PATH, and the README's client example runs
// against it as plain ESM JavaScript (twice: the topic exists the second time) and type-checks
// as TypeScript (strict, library types checked too).
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../harness/cluster.js';
import { freePortRange } from '@tessera/protocol/test-support/ports';
import { repoRoot } from './dashboards.js';

const npmFound = spawnSync('npm', ['--version']).status === 0;
const tarFound = spawnSync('tar', ['--version'], { encoding: 'utf8' }).stdout?.includes('GNU tar') === true;
if (!npmFound || !tarFound) console.warn(`skipping the install test: it needs npm and GNU tar (npm: ${npmFound}, GNU tar: ${tarFound})`);

const work = mkdtempSync(path.join(os.tmpdir(), 'tessera-install-'));
const project = path.join(work, 'project');
const prefix = path.join(work, 'global');
const binDir = path.join(prefix, 'bin');
/** The user's environment: the global prefix's bin first on the PATH, npm kept offline and quiet. */
const env = {
  ...process.env,
  PATH: `${binDir}${path.delimiter}${process.env.PATH}`,
  npm_config_offline: 'true',
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
};
let dev: ChildProcess | undefined;
let devLog = '';

/** The README's client library example: the first ```js block after its heading. */
function readmeExample(): string {
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## The client library'));
  const match = /```js\n([\s\S]*?)```/.exec(section);
  if (!match) throw new Error('README.md has no ```js block under "## The client library"');
  return match[1];
}

describe.skipIf(!npmFound || !tarFound)('the packed client and CLI, installed with npm outside the workspace', () => {
  beforeAll(async () => {
    const packed = execFileSync(process.execPath, [path.join(repoRoot, 'scripts/pack-release.mjs'), path.join(work, 'packages')], {
      cwd: repoRoot,
      encoding: 'utf8',
    });
    const [clientTarball, cliTarball] = packed.trim().split('\n');
    expect(path.basename(clientTarball)).toMatch(/^tessera-client-\d+\.\d+\.\d+\.tgz$/);
    expect(path.basename(cliTarball)).toMatch(/^tessera-cli-\d+\.\d+\.\d+\.tgz$/);

    mkdirSync(project);
    writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'example', version: '1.0.0', private: true, type: 'module' }));
    execFileSync('npm', ['install', clientTarball], { cwd: project, env, stdio: ['ignore', 'ignore', 'pipe'] });
    mkdirSync(prefix);
    execFileSync('npm', ['install', '--global', '--prefix', prefix, cliTarball], { cwd: work, env, stdio: ['ignore', 'ignore', 'pipe'] });

    // `tessera dev` from the PATH, in a directory that is not the repository.
    const port = await freePortRange(4); // the coordinator and three brokers
    dev = spawn('tessera', ['dev', '--data-dir', path.join(work, 'dev'), '--port', String(port)], {
      cwd: work,
      env: { ...env, TESSERA_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    dev.stdout!.on('data', (chunk: Buffer) => (devLog += chunk.toString()));
    dev.stderr!.on('data', (chunk: Buffer) => (devLog = (devLog + chunk.toString()).slice(-20_000)));
    await waitFor(() => devLog.includes('broker-3'), { timeoutMs: 60_000, what: `tessera dev to start:\n${devLog}` });
  }, 300_000);

  afterAll(async () => {
    if (dev && dev.exitCode === null && dev.signalCode === null) {
      const exited = new Promise((resolve) => dev!.once('exit', resolve));
      dev.kill('SIGINT');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 15_000))]);
      if (dev.exitCode === null) dev.kill('SIGKILL');
    }
    rmSync(work, { recursive: true, force: true });
  });

  it('puts `tessera` on the PATH', () => {
    expect(existsSync(path.join(binDir, 'tessera'))).toBe(true);
    const help = spawnSync('tessera', ['--help'], { cwd: work, env, encoding: 'utf8' });
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toContain('Usage: tessera');
  });

  it('installs the client with every dependency declared and bundled', () => {
    const manifest = JSON.parse(readFileSync(path.join(project, 'node_modules/@tessera/client/package.json'), 'utf8'));
    expect(manifest.private).toBeUndefined();
    expect(manifest.bundleDependencies).toEqual(Object.keys(manifest.dependencies));
    for (const [name, spec] of Object.entries(manifest.dependencies as Record<string, string>)) {
      expect(spec, name).not.toMatch(/^workspace:/);
      expect(existsSync(path.join(project, 'node_modules/@tessera/client/node_modules', name, 'package.json')), name).toBe(true);
    }
  });

  it('runs the README example as plain ESM JavaScript, twice (the topic exists the second time)', () => {
    writeFileSync(path.join(project, 'example.mjs'), readmeExample());
    for (const run of [1, 2]) {
      const result = spawnSync(process.execPath, ['example.mjs'], {
        cwd: project,
        // As from the directory where `tessera dev` keeps its data: the client finds the dev
        // cluster's URL, CA and admin credentials there (TESSERA_DEV_DIR points elsewhere here).
        env: { ...env, TESSERA_DEV_DIR: path.join(work, 'dev') },
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(result.status, `run ${run}: ${result.stderr}`).toBe(0);
      // It prints the record it sent (key and value), after whatever the group had not read yet.
      const lines = result.stdout.trim().split('\n');
      expect(lines.at(-1), `run ${run}`).toMatch(/^\d+ \d+ alice first order$/);
    }
    const described = spawnSync('tessera', ['topics', 'describe', 'orders', '--json'], { cwd: work, env: { ...env, TESSERA_DEV_DIR: path.join(work, 'dev') }, encoding: 'utf8' });
    expect(described.status, described.stderr).toBe(0);
    expect(JSON.parse(described.stdout).partitions).toHaveLength(6);
  });

  it('type-checks the README example as TypeScript against the installed types', () => {
    writeFileSync(path.join(project, 'example.ts'), readmeExample());
    writeFileSync(
      path.join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] },
        files: ['example.ts'],
      }),
    );
    // What `npm install -D @types/node` gives a user: the repository's copy stands in for the registry.
    mkdirSync(path.join(project, 'node_modules/@types'), { recursive: true });
    symlinkSync(path.join(repoRoot, 'node_modules/@types/node'), path.join(project, 'node_modules/@types/node'), 'dir');
    const tsc = path.join(repoRoot, 'node_modules/typescript/bin/tsc');
    const result = spawnSync(process.execPath, [tsc, '-p', project], { cwd: project, encoding: 'utf8' });
    expect(result.status, result.stdout + result.stderr).toBe(0);
  });
});
