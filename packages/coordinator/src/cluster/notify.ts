/**
 * Tells live brokers that the metadata changed (`POST /internal/metadata-changed`), in
 * parallel, each call bounded by the notify timeout, every failure ignored: a broker that
 * misses one hears of the new version in its next heartbeat answer anyway.
 */
import { BROKER_ROUTES, type JsonHttpClient } from '@tessera/protocol';
import type { Logger } from '@tessera/service';

export class Notifier {
  private running: Promise<void> | null = null;
  private pending = false;
  private closed = false;

  constructor(
    private readonly client: JsonHttpClient,
    private readonly timeoutMs: number,
    private readonly targets: () => string[],
    private readonly version: () => number,
    private readonly logger: Logger,
  ) {}

  /** Notifies every live broker now and waits for their answers (at most the notify timeout). */
  async notifyNow(): Promise<void> {
    if (this.closed) return;
    const version = this.version();
    const urls = this.targets();
    const results = await Promise.allSettled(
      urls.map((url) => this.client.post(`${url}${BROKER_ROUTES.metadataChanged}`, { version }, { timeoutMs: this.timeoutMs })),
    );
    results.forEach((result, i) => {
      if (result.status === 'rejected') {
        this.logger.debug({ url: urls[i], version, err: String(result.reason) }, 'metadata notification failed');
      }
    });
  }

  /** Notifies in the background; changes arriving while a round runs are coalesced into one more round. */
  schedule(): void {
    if (this.closed) return;
    if (this.running) {
      this.pending = true;
      return;
    }
    this.running = (async () => {
      do {
        this.pending = false;
        await this.notifyNow();
      } while (this.pending && !this.closed);
    })().finally(() => {
      this.running = null;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.running;
  }
}
