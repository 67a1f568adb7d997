/**
 * Every route path of every service, in one table. Handlers register these and
 * clients build URLs from them with `routePath`, so a path is spelled once.
 */
export const COORDINATOR_ROUTES = {
  health: '/health',
  ready: '/ready',
  metrics: '/metrics',
  openapi: '/openapi.json',
  metadata: '/metadata',
  topics: '/topics',
  topic: '/topics/:topic',
  routedProduce: '/topics/:topic/records',
  /** A producer id and epoch for an idempotent producer. */
  producers: '/producers',
  topicPurge: '/topics/:topic/purge',
  brokers: '/brokers',
  brokerRegister: '/brokers/register',
  brokerHeartbeat: '/brokers/heartbeat',
  brokerDrain: '/brokers/:id/drain',
  isr: '/partitions/isr',
  reassignComplete: '/partitions/reassign-complete',
  clusterStatus: '/cluster/status',
  clusterEvents: '/cluster/events',
  groups: '/groups',
  group: '/groups/:group',
  groupJoin: '/groups/:group/join',
  groupHeartbeat: '/groups/:group/heartbeat',
  groupLeave: '/groups/:group/leave',
  /** Reset a group's committed offsets (dry run or execute); refused while it has members. */
  groupResetOffsets: '/groups/:group/reset-offsets',
  authToken: '/auth/token',
  users: '/users',
  user: '/users/:name',
  userSecret: '/users/:name/secret',
  acls: '/acls',
  aclsRemove: '/acls/remove',
  authState: '/internal/auth',
  subscriptions: '/subscriptions',
  subscription: '/subscriptions/:subscription',
  subscriptionPause: '/subscriptions/:subscription/pause',
  subscriptionResume: '/subscriptions/:subscription/resume',
  subscriptionsState: '/internal/subscriptions',
} as const;

export const BROKER_ROUTES = {
  health: '/health',
  ready: '/ready',
  metrics: '/metrics',
  openapi: '/openapi.json',
  /** One partition's records as JSON, for curl users (converted to a batch at the edge). */
  produce: '/topics/:topic/partitions/:partition/records',
  /** Record batches of many partitions in one frame (`batch/frame.ts`): the clients' produce. */
  produceBatches: '/produce',
  fetch: '/fetch',
  commit: '/commit',
  committedOffsets: '/offsets',
  /** Offsets by position: earliest, latest, or the first at or after a time. */
  listOffsets: '/list-offsets',
  /** The same for one partition, for curl users: `?at=earliest|latest|<epoch ms>`. */
  partitionOffsets: '/topics/:topic/partitions/:partition/offsets',
  /** The coordinator stores a group's offsets after a reset or a delete (fenced by a new generation). */
  adminGroupOffsets: '/internal/group-offsets',
  replicate: '/internal/replicate',
  metadataChanged: '/internal/metadata-changed',
  purge: '/internal/purge',
} as const;

/** Fills a route template: `routePath('/topics/:topic', {topic: 'a b'})` gives `/topics/a%20b`. */
export function routePath(template: string, params: Record<string, string | number> = {}): string {
  return template.replace(/:([A-Za-z]+)/g, (_match, name: string) => {
    const value = params[name];
    if (value === undefined) throw new Error(`route ${template} needs parameter ${name}`);
    return encodeURIComponent(String(value));
  });
}
