/** The broker's routes (paths from BROKER_ROUTES), each a thin adapter to its domain handler. */
import {
  BROKER_ROUTES,
  TesseraError,
  epoch,
  openApiDocument,
  parseOrThrow,
  purgePartitionRequest,
  REPLICATE_FEATURES,
  replicateExchangeHead,
  type PushAnswer,
  type ReplicateExchangeResponse,
} from '@tessera/protocol';
import { requireClusterNode, type Context, type HttpService } from '@tessera/service';
import { handleAdminGroupOffsets, handleCommit, handleCommittedOffsets } from '../groups/commit-handler.js';
import { handleListOffsets, handlePartitionOffsets } from '../positions/list-offsets.js';
import { FetchHandler } from '../fetch/fetch-handler.js';
import { handleProduceBatches, handleProduceJson } from '../produce/produce-handler.js';
import { applyPush, type ParsedPush } from '../replication/index.js';
import { findReplicas, inlineError, parseFrame, requireFrame, requirePrimary, type HandlerDeps } from './deps.js';

export function mountRoutes(
  service: HttpService,
  deps: HandlerDeps,
): { deps: HandlerDeps; fetch: FetchHandler; replicate: (frame: Buffer) => Promise<ReplicateExchangeResponse> } {
  const { router } = service;
  const fetch = new FetchHandler(deps);
  router.post(BROKER_ROUTES.produceBatches, (ctx) => handleProduceBatches(deps, ctx));
  router.post(BROKER_ROUTES.produce, (ctx) => handleProduceJson(deps, ctx));
  router.post(BROKER_ROUTES.fetch, (ctx) => fetch.handle(ctx));
  router.post(BROKER_ROUTES.commit, (ctx) => handleCommit(deps, ctx));
  router.post(BROKER_ROUTES.committedOffsets, (ctx) => handleCommittedOffsets(deps, ctx));
  router.post(BROKER_ROUTES.listOffsets, (ctx) => handleListOffsets(deps, ctx));
  router.get(BROKER_ROUTES.partitionOffsets, (ctx) => handlePartitionOffsets(deps, ctx));
  // Only the coordinator decides group generations (the edge admits members only; this narrows it).
  router.post(BROKER_ROUTES.adminGroupOffsets, (ctx) => {
    requireClusterNode(ctx.state, 'coordinator', service.metrics);
    return handleAdminGroupOffsets(deps, ctx);
  });
  router.post(BROKER_ROUTES.replicate, (ctx) => handleReplicate(deps, ctx));
  router.post(BROKER_ROUTES.metadataChanged, (ctx) => handleMetadataChanged(deps, ctx));
  router.post(BROKER_ROUTES.purge, (ctx) => handlePurge(deps, ctx));
  const openApi = openApiDocument('broker');
  router.get(BROKER_ROUTES.openapi, (ctx) => {
    ctx.body = openApi;
  });
  return { deps, fetch, replicate: (frame) => replicateExchange(deps, frame) };
}

/**
 * `POST /internal/replicate` (a frame): one exchange from another broker, the pushes of the
 * partitions it leads and this broker follows. The replication stream (replication/stream/)
 * carries the same frames and answers on a kept-open connection.
 */
async function handleReplicate(deps: HandlerDeps, ctx: Context): Promise<void> {
  ctx.body = await replicateExchange(deps, requireFrame(ctx));
}

/**
 * Applies one replicate exchange: each push is checked and applied on its own (in order), all
 * of them land in the same group commit, and each gets its own answer. A malformed frame is
 * INVALID_REQUEST for the whole exchange.
 */
export async function replicateExchange(deps: HandlerDeps, frame: Buffer): Promise<ReplicateExchangeResponse> {
  const { head, parts } = parseFrame(frame, (raw) => parseOrThrow(replicateExchangeHead, raw, 'frame head'), (h) => h.pushes);
  const replicas = await findReplicas(deps, head.pushes);
  const answers = await Promise.all(
    head.pushes.map(async (push, i): Promise<PushAnswer> => {
      try {
        const replica = replicas[i];
        // Not NOT_PRIMARY here: the sender is a primary, and to it that answer would mean it was deposed.
        if (replica === undefined || replica.isClosed) {
          throw new TesseraError('PARTITION_NOT_FOUND', `broker ${deps.link.brokerId} holds no replica of ${push.topic}/${push.partition} (yet)`);
        }
        return await replica.followerTurn(() => applyPush(replica, push as ParsedPush, parts[i]));
      } catch (error) {
        return { error: inlineError(deps, error) };
      }
    }),
  );
  return { answers, features: [...REPLICATE_FEATURES] };
}

/**
 * `POST /internal/purge {topic, partition, epoch?}` (from the coordinator): this primary's log
 * start moves to its HW. A newer epoch than this broker's is refused (UNKNOWN_EPOCH), as in data
 * calls: the replica here may be one the map it has not applied yet drops.
 */
async function handlePurge(deps: HandlerDeps, ctx: Context): Promise<void> {
  const request = parseOrThrow(purgePartitionRequest, ctx.state.body);
  const [replica] = await findReplicas(deps, [request]);
  ctx.body = await requirePrimary(deps, replica, request).purge();
}

/** `POST /internal/metadata-changed {version}`: the coordinator changed the map; apply it before answering. */
async function handleMetadataChanged(deps: HandlerDeps, ctx: Context): Promise<void> {
  const body = ctx.state.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new TesseraError('INVALID_REQUEST', 'invalid request body: expected {"version": number}');
  }
  parseOrThrow(epoch, (body as { version?: unknown }).version, 'version');
  try {
    await deps.link.refreshMetadata();
  } catch (error) {
    throw new TesseraError('UNAVAILABLE', `cannot fetch metadata from the coordinator: ${(error as Error).message}`);
  }
  ctx.body = { version: deps.link.appliedVersion };
}
