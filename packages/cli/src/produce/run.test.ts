// Proves produce sends one record per line with the key rule, succeeds only when every line
// is acknowledged, and stops with one line naming the first failure.
import { TesseraError } from '@tessera/protocol';
import { describe, expect, it } from 'vitest';
import { CliError } from '../errors.js';
import { fakeAdmin, fakeRuntime } from '../test-support.js';
import { runProduce } from './run.js';

function fakeProducer(fail?: (value: string) => boolean) {
  const sent: Array<Record<string, unknown>> = [];
  let maxOutstanding = 0;
  let outstanding = 0;
  const producer = {
    send: (record: Record<string, unknown>) => {
      sent.push(record);
      outstanding++;
      maxOutstanding = Math.max(maxOutstanding, outstanding);
      return new Promise((resolve, reject) =>
        setImmediate(() => {
          outstanding--;
          if (fail?.(String(record.value))) reject(new TesseraError('PAYLOAD_TOO_LARGE', 'record value too large'));
          else resolve({ topic: record.topic, partition: 0, offset: sent.length });
        }),
      );
    },
    flush: async () => undefined,
    close: async () => undefined,
  };
  return { producer, sent, maxOutstanding: () => maxOutstanding };
}

describe('runProduce', () => {
  it('sends every line with its key and reports the count on stderr', async () => {
    const fake = fakeProducer();
    const io = fakeRuntime({ admin: fakeAdmin(['t']), producer: () => fake.producer }, 'a:1\nb:2\nno-key\n');
    const summary = await runProduce(io.runtime, 't', { keySeparator: ':' });
    expect(summary).toMatchObject({ read: 3, acknowledged: 3, failed: 0 });
    expect(fake.sent).toEqual([
      { topic: 't', key: 'a', value: '1' },
      { topic: 't', key: 'b', value: '2' },
      { topic: 't', value: 'no-key' },
    ]);
    expect(io.stderr()).toMatch(/^produced 3 records to "t" in /);
    expect(io.stdout()).toBe('');
  });

  it('keeps at most maxInFlight records unacknowledged', async () => {
    const fake = fakeProducer();
    const lines = Array.from({ length: 500 }, (_, i) => `v${i}`).join('\n');
    const io = fakeRuntime({ admin: fakeAdmin(['t']), producer: () => fake.producer }, lines);
    await runProduce(io.runtime, 't', { maxInFlight: 16 });
    expect(fake.sent).toHaveLength(500);
    expect(fake.maxOutstanding()).toBeLessThanOrEqual(16);
  });

  it('fails with one line when a record is refused', async () => {
    const fake = fakeProducer((value) => value === 'bad');
    const io = fakeRuntime({ admin: fakeAdmin(['t']), producer: () => fake.producer }, 'ok\nbad\nok\n');
    const error = await runProduce(io.runtime, 't', { maxInFlight: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CliError);
    expect((error as CliError).message).toBe('record value too large (1 record acknowledged, 1 failed; stopped reading input)');
  });

  it('refuses an unknown topic before reading stdin', async () => {
    const fake = fakeProducer();
    const io = fakeRuntime({ admin: fakeAdmin(['other']), producer: () => fake.producer }, 'a\n');
    await expect(runProduce(io.runtime, 't', {})).rejects.toMatchObject({ code: 'TOPIC_NOT_FOUND' });
    expect(fake.sent).toEqual([]);
  });
});
