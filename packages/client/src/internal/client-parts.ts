import type { RetryOptions } from '@tessera/protocol';
import type { MetadataCache } from '../cluster/metadata-cache.js';
import type { Connection } from '../connection/connection.js';

/**
 * What every producer, consumer and reader of one client shares: its connections, its cluster
 * map, and the retry and timeout settings the client was made with.
 */
export interface ClientParts {
  connection: Connection;
  metadata: MetadataCache;
  retry: RetryOptions;
  requestTimeoutMs: number;
}
