// A leader's exchanges reach a follower over the replication stream, over HTTP when asked to,
// and over HTTP when the follower is a broker without the stream (brokers upgraded one at a
// time): real services of @tessera/service on loopback, the stream server as a broker mounts it.
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BROKER_ROUTES,
  ClusterSigner,
  PUSH_ORDER_FEATURE,
  REPLICATE_FEATURES,
  TRUNCATE_SEEN_FEATURE,
  TesseraError,
  decodeFrame,
  type PartitionPush,
  type ReplicateExchangeHead,
} from '@tessera/protocol';
import { createHttpService, createLogger } from '@tessera/service';
import type { ReplicationTransport } from '../../config.js';
import type { PushHead } from '../ports.js';
import { routeUpgrades } from '../../http/upgrades.js';
import { ReplicationStreamServer } from '../stream/stream-server.js';
import { PairExchanges } from './exchange.js';

const SECRET = 'a-cluster-secret-for-the-exchange-tests-0123456789';
const logger = createLogger('broker', {}, { level: 'silent' });
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The push fields beyond the first release, by the feature that names each. */
const FEATURE_FIELDS: Record<string, 'truncateSeen' | 'order'> = { [TRUNCATE_SEEN_FEATURE]: 'truncateSeen', [PUSH_ORDER_FEATURE]: 'order' };

/**
 * A follower answering every push with LEO = its baseOffset + 1; counts exchanges per transport
 * and keeps the push heads. `older`: a broker of the release before push features, which names
 * none and refuses a head with a field it does not know (as its strict schema does);
 * `features`: a broker of a release that names and takes only these.
 */
async function follower(options: { stream: boolean; older?: boolean; features?: string[] }) {
  const seen = { http: 0, stream: 0 };
  const heads: PartitionPush[] = [];
  let features: string[] | undefined = options.older ? undefined : (options.features ?? [...REPLICATE_FEATURES]);
  const answer = (frame: Buffer) => {
    const head = decodeFrame(frame).head as ReplicateExchangeHead;
    for (const [feature, field] of Object.entries(FEATURE_FIELDS)) {
      if (!features?.includes(feature) && head.pushes.some((push) => field in push)) {
        throw new TesseraError('INVALID_REQUEST', `frame head: unrecognized key "${field}"`);
      }
    }
    heads.push(...head.pushes);
    const answers = head.pushes.map((push) => ({ leo: push.baseOffset + 1, epoch: push.epoch }));
    return features === undefined ? { answers } : { answers, features };
  };
  const service = createHttpService({ service: 'broker', logger, isReady: () => true, clusterSecrets: [SECRET] });
  service.router.post(BROKER_ROUTES.replicate, (ctx) => {
    seen.http++;
    ctx.body = answer(ctx.state.frame!);
  });
  const server = await service.listen(0, '127.0.0.1');
  cleanups.push(() => service.close());
  if (options.stream) {
    const streams = new ReplicationStreamServer({
      secrets: [SECRET],
      maxMessageBytes: 1 << 20,
      logger,
      onInvariantBroken: (error) => {
        throw error;
      },
      handle: async (frame) => {
        seen.stream++;
        return answer(frame);
      },
    });
    routeUpgrades(server, [streams]);
    cleanups.push(() => streams.close());
  }
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    heads,
    /** The broker at this URL is replaced by one of the release before (a downgrade). */
    downgrade: () => (features = undefined),
  };
}

function leader(transport?: ReplicationTransport): PairExchanges {
  const exchanges = new PairExchanges({
    brokerId: 1,
    timeoutMs: 5_000,
    maxExchangeBytes: 1 << 20,
    signer: new ClusterSigner([SECRET], 'broker-1'),
    ...(transport ? { transport } : {}),
  });
  cleanups.push(() => exchanges.close());
  return exchanges;
}

const push = (exchanges: PairExchanges, url: string, partition: number, baseOffset: number, more: Partial<PushHead> = {}) =>
  exchanges.push(url, { topic: 't', partition, epoch: 3, primaryId: 1, baseOffset, hw: 0, ...more }, [Buffer.from('batch bytes')], 5_000);

