// Proves the edge validation accepts what the API documents and refuses the rest with INVALID_REQUEST.
import { describe, expect, it } from 'vitest';
import { TesseraError } from './errors.js';
import { createTopicRequest, fetchRequest, produceRequest } from './schemas.js';
import { parseOrThrow } from './validate.js';

function invalid(schema: Parameters<typeof parseOrThrow>[0], input: unknown): TesseraError {
  try {
    parseOrThrow(schema, input);
  } catch (error) {
    return error as TesseraError;
  }
  throw new Error('expected the input to be refused');
}

describe('createTopicRequest', () => {
  it('defaults the replication factor to 2', () => {
    expect(parseOrThrow(createTopicRequest, { name: 'orders', partitions: 3 })).toMatchObject({
      name: 'orders',
      partitions: 3,
      replicationFactor: 2,
    });
  });

  it.each([
    [{ name: 'bad name', partitions: 1 }, 'name'],
    [{ name: '..', partitions: 1 }, 'name'],
    [{ name: 'x'.repeat(201), partitions: 1 }, 'name'],
    [{ name: 'ok', partitions: 0 }, 'partitions'],
    [{ name: 'ok', partitions: 1025 }, 'partitions'],
    [{ name: 'ok', partitions: 2.5 }, 'partitions'],
    [{ name: 'ok', partitions: 1, replicationFactor: 3 }, 'replicationFactor'],
    [{ name: 'ok', partitions: 1, extra: true }, '(root)'],
  ])('refuses %j at %s', (input, path) => {
    const error = invalid(createTopicRequest, input);
    expect(error.code).toBe('INVALID_REQUEST');
    expect(error.status).toBe(400);
    expect(error.details.issues?.map((issue) => issue.path)).toContain(path);
  });
});

describe('produceRequest', () => {
  it('accepts keyed, keyless and headered records', () => {
    const parsed = parseOrThrow(produceRequest, {
      records: [{ key: 'k', value: 'v' }, { value: 'w', headers: { a: 'b' } }, { key: null, value: '' }],
    });
    expect(parsed.records).toHaveLength(3);
  });

  it('refuses empty batches and non-string values', () => {
    expect(invalid(produceRequest, { records: [] }).code).toBe('INVALID_REQUEST');
    expect(invalid(produceRequest, { records: [{ value: 42 }] }).code).toBe('INVALID_REQUEST');
    expect(invalid(produceRequest, 'records').code).toBe('INVALID_REQUEST');
  });
});

describe('fetchRequest', () => {
  it('bounds the long-poll wait', () => {
    const request = { partitions: [{ topic: 't', partition: 0, offset: 0 }], waitMs: 60_001 };
    expect(invalid(fetchRequest, request).code).toBe('INVALID_REQUEST');
    expect(parseOrThrow(fetchRequest, { ...request, waitMs: 500 }).waitMs).toBe(500);
  });

  it('refuses negative offsets', () => {
    expect(invalid(fetchRequest, { partitions: [{ topic: 't', partition: 0, offset: -1 }] }).code).toBe(
      'INVALID_REQUEST',
    );
  });
});
