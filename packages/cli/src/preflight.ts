import { TesseraError } from '@tessera/protocol';
import type { Runtime } from './runtime.js';

/**
 * One metadata request before a produce or consume run: a fresh CLI process knows
 * nothing about the cluster, so an unreachable coordinator or an unknown topic should
 * fail at once with one line, not after the client's retries have run out.
 */
export async function requireTopic(runtime: Runtime, topic: string): Promise<void> {
  const metadata = await runtime.client().admin.metadata();
  if (!metadata.topics.some((t) => t.name === topic)) {
    throw new TesseraError('TOPIC_NOT_FOUND', `topic "${topic}" not found`);
  }
}
