// A leader's exchanges reach a follower over the replication stream, over HTTP when asked to,
// and over HTTP when the follower is a broker without the stream (brokers upgraded one at a
// time): real services of @tessera/service on loopback, the stream server as a broker mounts it.
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BROKER_ROUTES, ClusterSigner, decodeFrame, type PartitionPush, type ReplicateExchangeHead } from '@tessera/protocol';
import { createHttpService, createLogger } from '@tessera/service';
import type { ReplicationTransport } from '../../config.js';
import type { PushHead } from '../ports.js';
import { ReplicationStreamServer } from '../stream/stream-server.js';
import { PairExchanges } from './exchange.js';

const SECRET = 'a-cluster-secret-for-the-exchange-tests-0123456789';
const logger = createLogger('broker', {}, { level: 'silent' });
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A follower answering every push with LEO = its baseOffset + 1; counts exchanges per transport. */
async function follower(options: { stream: boolean }) {
  const seen = { http: 0, stream: 0 };
  const heads: PartitionPush[] = [];
  const answer = (frame: Buffer) => {
    const head = decodeFrame(frame).head as ReplicateExchangeHead;
    heads.push(...head.pushes);
    return { answers: head.pushes.map((push) => ({ leo: push.baseOffset + 1, epoch: push.epoch })) };
  };
  const service = createHttpService({ service: 'broker', logger, isReady: () => true, clusterSecrets: [SECRET] });
  service.router.post(BROKER_ROUTES.replicate, (ctx) => {
    seen.http++;
    ctx.body = answer(ctx.state.frame!);
  });
  const server = await service.listen(0, '127.0.0.1');
  cleanups.push(() => service.close());
  if (options.stream) {
    const streams = new ReplicationStreamServer(server, {
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
    cleanups.push(() => streams.close());
  }
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, heads };
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

/** A truncating push's fields (see PartitionPush.truncateSeen). */
const truncating = { truncateTo: 10, truncateSeen: { leo: 14, epoch: 2 } };

describe('replicate exchanges', () => {
  it('go over the stream by default, pushes of one turn in one exchange, each with its own answer', async () => {
    const { url, seen, heads } = await follower({ stream: true });
    const exchanges = leader();
    expect(await Promise.all([push(exchanges, url, 0, 10), push(exchanges, url, 1, 20)])).toEqual([
      { leo: 11, epoch: 3 },
      { leo: 21, epoch: 3 },
    ]);
    expect(await push(exchanges, url, 0, 11)).toEqual({ leo: 12, epoch: 3 });
    expect(seen).toEqual({ http: 0, stream: 2 });
    // A follower of this release takes truncateSeen (it names the feature in its 101).
    await push(exchanges, url, 0, 10, truncating);
    expect(heads.at(-1)).toMatchObject(truncating);
  });

  it('go as POST /internal/replicate with transport http', async () => {
    const { url, seen, heads } = await follower({ stream: true });
    expect(await push(leader('http'), url, 0, 10, truncating)).toEqual({ leo: 11, epoch: 3 });
    expect(seen).toEqual({ http: 1, stream: 0 });
    expect(heads.at(-1)).toMatchObject(truncating);
  });

  it('fall back to POST /internal/replicate for a follower without the stream, and stay there', async () => {
    const { url, seen, heads } = await follower({ stream: false });
    const exchanges = leader();
    expect(await push(exchanges, url, 0, 10)).toEqual({ leo: 11, epoch: 3 });
    expect(await push(exchanges, url, 0, 11)).toEqual({ leo: 12, epoch: 3 });
    expect(seen).toEqual({ http: 2, stream: 0 });
    // A follower of a release before the stream would refuse a head with truncateSeen: it gets none.
    await push(exchanges, url, 0, 10, truncating);
    expect(heads.at(-1)).toMatchObject({ truncateTo: 10 });
    expect(heads.at(-1)).not.toHaveProperty('truncateSeen');
  });
});
