// Proves the progress line rewrites itself in place only on a terminal outside CI: redirected
// output and CI logs get plain lines without control codes.
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { Progress, isCi } from './progress.js';

const savedCi = process.env.CI;
afterEach(() => {
  if (savedCi === undefined) delete process.env.CI;
  else process.env.CI = savedCi;
});

async function drawOnce(tty: boolean): Promise<string> {
  const stream = Object.assign(new PassThrough(), { isTTY: tty }) as unknown as NodeJS.WriteStream;
  let text = '';
  (stream as unknown as PassThrough).on('data', (chunk: Buffer) => (text += chunk.toString()));
  const progress = new Progress({ stream, intervalMs: 5, render: () => 'sent 10/20' });
  await new Promise((resolve) => setTimeout(resolve, 30));
  progress.stop();
  return text;
}

describe('Progress', () => {
  it('rewrites the line in place on a terminal', async () => {
    delete process.env.CI;
    expect(await drawOnce(true)).toContain('\r\x1b[Ksent 10/20');
  });

  it('writes plain lines without control codes when redirected or with CI=true', async () => {
    delete process.env.CI;
    const redirected = await drawOnce(false);
    process.env.CI = 'true';
    const ci = await drawOnce(true);
    for (const text of [redirected, ci]) {
      expect(text).toContain('sent 10/20\n');
      expect(text).not.toContain('\x1b');
    }
  });

  it('reads CI the way CI services set it', () => {
    expect(isCi({ CI: 'true' })).toBe(true);
    expect(isCi({ CI: '1' })).toBe(true);
    expect(isCi({ CI: 'false' })).toBe(false);
    expect(isCi({})).toBe(false);
  });
});
