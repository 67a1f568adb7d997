/** Runs the built `tessera` CLI as a child process, as a user's shell would. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Cluster } from './cluster.js';
import { ENTRY_POINTS } from './process.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `tessera ...args` with `input` on stdin and `env` over this process's environment; resolves when it exits. */
export function runCli(args: string[], options: { input?: string | Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ENTRY_POINTS.cli, ...args], { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

/** `tessera ...args` against `cluster` as its bootstrap admin. */
export function runCliAsAdmin(cluster: Cluster, args: string[]): Promise<CliResult> {
  return runCli(args, {
    env: {
      TESSERA_COORDINATOR: cluster.coordinatorUrl,
      TESSERA_PRINCIPAL: cluster.admin?.principal ?? '',
      TESSERA_SECRET: cluster.admin?.secret ?? '',
    },
  });
}
