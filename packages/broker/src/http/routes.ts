/** The broker's routes (paths from BROKER_ROUTES), each a thin adapter to its domain handler. */
import { BROKER_ROUTES, TesseraError, epoch, openApiDocument, parseOrThrow, replicateRequest } from '@tessera/protocol';
import type { Context, HttpService } from '@tessera/service';
import { handleCommit, handleCommittedOffsets } from '../groups/commit-handler.js';
import { FetchHandler } from '../fetch/fetch-handler.js';
import { handleProduce } from '../produce/produce-handler.js';
import { applyReplicate } from '../replication/receive.js';
import { findReplicas, type HandlerDeps } from './deps.js';

export function mountRoutes(service: HttpService, deps: HandlerDeps): { fetch: FetchHandler } {
  const { router } = service;
  const fetch = new FetchHandler(deps);
  router.post(BROKER_ROUTES.produce, (ctx) => handleProduce(deps, ctx));
  router.post(BROKER_ROUTES.fetch, (ctx) => fetch.handle(ctx));
  router.post(BROKER_ROUTES.commit, (ctx) => handleCommit(deps, ctx));
  router.post(BROKER_ROUTES.committedOffsets, (ctx) => handleCommittedOffsets(deps, ctx));
  router.post(BROKER_ROUTES.replicate, (ctx) => handleReplicate(deps, ctx));
  router.post(BROKER_ROUTES.metadataChanged, (ctx) => handleMetadataChanged(deps, ctx));
  const openApi = openApiDocument('broker');
  router.get(BROKER_ROUTES.openapi, (ctx) => {
    ctx.body = openApi;
  });
  return { fetch };
}

/** `POST /internal/replicate`: a push from the primary (this broker is the secondary). */
async function handleReplicate(deps: HandlerDeps, ctx: Context): Promise<void> {
  const request = parseOrThrow(replicateRequest, ctx.state.body);
  const ref = { topic: request.topic, partition: request.partition };
  const [replica] = await findReplicas(deps, [ref]);
  // Not NOT_PRIMARY here: the sender is a primary, and to it that answer would mean it was deposed.
  if (replica === undefined || replica.isClosed) {
    throw new TesseraError('PARTITION_NOT_FOUND', `broker ${deps.link.brokerId} holds no replica of ${ref.topic}/${ref.partition} (yet)`);
  }
  ctx.body = applyReplicate(replica, request);
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
