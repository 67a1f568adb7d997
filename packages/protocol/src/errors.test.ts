// Proves an error survives the trip server → JSON body → client with its code, status and details.
import { describe, expect, it } from 'vitest';
import { ERRORS, TesseraError, isNotPrimary, isRetriable } from './errors.js';

describe('TesseraError', () => {
  it('takes status and retriable from the table', () => {
    const error = new TesseraError('NOT_PRIMARY', 'broker 2 does not lead orders/3', { primary: { id: 1, url: 'http://x' } });
    expect(error.status).toBe(421);
    expect(error.retriable).toBe(true);
    expect(error.toBody()).toEqual({
      error: { code: 'NOT_PRIMARY', message: 'broker 2 does not lead orders/3', retriable: true, primary: { id: 1, url: 'http://x' } },
    });
  });

  it('is rebuilt from its body', () => {
    const original = new TesseraError('OFFSET_MISMATCH', 'expected 5', { leo: 5, epochs: [[0, 0], [2, 3]] });
    const rebuilt = TesseraError.fromBody(JSON.parse(JSON.stringify(original.toBody())));
    expect(rebuilt).toBeInstanceOf(TesseraError);
    expect(rebuilt?.code).toBe('OFFSET_MISMATCH');
    expect(rebuilt?.details).toEqual({ leo: 5, epochs: [[0, 0], [2, 3]] });
    expect(isNotPrimary(rebuilt)).toBe(false);
  });

  it('does not mistake other bodies for errors', () => {
    expect(TesseraError.fromBody({ ok: true })).toBeUndefined();
    expect(TesseraError.fromBody({ error: { code: 'NO_SUCH_CODE' } })).toBeUndefined();
    expect(TesseraError.fromBody(null)).toBeUndefined();
  });

  it('gives every code a 4xx or 5xx status', () => {
    for (const entry of Object.values(ERRORS)) {
      expect(entry.status).toBeGreaterThanOrEqual(400);
      expect(entry.status).toBeLessThan(600);
    }
  });

  it('treats network failures as retriable and bad input as not', () => {
    expect(isRetriable(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isRetriable(new TesseraError('INVALID_REQUEST', 'bad'))).toBe(false);
    expect(isRetriable(new Error('plain'))).toBe(false);
  });
});
