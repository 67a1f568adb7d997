// onShutdown in a real child process: the end of its standard input stops it when (and only when)
// asked to, and does not count as a second signal for a service already stopping.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const shutdownModule = fileURLToPath(new URL('../dist/shutdown.js', import.meta.url));

/** A child that runs onShutdown with a stop taking `stopMs`, and says on stdout what happens. */
function child(options: { stopOnStdinEnd: boolean; stopMs: number }) {
  const script = `
    const { onShutdown } = await import(${JSON.stringify(shutdownModule)});
    const logger = { info: (fields, msg) => console.log(msg + ' ' + fields.signal), error: () => {} };
    onShutdown(logger, () => new Promise((resolve) => setTimeout(() => { console.log('stopped'); resolve(); }, ${options.stopMs})), { stopOnStdinEnd: ${options.stopOnStdinEnd} });
    setInterval(() => {}, 1000);
    console.log('running');
  `;
  const proc = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = once(proc, 'exit').then(([code]) => code as number | null);
  const said = async (text: string) => {
    while (!out.includes(text)) await new Promise((resolve) => setTimeout(resolve, 10));
  };
  return { proc, exited, said, out: () => out };
}

describe('onShutdown', () => {
  it('stops cleanly when standard input ends, with stopOnStdinEnd', async () => {
    const running = child({ stopOnStdinEnd: true, stopMs: 10 });
    await running.said('running');
    running.proc.stdin.end();
    expect(await running.exited).toBe(0);
    expect(running.out()).toContain('stopping end of standard input');
    expect(running.out()).toContain('stopped');
  });

  it('finishes a stop begun by SIGTERM when standard input ends meanwhile (not a second signal)', async () => {
    const running = child({ stopOnStdinEnd: true, stopMs: 300 });
    await running.said('running');
    running.proc.kill('SIGTERM');
    await running.said('stopping SIGTERM');
    running.proc.stdin.end();
    expect(await running.exited).toBe(0);
    expect(running.out()).toContain('stopped');
  });

  it('keeps running when standard input ends without stopOnStdinEnd', async () => {
    const running = child({ stopOnStdinEnd: false, stopMs: 10 });
    await running.said('running');
    running.proc.stdin.end();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(running.proc.exitCode).toBeNull();
    running.proc.kill('SIGTERM');
    expect(await running.exited).toBe(0);
    expect(running.out()).toContain('stopping SIGTERM');
  });
});
