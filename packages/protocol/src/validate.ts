import type { z } from 'zod';
import { TesseraError } from './errors.js';

/** Parses `input` with `schema`, or throws INVALID_REQUEST naming every problem and where it is. */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, what = 'request body'): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => ({
    path: issue.path.map(String).join('.') || '(root)',
    message: issue.message,
  }));
  const summary = issues
    .slice(0, 5)
    .map((issue) => `${issue.path}: ${issue.message}`)
    .join('; ');
  throw new TesseraError('INVALID_REQUEST', `invalid ${what}: ${summary}`, { issues });
}
