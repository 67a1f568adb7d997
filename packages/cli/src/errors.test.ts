// Proves every failure becomes one line naming what went wrong, without stack traces.
import { TesseraError } from '@tessera/protocol';
import { describe, expect, it } from 'vitest';
import { CliError, debugEnabled, describeError } from './errors.js';

const context = { coordinatorUrl: 'http://127.0.0.1:7070' };

function networkError(code: string, url: string): Error {
  const error = new Error(`GET ${url}/topics: ${code} (connect ${code} 127.0.0.1)`);
  (error as Error & { code: string }).code = code;
  error.name = 'NetworkError';
  return error;
}

describe('describeError', () => {
  it('names the coordinator and the reason when it cannot be reached', () => {
    expect(describeError(networkError('ECONNREFUSED', 'http://127.0.0.1:7070'), context)).toBe(
      'cannot reach the coordinator at http://127.0.0.1:7070 (connection refused)',
    );
  });

  it('sees the network failure through the client wrapping it as UNAVAILABLE', () => {
    const wrapped = new TesseraError('UNAVAILABLE', 'cannot reach the coordinator at http://127.0.0.1:7070: ECONNREFUSED', {}, {
      cause: networkError('ECONNREFUSED', 'http://127.0.0.1:7070'),
    });
    expect(describeError(wrapped, context)).toBe('cannot reach the coordinator at http://127.0.0.1:7070 (connection refused)');
  });

  it('names a broker that cannot be reached', () => {
    expect(describeError(networkError('ETIMEDOUT', 'http://127.0.0.1:7072'), context)).toBe(
      'cannot reach the broker at http://127.0.0.1:7072 (timed out)',
    );
  });

  it('names the topic or group that was not found', () => {
    expect(describeError(new TesseraError('TOPIC_NOT_FOUND', 'no such topic'), { ...context, topic: 'x' })).toBe('topic "x" not found');
    expect(describeError(new TesseraError('GROUP_NOT_FOUND', 'no such group'), { ...context, group: 'g' })).toBe('group "g" not found');
    expect(describeError(new TesseraError('TOPIC_EXISTS', 'exists'), { ...context, topic: 'x' })).toBe('topic "x" already exists');
  });

  it('keeps only the first line of a message', () => {
    expect(describeError(new Error('first\nsecond'), context)).toBe('first');
    expect(describeError(new CliError('bad thing'), context)).toBe('bad thing');
  });
});

describe('debugEnabled', () => {
  it('is on for TESSERA_DEBUG=1 and off for 0 or unset', () => {
    expect(debugEnabled({ TESSERA_DEBUG: '1' })).toBe(true);
    expect(debugEnabled({ TESSERA_DEBUG: '0' })).toBe(false);
    expect(debugEnabled({})).toBe(false);
  });
});
