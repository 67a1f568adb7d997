// Proves the program's contract with the shell: usage errors are one `tessera:` line with
// exit 2, and `topics describe --json` has the documented shape (a primary that does not
// answer for its log starts leaves them out and nothing else).
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { main } from './program.js';

async function run(args: string[], client?: unknown): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const io = {
    stdin: Readable.from([]) as unknown as NodeJS.ReadStream,
    stdout: stdout as unknown as NodeJS.WriteStream,
    stderr: stderr as unknown as NodeJS.WriteStream,
  };
  const code = await main(['node', 'tessera', ...args], io, client === undefined ? undefined : () => client as never);
  return { code, stdout: out, stderr: err };
}

describe('usage errors', () => {
  it.each([
    [['topics', 'create', 'x', '--partitions', 'abc'], "tessera: option '-p, --partitions <n>' argument 'abc' is invalid. expected an integer from 1 to 1024."],
    [['topics', 'create', 'x', '--partitions', '0'], "tessera: option '-p, --partitions <n>' argument '0' is invalid. expected an integer from 1 to 1024."],
    [['topics', 'create', 'x'], "tessera: required option '-p, --partitions <n>' not specified"],
    [['consume', 't'], 'tessera: give --group GROUP (read as a group member, committing) or --partition/--offset (read without a group)'],
    [['consume', 't', '-g', 'g', '--offset', '5'], 'tessera: --partition, --offset and --exit-at-end read without a group: leave out --group'],
    [['consume', 't', '--offset', 'first'], "tessera: option '-o, --offset <position>' argument 'first' is invalid. expected an offset N, earliest, latest, -N (N before the end) or @TIME (epoch ms or ISO time)."],
    [['produce', 't', '--key', 'k', '--key-separator', ':'], "tessera: option '-k, --key <key>' cannot be used with option '-K, --key-separator <sep>'"],
    [['groups', 'reset-offsets', 'g', '-t', 't', '--to-earliest', '--dry-run', '--execute'], 'tessera: give exactly one of --dry-run (show the new offsets) and --execute (store them)'],
    [['groups', 'reset-offsets', 'g', '-t', 't', '--to-earliest'], 'tessera: give exactly one of --dry-run (show the new offsets) and --execute (store them)'],
    [['frobnicate'], "tessera: unknown command 'frobnicate'"],
    [['--coordinator', 'nope', 'topics', 'list'], "tessera: option '--coordinator <url>' argument 'nope' is invalid. expected a URL like http://127.0.0.1:7070."],
    [['bench', 'floor', '--dir', '/nonexistent/tessera'], 'tessera: --dir /nonexistent/tessera: no such directory'],
    [['bench', 'produce', '-t', 't', '--warmup', '-3'], "tessera: option '--warmup <n>' argument '-3' is invalid. expected an integer from 0 to 100000000."],
    [['bench', 'e2e', '-t', 't', '--commit-interval-ms', '-1'], "tessera: option '--commit-interval-ms <ms>' argument '-1' is invalid. expected an integer from 0 to 60000."],
    [['bench', 'produce', '-t', 't', '--commit-interval-ms', '5'], "tessera: unknown option '--commit-interval-ms'"],
    [['bench', 'floor', '--rounds', '5'], "tessera: option '-n, --rounds <n>' argument '5' is invalid. expected an integer from 10 to 1000000."],
    [['bench', 'targets', '--floor-dir', '/nonexistent/tessera'], 'tessera: --floor-dir /nonexistent/tessera: no such directory'],
    [['bench', 'targets', '--scale', '0'], "tessera: option '--scale <fraction>' argument '0' is invalid. expected a number above 0 and at most 10."],
    [['bench', 'targets', '--scale', '1e3'], "tessera: option '--scale <fraction>' argument '1e3' is invalid. expected a number above 0 and at most 10."],
    [['bench', 'targets', '--topic-prefix', 'a b'], 'tessera: --topic-prefix "a b": topic names take letters, digits, \'.\', \'_\' and \'-\', at most 200 characters'],
    [['dev', '--port', '70000'], "tessera: option '-p, --port <port>' argument '70000' is invalid. expected an integer from 1 to 65535."],
  ])('%j → one line, exit 2', async (args, line) => {
    const result = await run(args);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(line + '\n');
    expect(result.stdout).toBe('');
  });

  it('joins a suggestion onto the same line', async () => {
    const result = await run(['topics', 'list', '--jsn']);
    expect(result.stderr).toBe("tessera: unknown option '--jsn' (Did you mean --json?)\n");
  });
});

