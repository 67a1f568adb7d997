/**
 * Replication by broker pair: the pushes of every partition this broker sends to one other
 * broker in the same event-loop turn travel in ONE exchange (a frame: the pushes' heads in the
 * JSON head, their batches in the tail), and the secondary stores all of them in one group
 * commit. Each partition still has at most one push in flight (its lock), so an exchange is
 * only a transport: every push keeps its own answer, and a partition's failure never fails
 * another's push. An exchange goes over the replication stream to that peer (a kept-open
 * connection, replication/stream/), or as `POST /internal/replicate` when the transport is
 * `http` or the peer offers no stream (a broker of an earlier version: the stream client
 * remembers that for a while, then asks again). A push field newer than the exchange's first
 * release (`truncateSeen`, `order`) goes only to a follower whose last answer named it among
 * its features, so brokers of two releases replicate to each other while they are upgraded one
 * at a time, on either transport.
 */
import {
  BROKER_ROUTES,
  DEFAULT_MAX_REQUEST_BYTES,
  DataHttpClient,
  type ClusterSigner,
  type TlsClientOptions,
  TesseraError,
  PUSH_ORDER_FEATURE,
  TRUNCATE_SEEN_FEATURE,
  encodeFrame,
  isTesseraError,
  type PartitionPush,
  type ReplicateExchangeHead,
  type ReplicateExchangeResponse,
} from '@tessera/protocol';
import type { ReplicationTransport } from '../../config.js';
import type { PushHead, ReplicationPort } from '../ports.js';
import { ReplicationStreamClient, StreamUnsupported } from '../stream/stream-client.js';

interface Waiting {
  head: PushHead;
  batches: Buffer[];
  bytes: number;
  timeoutMs: number;
  resolve: (answer: { leo: number; epoch: number }) => void;
  reject: (error: unknown) => void;
}

/** The push fields beyond the first release a follower named in its last answer. */
interface FollowerTakes {
  truncateSeen: boolean;
  order: boolean;
}

export interface ExchangeOptions {
  brokerId: number;
  /** Deadline of an exchange when its pushes give none. */
  timeoutMs: number;
  /** Most bytes of batches in one exchange (well below the request body limit); a larger push goes alone. */
  maxExchangeBytes: number;
  /** Observes each exchange's duration in seconds and its push count (metrics). */
  onExchange?: (seconds: number, pushes: number) => void;
  /** The cluster's CA (and this broker's client certificate) for https peers. */
  tls?: TlsClientOptions;
  /** Signs every exchange as this broker: followers accept pushes from cluster members only. */
  signer?: ClusterSigner;
  /** `stream` (default) or `http`: see the module comment. */
  transport?: ReplicationTransport;
}

export class PairExchanges implements ReplicationPort {
  private readonly http: DataHttpClient;
  private readonly streams: ReplicationStreamClient | undefined;
  private readonly waiting = new Map<string, Waiting[]>();
  /** The push fields beyond the first release each follower's last answer named (ReplicateExchangeResponse.features). */
  private readonly features = new Map<string, FollowerTakes>();
  private scheduled = false;

  constructor(private readonly options: ExchangeOptions) {
    this.http = new DataHttpClient({
      timeoutMs: options.timeoutMs,
      connectionsPerOrigin: 16,
      headers: { 'user-agent': 'tessera-broker' },
      ...(options.tls ? { tls: options.tls } : {}),
      ...(options.signer ? { signer: options.signer } : {}),
    });
    this.streams =
      options.transport === 'http'
        ? undefined
        : new ReplicationStreamClient({ maxAnswerBytes: DEFAULT_MAX_REQUEST_BYTES, ...(options.tls ? { tls: options.tls } : {}), ...(options.signer ? { signer: options.signer } : {}) });
  }

