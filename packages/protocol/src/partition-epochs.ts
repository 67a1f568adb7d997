/**
 * Partition epochs in data calls, and brokers of an earlier release that do not know the field.
 *
 * Produce, fetch, commit and committed-offset calls name each partition's epoch in the caller's
 * cluster map, so a broker that has not applied that map yet refuses them (UNKNOWN_EPOCH). A
 * broker of a release before the field validates its requests strictly and refuses the unknown
 * key as bad input, before anything of the call is stored: the caller sends the call again
 * without epochs, and leaves them out of its calls to that broker for a while, then names them
 * again (the broker may have been upgraded meanwhile).
 */
import { decodeFrame, encodeFrame } from './batch/frame.js';
import { isTesseraError } from './errors.js';
import { RefusedPeers } from './refused-peers.js';

/** How long a broker that refused partition epochs gets calls without them before it is asked again. */
export const EPOCHS_ASKED_AGAIN_MS = 60_000;

type EpochNaming = { epoch?: number };

/** `body` with no `epoch` in its `partitions` or `offsets` entries; `body` itself when none names one. */
export function withoutEpochs<B>(body: B): B {
  if (typeof body !== 'object' || body === null) return body;
  const record = body as Record<string, unknown>;
  let changed = false;
  const copy: Record<string, unknown> = { ...record };
  for (const field of ['partitions', 'offsets']) {
    const entries = record[field];
    if (!Array.isArray(entries) || !entries.some((entry: EpochNaming) => entry?.epoch !== undefined)) continue;
    changed = true;
    copy[field] = entries.map(({ epoch: _epoch, ...rest }: EpochNaming) => rest);
  }
  return changed ? (copy as B) : body;
}

/** A frame's chunks (`encodeFrame`: the head alone in the first) with no `epoch` in its head's partitions; `chunks` itself when none names one. */
export function frameWithoutEpochs(chunks: readonly Buffer[]): readonly Buffer[] {
  const [first, ...parts] = chunks;
  if (first === undefined) return chunks;
  const { head, tail } = decodeFrame(first);
  const stripped = withoutEpochs(head);
  return stripped === head ? chunks : [...encodeFrame(stripped as object, tail.length > 0 ? [tail] : []), ...parts];
}

/**
 * Whether `error` is a broker's refusal of the `epoch` field: INVALID_REQUEST whose issues name
 * it as a key its (strict) schema does not know, as a broker of an earlier release answers. Any
 * other bad-input answer is the call's own fault and stays as it is.
 */
export function refusesEpochs(error: unknown): boolean {
  if (!isTesseraError(error, 'INVALID_REQUEST')) return false;
  const issues: unknown = error.details.issues;
  return Array.isArray(issues) && issues.some((issue: { message?: unknown }) => typeof issue?.message === 'string' && issue.message.includes('"epoch"'));
}

/** Calls to brokers, leaving partition epochs out for those (by URL) that refused them lately. */
export class EpochRefusals {
  private readonly refused = new RefusedPeers();

  /**
   * Sends `body` to the broker at `url` (`call`), without epochs (`strip`) while it refused them
   * lately; when it refuses the field now, sends it again without them.
   */
  async send<B, T>(url: string, body: B, strip: (body: B) => B, call: (body: B) => Promise<T>): Promise<T> {
    if (this.refused.has(url)) return call(strip(body));
    try {
      return await call(body);
    } catch (error) {
      if (!refusesEpochs(error)) throw error;
      const stripped = strip(body);
      if (stripped === body) throw error;
      this.refused.note(url, EPOCHS_ASKED_AGAIN_MS);
      return call(stripped);
    }
  }
}