describe('topics describe --json', () => {
  const describeTopic = vi.fn(async () => ({
    name: 't',
    replicationFactor: 2,
    config: { minInsyncReplicas: 1 },
    partitions: [
      { partition: 0, primary: 1, secondary: 2, epoch: 3, isr: [1, 2], status: 'online', highWatermark: 7, logEndOffset: 7 },
      { partition: 1, primary: 2, secondary: 1, epoch: 0, isr: [2, 1], status: 'online', highWatermark: 9, logEndOffset: 9 },
      { partition: 2, primary: null, secondary: 1, epoch: 1, isr: [], status: 'offline', highWatermark: null, logEndOffset: null },
    ],
  }));

  it('prints name and per-partition primary, secondary, epoch, isr, logStartOffset (asked of each primary), highWatermark', async () => {
    // Broker 2 answers; broker 1 fails: its partition has no log start, and the rest still prints.
    const listOffsets = vi.fn(async (_topic: string, _at: unknown, partitions: number[]) => {
      if (partitions.includes(0)) throw new Error('broker 1 unreachable');
      return partitions.map((partition) => ({ partition, offset: 4, timestamp: null, logStartOffset: 4, highWatermark: 9 }));
    });
    const result = await run(['topics', 'describe', 't', '--json'], { admin: { describeTopic, listOffsets }, close: async () => undefined });
    expect(result.code).toBe(0);
    expect(describeTopic).toHaveBeenCalledWith('t');
    expect(listOffsets.mock.calls.map((call) => call.slice(1))).toEqual(expect.arrayContaining([['earliest', [0]], ['earliest', [1]]]));
    expect(listOffsets).toHaveBeenCalledTimes(2); // once per primary, none for the offline partition
    const body = JSON.parse(result.stdout);
    expect(body.name).toBe('t');
    expect(body.partitions).toEqual([
      { partition: 0, primary: 1, secondary: 2, epoch: 3, isr: [1, 2], logStartOffset: null, highWatermark: 7, logEndOffset: 7, status: 'online' },
      { partition: 1, primary: 2, secondary: 1, epoch: 0, isr: [2, 1], logStartOffset: 4, highWatermark: 9, logEndOffset: 9, status: 'online' },
      { partition: 2, primary: null, secondary: 1, epoch: 1, isr: [], logStartOffset: null, highWatermark: null, logEndOffset: null, status: 'offline' },
    ]);
  });
});

describe('topics describe without an answer for the log starts', () => {
  it('prints the rest after waiting 3 s for a primary that never answers', async () => {
    const describeTopic = async () => ({
      name: 't',
      replicationFactor: 2,
      config: { minInsyncReplicas: 1, retentionMs: -1, retentionBytes: -1 },
      partitions: [{ partition: 0, primary: 1, secondary: 2, epoch: 0, isr: [1, 2], status: 'online', highWatermark: 5, logEndOffset: 5 }],
    });
    const listOffsets = () => new Promise<never>(() => undefined);
    // Never answered: the command still ends (within the test's timeout) and prints the rest.
    const result = await run(['topics', 'describe', 't'], { admin: { describeTopic, listOffsets }, close: async () => undefined });
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.split('\n');
    const header = lines.findIndex((line) => line.startsWith('PARTITION'));
    expect(lines[header]).toMatch(/ISR\s+START\s+HW\s+LEO\s+STATUS/);
    expect(lines[header + 1].trim().split(/\s+/)).toEqual(['0', '1', '2', '0', '1,2', '-', '5', '5', 'online']);
  });
});

describe('failures from the cluster', () => {
  it('a missing topic is one line naming it, exit 1', async () => {
    const { TesseraError } = await import('@tessera/protocol');
    const describeTopic = async () => {
      throw new TesseraError('TOPIC_NOT_FOUND', 'topic x does not exist');
    };
    const result = await run(['topics', 'describe', 'x'], { admin: { describeTopic }, close: async () => undefined });
    expect(result).toEqual({ code: 1, stdout: '', stderr: 'tessera: topic "x" not found\n' });
  });
});
