#!/usr/bin/env node
// Packs the client library and the CLI into tarballs that install with plain npm, without the
// workspace: `node scripts/pack-release.mjs [OUT_DIR]` (default `dist-packages/`) writes
//   tessera-client-VERSION.tgz  `npm install ./tessera-client-VERSION.tgz`
//   tessera-cli-VERSION.tgz     `npm install -g ./tessera-cli-VERSION.tgz` (puts `tessera` on the PATH)
//
// The workspace packages they need (@tessera/protocol, and for the CLI the coordinator, the
// broker and their service layer, for `tessera dev`) are not published on their own, so each
// tarball bundles its whole production dependency tree (npm `bundleDependencies`): it installs
// with no registry at all. The client's tree is plain JavaScript and installs anywhere Node 20
// runs; the CLI's includes the SQLite driver compiled on the machine that packed it, so pack the
// CLI on the platform (OS, CPU, Node major version) it is meant for.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(fileURLToPath(new URL('..', import.meta.url)));
const outDir = path.resolve(process.argv[2] ?? path.join(root, 'dist-packages'));
const PACKAGES = [
  { name: '@tessera/client', tarball: 'tessera-client' },
  { name: '@tessera/cli', tarball: 'tessera-cli' },
];

const versions = new Map(
  readdirSync(path.join(root, 'packages')).map((dir) => {
    const manifest = JSON.parse(readFileSync(path.join(root, 'packages', dir, 'package.json'), 'utf8'));
    return [manifest.name, manifest.version];
  }),
);

/** `workspace:*` means "this repository's version": written out, since npm does not know the protocol. */
function pinWorkspaceVersions(manifestFile) {
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
  for (const field of ['dependencies', 'optionalDependencies', 'peerDependencies']) {
    for (const [dep, spec] of Object.entries(manifest[field] ?? {})) {
      if (!String(spec).startsWith('workspace:')) continue;
      const version = versions.get(dep);
      if (!version) throw new Error(`${manifest.name}: no workspace package ${dep}`);
      manifest[field][dep] = version;
    }
  }
  delete manifest.devDependencies;
  delete manifest.scripts;
  return manifest;
}

/**
 * Rewrites a JSON file of the staged copy. Deploy hard-links files to the workspace and the
 * package store: the old file is unlinked first so the original is never written to.
 */
function rewrite(file, change) {
  const next = change(file);
  rmSync(file);
  writeFileSync(file, `${JSON.stringify(next, null, 2)}\n`);
}

function run(command, args, cwd) {
  execFileSync(command, args, { cwd, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, npm_config_update_notifier: 'false' } });
}

// The pnpm running this script (`pnpm pack:release`), else the one the README's commands use.
// `deploy --prefer-offline` takes every package from the store the install filled; it asks the
// registry only for package metadata the store's cache lacks (a machine whose install read
// everything from the lockfile has none), which `--offline` would refuse to resolve.
const execPath = process.env.npm_execpath ?? '';
const pnpm = /pnpm/.test(path.basename(execPath)) ? [process.execPath, execPath] : ['npx', '-y', 'pnpm@10'];

mkdirSync(outDir, { recursive: true });
const work = mkdtempSync(path.join(os.tmpdir(), 'tessera-pack-'));
try {
  for (const pkg of PACKAGES) {
    const stage = path.join(work, pkg.tarball);
    process.stderr.write(`pack-release: ${pkg.name}: collecting its production dependencies\n`);
    // A hoisted node_modules holds real directories, which is what npm bundles.
    run(pnpm[0], [...pnpm.slice(1), '--filter', pkg.name, 'deploy', '--prefer-offline', '--prod', '--legacy', '--config.node-linker=hoisted', stage], root);
    rmSync(path.join(stage, 'node_modules', '.pnpm'), { recursive: true, force: true });
    rmSync(path.join(stage, 'node_modules', '.modules.yaml'), { force: true });
    // Bundled workspace packages carry `workspace:*` specs too; npm reads them when it installs.
    for (const scope of ['@tessera']) {
      const dir = path.join(stage, 'node_modules', scope);
      if (!existsSync(dir)) continue;
      for (const name of readdirSync(dir)) rewrite(path.join(dir, name, 'package.json'), pinWorkspaceVersions);
    }
    // The SQLite driver's sources and compiler output: only the compiled module is loaded.
    const sqlite = path.join(stage, 'node_modules', 'better-sqlite3');
    if (existsSync(sqlite)) {
      const compiled = readFileSync(path.join(sqlite, 'build', 'Release', 'better_sqlite3.node'));
      for (const leftover of ['build', 'deps', 'src', 'binding.gyp']) rmSync(path.join(sqlite, leftover), { recursive: true, force: true });
      mkdirSync(path.join(sqlite, 'build', 'Release'), { recursive: true });
      writeFileSync(path.join(sqlite, 'build', 'Release', 'better_sqlite3.node'), compiled);
      // Already compiled: npm would run its install script (or node-gyp, for a binding.gyp) again.
      rewrite(path.join(sqlite, 'package.json'), (file) => {
        const manifest = JSON.parse(readFileSync(file, 'utf8'));
        delete manifest.scripts;
        manifest.gypfile = false;
        return manifest;
      });
    }
    rewrite(path.join(stage, 'package.json'), (file) => {
      const manifest = pinWorkspaceVersions(file);
      delete manifest.private;
      manifest.bundleDependencies = Object.keys(manifest.dependencies ?? {});
      manifest.engines = { node: '>=20' };
      if (pkg.name === '@tessera/client') {
        // Its types use Node's (the consumer is an EventEmitter): TypeScript users have @types/node.
        manifest.peerDependencies = { '@types/node': '>=20' };
        manifest.peerDependenciesMeta = { '@types/node': { optional: true } };
      }
      return manifest;
    });
    const { version } = JSON.parse(readFileSync(path.join(stage, 'package.json'), 'utf8'));
    // The npm tarball layout (everything under `package/`), written with GNU tar: `npm pack` of
    // a package with bundled dependencies fails with npm 11 ("Exit handler never called"). Files
    // hard-linked to each other (the package store deduplicates) go in as copies: npm skips
    // hard-link entries when it unpacks.
    const tarball = path.join(outDir, `${pkg.tarball}-${version}.tgz`);
    const packageDir = path.join(work, `${pkg.tarball}-package`, 'package');
    mkdirSync(path.dirname(packageDir), { recursive: true });
    renameSync(stage, packageDir);
    process.stderr.write(`pack-release: ${pkg.name}: writing ${path.relative(process.cwd(), tarball)}\n`);
    run('tar', ['-czf', tarball, '--hard-dereference', '--owner=0', '--group=0', '-C', path.dirname(packageDir), 'package'], root);
    process.stdout.write(`${tarball}\n`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
