// Proves consume prints JSON lines, commits exactly what it printed, honours --max-messages
// and the idle timeout, and commits nothing more once the reader closed the pipe.
import { PassThrough, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { fakeAdmin, fakeRuntime } from '../test-support.js';
import { runConsume } from './run.js';

function record(offset: number) {
  return { topic: 't', partition: 0, offset, key: Buffer.from(`k${offset}`), value: Buffer.from(`v${offset}`), headers: {}, timestamp: 1 };
}

function fakeConsumer(batches: Array<ReturnType<typeof record>[]>) {
  const committed: number[][] = [];
  let closed = false;
  const consumer = {
    poll: async () => {
      const next = batches.shift();
      if (next === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
      return next ?? [];
    },
    commit: async (records: Array<{ offset: number }>) => void committed.push(records.map((r) => r.offset)),
    assignment: () => [0],
    close: async () => void (closed = true),
  };
  return { consumer, committed, closed: () => closed };
}

describe('runConsume', () => {
  it('prints and commits every record, then stops after the idle timeout', async () => {
    const fake = fakeConsumer([[record(0), record(1)], [record(2)]]);
    const io = fakeRuntime({ admin: fakeAdmin(['t']), consumer: () => fake.consumer });
    const printed = await runConsume(io.runtime, 't', { group: 'g', idleTimeoutMs: 50 });
    expect(printed).toBe(3);
    expect(io.stdout().trim().split('\n').map((line) => JSON.parse(line).offset)).toEqual([0, 1, 2]);
    expect(fake.committed).toEqual([[0, 1], [2]]);
    expect(fake.closed()).toBe(true);
    expect(io.stderr()).toContain('consumed 3 records from "t" as group "g"');
  });

  it('stops at --max-messages and commits only what it printed', async () => {
    const fake = fakeConsumer([[record(0), record(1), record(2)]]);
    const io = fakeRuntime({ admin: fakeAdmin(['t']), consumer: () => fake.consumer });
    expect(await runConsume(io.runtime, 't', { group: 'g', maxMessages: 2 })).toBe(2);
    expect(fake.committed).toEqual([[0, 1]]);
  });

  it('commits nothing it could not print when the reader went away', async () => {
    const fake = fakeConsumer([[record(0)]]);
    const closedPipe = new Writable({
      write(_chunk, _encoding, callback) {
        callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    closedPipe.on('error', () => undefined);
    const io = fakeRuntime({ admin: fakeAdmin(['t']), consumer: () => fake.consumer }, '', closedPipe as unknown as PassThrough);
    expect(await runConsume(io.runtime, 't', { group: 'g', idleTimeoutMs: 50 })).toBe(0);
    expect(fake.committed).toEqual([]);
    expect(fake.closed()).toBe(true);
  });

  it('on Ctrl-C commits what it printed, leaves the group and fails with exit code 130', async () => {
    const fake = fakeConsumer([[record(0)]]);
    const io = fakeRuntime({ admin: fakeAdmin(['t']), consumer: () => fake.consumer });
    const running = runConsume(io.runtime, 't', { group: 'g' });
    while (fake.committed.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    process.emit('SIGINT', 'SIGINT');
    await expect(running).rejects.toMatchObject({ exitCode: 130 });
    expect(fake.committed).toEqual([[0]]);
    expect(fake.closed()).toBe(true);
    expect(io.stderr()).toContain('consumed 1 record from "t"');
  });
});