  push(url: string, head: PushHead, batches: Buffer[], timeoutMs: number): Promise<{ leo: number; epoch: number }> {
    let bytes = 0;
    for (const batch of batches) bytes += batch.length;
    return new Promise((resolve, reject) => {
      let queue = this.waiting.get(url);
      if (queue === undefined) this.waiting.set(url, (queue = []));
      queue.push({ head, batches, bytes, timeoutMs, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.sendAll());
      }
    });
  }

  async close(): Promise<void> {
    this.streams?.close();
    await this.http.close();
  }

  private sendAll(): void {
    this.scheduled = false;
    const all = [...this.waiting];
    this.waiting.clear();
    for (const [url, pushes] of all) {
      // Split into exchanges of at most maxExchangeBytes (a push larger than that goes alone).
      let group: Waiting[] = [];
      let bytes = 0;
      for (const push of pushes) {
        if (group.length > 0 && bytes + push.bytes > this.options.maxExchangeBytes) {
          void this.send(url, group);
          group = [];
          bytes = 0;
        }
        group.push(push);
        bytes += push.bytes;
      }
      if (group.length > 0) void this.send(url, group);
    }
  }

  private async send(url: string, pushes: Waiting[]): Promise<void> {
    const takes = this.features.get(url);
    const head: ReplicateExchangeHead = { from: this.options.brokerId, pushes: pushes.map(({ head, bytes }) => forFollower(head, bytes, takes)) };
    const chunks = encodeFrame(head, pushes.flatMap((push) => push.batches));
    const startedMs = performance.now();
    try {
      const body = await this.exchange(url, chunks, Math.min(...pushes.map((push) => push.timeoutMs)));
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch {
        throw new TesseraError('INTERNAL', `replicate to ${url}: the answer is not JSON`);
      }
      // The stream answers a refused exchange with the error body an HTTP 4xx/5xx would carry.
      if (parsed !== null && typeof parsed === 'object' && 'error' in parsed) {
        throw TesseraError.fromBody(parsed) ?? new TesseraError('INTERNAL', `replicate to ${url}: bad error answer`);
      }
      const answer = parsed as ReplicateExchangeResponse | undefined;
      const answers = answer?.answers;
      if (!Array.isArray(answers) || answers.length !== pushes.length) {
        throw new TesseraError('INTERNAL', `replicate to ${url}: ${pushes.length} pushes got ${String(answers?.length)} answers`);
      }
      const named = Array.isArray(answer?.features) ? answer.features : [];
      this.features.set(url, { truncateSeen: named.includes(TRUNCATE_SEEN_FEATURE), order: named.includes(PUSH_ORDER_FEATURE) });
      this.options.onExchange?.((performance.now() - startedMs) / 1000, pushes.length);
      pushes.forEach((push, i) => {
        const answer = answers[i];
        if ('error' in answer) push.reject(TesseraError.fromBody({ error: answer.error }) ?? new TesseraError('INTERNAL', 'bad answer'));
        else push.resolve(answer);
      });
    } catch (error) {
      // A follower replaced by an older release refuses what it does not know: send it none.
      if (isTesseraError(error, 'INVALID_REQUEST')) this.features.delete(url);
      for (const push of pushes) push.reject(error);
    }
  }

  /** One exchange's answer (JSON bytes), over the stream when the peer offers one. */
  private async exchange(url: string, chunks: Buffer[], timeoutMs: number): Promise<Buffer> {
    if (this.streams?.offersStream(url)) {
      try {
        return await this.streams.call(url, chunks, timeoutMs);
      } catch (error) {
        if (!(error instanceof StreamUnsupported)) throw error;
      }
    }
    return (await this.http.postFrame(url + BROKER_ROUTES.replicate, chunks, { timeoutMs })).body;
  }
}

/** A push as a follower that takes `takes` may get it: a follower refuses a head with a field it does not know, so one it has not named stays home. */
function forFollower(head: PushHead, bytes: number, takes: FollowerTakes | undefined): PartitionPush {
  const push: PartitionPush = { ...head, bytes };
  if (!takes?.truncateSeen) delete push.truncateSeen;
  if (!takes?.order) delete push.order;
  return push;
}