/** A truncating push's fields (see PartitionPush.truncateSeen), with its order (PartitionPush.order). */
const truncating = { truncateTo: 10, truncateSeen: { leo: 14, epoch: 2 }, order: { run: 7, seq: 3 } };

describe('replicate exchanges', () => {
  it('go over the stream by default, pushes of one turn in one exchange, each with its own answer', async () => {
    const { url, seen } = await follower({ stream: true });
    const exchanges = leader();
    expect(await Promise.all([push(exchanges, url, 0, 10), push(exchanges, url, 1, 20)])).toEqual([
      { leo: 11, epoch: 3 },
      { leo: 21, epoch: 3 },
    ]);
    expect(await push(exchanges, url, 0, 11)).toEqual({ leo: 12, epoch: 3 });
    expect(seen).toEqual({ http: 0, stream: 2 });
  });

  it('go as POST /internal/replicate with transport http', async () => {
    const { url, seen } = await follower({ stream: true });
    expect(await push(leader('http'), url, 0, 10)).toEqual({ leo: 11, epoch: 3 });
    expect(seen).toEqual({ http: 1, stream: 0 });
  });

  it('fall back to POST /internal/replicate for a follower without the stream, and stay there', async () => {
    const { url, seen } = await follower({ stream: false });
    const exchanges = leader();
    expect(await push(exchanges, url, 0, 10)).toEqual({ leo: 11, epoch: 3 });
    expect(await push(exchanges, url, 0, 11)).toEqual({ leo: 12, epoch: 3 });
    expect(seen).toEqual({ http: 2, stream: 0 });
  });

  for (const transport of ['stream', 'http'] as const) {
    it(`send truncateSeen and order (${transport}) only to a follower whose last answer named them`, async () => {
      const current = await follower({ stream: true });
      const exchanges = leader(transport);
      // Before any answer nothing is known of the follower: the fields stay home.
      await push(exchanges, current.url, 0, 10, truncating);
      expect(current.heads.at(-1)).toMatchObject({ truncateTo: 10 });
      expect(current.heads.at(-1)).not.toHaveProperty('truncateSeen');
      expect(current.heads.at(-1)).not.toHaveProperty('order');
      await push(exchanges, current.url, 0, 10, truncating);
      expect(current.heads.at(-1)).toMatchObject(truncating);

      // A follower of the release before never names them, so it never gets a head it would refuse.
      const older = await follower({ stream: true, older: true });
      expect(await push(exchanges, older.url, 0, 10)).toEqual({ leo: 11, epoch: 3 });
      expect(await push(exchanges, older.url, 0, 10, truncating)).toEqual({ leo: 11, epoch: 3 });
      expect(older.heads.at(-1)).toMatchObject({ truncateTo: 10 });
      expect(older.heads.at(-1)).not.toHaveProperty('truncateSeen');
      expect(older.heads.at(-1)).not.toHaveProperty('order');

      // A follower of a release that names truncateSeen only gets that one.
      const between = await follower({ stream: true, features: [TRUNCATE_SEEN_FEATURE] });
      expect(await push(exchanges, between.url, 0, 10)).toEqual({ leo: 11, epoch: 3 });
      expect(await push(exchanges, between.url, 0, 10, truncating)).toEqual({ leo: 11, epoch: 3 });
      expect(between.heads.at(-1)).toMatchObject({ truncateSeen: truncating.truncateSeen });
      expect(between.heads.at(-1)).not.toHaveProperty('order');
    });
  }

  it('stop sending truncateSeen and order to a follower that refuses the exchange (a broker replaced by an older release)', async () => {
    const older = await follower({ stream: false });
    const exchanges = leader('http');
    await push(exchanges, older.url, 0, 9);
    older.downgrade();
    const refused = await push(exchanges, older.url, 0, 10, truncating).catch((error: unknown) => error);
    expect(refused).toMatchObject({ code: 'INVALID_REQUEST' });
    expect(await push(exchanges, older.url, 0, 10, truncating)).toEqual({ leo: 11, epoch: 3 });
    expect(older.heads.at(-1)).not.toHaveProperty('truncateSeen');
    expect(older.heads.at(-1)).not.toHaveProperty('order');
  });
});
