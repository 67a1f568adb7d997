/**
 * Push subscriptions: the request schemas, the wire types, the signature every delivery
 * carries (HMAC-SHA256 with node:crypto, verified the way receivers verify Stripe or GitHub
 * webhooks), the names of the dead-letter headers, and the policy of which addresses the
 * cluster may call on a subscriber's behalf.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { z } from 'zod';
import { TesseraError } from './errors.js';
import { subscriptionName, topicName } from './schemas.js';
import type { JsonRecordOutput } from './json-records.js';

export const SUBSCRIPTION_DEFAULTS = {
  backoffInitialMs: 500,
  backoffMaxMs: 60_000,
  maxInFlight: 16,
  timeoutMs: 10_000,
} as const;

/**
 * The group generation a push subscription's deliveries commit their progress at: the brokers
 * commit it on each partition directly, where no member generations apply.
 */
export const SUBSCRIPTION_DELIVERY_GENERATION = 0;

/**
 * The generation of the deletion mark (`DELETED_GROUP_OFFSET`) the coordinator stores on every
 * partition of a deleted subscription's topic for its group. It is newer than the deliveries',
 * and their commits count a mark's generation (`fencedByDeletion`), so a delivery loop still
 * stopping cannot store its progress over the mark.
 */
export const DELETED_SUBSCRIPTION_GENERATION = SUBSCRIPTION_DELIVERY_GENERATION + 1;

export const createSubscriptionRequest = z
  .object({
    name: subscriptionName,
    topic: topicName,
    /** Where each record is POSTed: http or https, no credentials in the URL. */
    url: z.string().url().max(2_000),
    /** Only records whose key starts with these UTF-8 bytes are delivered; the others are skipped (and count as done). */
    filterKeyPrefix: z.string().min(1).max(1_024).optional(),
    /** Attempts per record before it goes to the dead-letter topic; needs `deadLetterTopic` (without one, delivery retries forever). */
    maxAttempts: z.number().int().min(1).max(1_000).optional(),
    backoffInitialMs: z.number().int().min(1).max(600_000).default(SUBSCRIPTION_DEFAULTS.backoffInitialMs),
    backoffMaxMs: z.number().int().min(1).max(3_600_000).default(SUBSCRIPTION_DEFAULTS.backoffMaxMs),
    deadLetterTopic: topicName.optional(),
    /** Requests in flight at once for this subscription on one broker (one per partition at most: order). */
    maxInFlight: z.number().int().min(1).max(256).default(SUBSCRIPTION_DEFAULTS.maxInFlight),
    /** One attempt's deadline (connect, headers and body). */
    timeoutMs: z.number().int().min(100).max(120_000).default(SUBSCRIPTION_DEFAULTS.timeoutMs),
    /** Deliver the records already in the topic too (default: from the end at creation). */
    fromBeginning: z.boolean().default(false),
  })
  .strict()
  .refine((r) => r.maxAttempts === undefined || r.deadLetterTopic !== undefined, {
    message: 'maxAttempts needs a deadLetterTopic: without one a record is retried until it is delivered',
    path: ['maxAttempts'],
  })
  .refine((r) => r.backoffInitialMs <= r.backoffMaxMs, { message: 'backoffInitialMs must not exceed backoffMaxMs', path: ['backoffMaxMs'] })
  .refine((r) => r.deadLetterTopic !== r.topic, { message: 'the dead-letter topic must differ from the topic', path: ['deadLetterTopic'] });
export type CreateSubscriptionRequest = z.input<typeof createSubscriptionRequest>;
/** A create request once validated, defaults filled in. */
export type CreateSubscriptionInput = z.output<typeof createSubscriptionRequest>;

/** What pause and resume set; a subscription delivers while it is active and not suspended. */
export type SubscriptionState = 'active' | 'paused';

/**
 * Why a subscription does not deliver although nobody paused it: the principal that created it
 * may no longer read its topic (deleted, or an ACL removed), or no longer produce to its
 * dead-letter topic; or the target policy the coordinator started with refuses its URL. The
 * coordinator sets and clears it as principals and ACLs change, and at its start.
 */
export interface SubscriptionSuspension {
  reason: string;
  /** Wall clock (ms since the Unix epoch) when the suspension began. */
  sinceMs: number;
}

/** A subscription as clients see it (never its secret, which is shown once at creation). */
export interface Subscription {
  name: string;
  topic: string;
  url: string;
  filterKeyPrefix: string | null;
  /** null: retried until delivered. */
  maxAttempts: number | null;
  backoffInitialMs: number;
  backoffMaxMs: number;
  deadLetterTopic: string | null;
  maxInFlight: number;
  timeoutMs: number;
  state: SubscriptionState;
  /** Set while the creator's access or the target policy does not cover the subscription: nothing is delivered, whatever `state` says. */
  suspended: SubscriptionSuspension | null;
  /** The consumer group whose committed offsets are this subscription's progress. */
  group: string;
  createdMs: number;
  createdBy: string;
}

/** `POST /subscriptions`: the subscription and its signing secret, shown this once. */
export interface CreatedSubscription extends Subscription {
  secret: string;
}

/** One partition's delivery as its primary reports it. */
export interface SubscriptionPartitionStatus {
  partition: number;
  /** The broker delivering it (the partition's primary), null when none reported yet. */
  broker: number | null;
  /** The next offset to deliver (the group's committed offset), null before the first report. */
  offset: number | null;
  highWatermark: number | null;
  lag: number | null;
  /** Attempts made so far on the record being delivered (0 when idle). */
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  delivered: number;
  deadLettered: number;
}

/** `GET /subscriptions/:name`. */
export interface SubscriptionDescription extends Subscription {
  lag: number;
  partitions: SubscriptionPartitionStatus[];
}

export interface SubscriptionListResponse {
  subscriptions: Subscription[];
}

/** `GET /internal/subscriptions` (cluster members only): everything a broker needs to deliver. */
export interface SubscriptionsStateResponse {
  version: number;
  /** The target policy (`TargetPolicy`'s spec), so brokers enforce what the coordinator checked; a new one comes with a new version. */
  allowedTargets: string;
  /** Every subscription except the suspended ones (paused ones included: the brokers deliver the active ones). */
  subscriptions: Array<Subscription & { secret: string; startOffsets: Record<string, number> }>;
}

// ---- the delivery -----------------------------------------------------------------------

/** The JSON body of one delivery: one record (text, or base64 for all its bytes when any is not UTF-8). */
export interface DeliveryBody extends JsonRecordOutput {
  subscription: string;
  topic: string;
  partition: number;
  /** 1 for the first attempt. */
  attempt: number;
}

export const SIGNATURE_HEADER = 'tessera-signature';
export const SUBSCRIPTION_HEADER = 'tessera-subscription';

/**
 * `t=<ms since the epoch>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`: the timestamp is signed
 * with the body, so a receiver that refuses old timestamps also refuses replays.
 */
export function signDelivery(secret: string, body: string | Buffer, timestampMs: number = Date.now()): string {
  const mac = createHmac('sha256', secret).update(`${timestampMs}.`).update(body).digest('hex');
  return `t=${timestampMs},v1=${mac}`;
}

/** True when `header` signs `body` with `secret` and its timestamp is within `toleranceMs` of now. */
export function verifyDelivery(secret: string, body: string | Buffer, header: string, toleranceMs = 5 * 60_000, nowMs = Date.now()): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!match) return false;
  const timestampMs = Number(match[1]);
  if (Math.abs(nowMs - timestampMs) > toleranceMs) return false;
  const expected = Buffer.from(signDelivery(secret, body, timestampMs).slice(-64), 'hex');
  return timingSafeEqual(expected, Buffer.from(match[2]!, 'hex'));
}

// ---- dead letters -----------------------------------------------------------------------

/** Headers a dead-lettered record carries besides its own (the pull consumer's too). */
export const DEAD_LETTER_HEADERS = {
  topic: 'tessera-dlq-topic',
  partition: 'tessera-dlq-partition',
  offset: 'tessera-dlq-offset',
  attempts: 'tessera-dlq-attempts',
  lastStatus: 'tessera-dlq-last-status',
  error: 'tessera-dlq-error',
  subscription: 'tessera-dlq-subscription',
  group: 'tessera-dlq-group',
  timestamp: 'tessera-dlq-timestamp',
} as const;

export const DEAD_LETTER_HEADER_NAMES: ReadonlySet<string> = new Set(Object.values(DEAD_LETTER_HEADERS));

/** Why a record was dead-lettered: a push subscription gives `lastStatus` and `subscription`, a pull consumer `group`. */
export interface DeadLetterFields {
  topic: string;
  partition: number;
  offset: number;
  attempts: number;
  /** The error of the last attempt; the header holds its first 1,000 characters. */
  error: string;
  lastStatus?: number | null;
  subscription?: string;
  group?: string;
}

/** The `DEAD_LETTER_HEADERS` a dead-lettered record carries, by name (only the fields `reason` has; a null status is empty). */
export function deadLetterHeaders(reason: DeadLetterFields): Record<string, string> {
  const headers: Record<string, string> = {
    [DEAD_LETTER_HEADERS.topic]: reason.topic,
    [DEAD_LETTER_HEADERS.partition]: String(reason.partition),
    [DEAD_LETTER_HEADERS.offset]: String(reason.offset),
    [DEAD_LETTER_HEADERS.attempts]: String(reason.attempts),
  };
  if (reason.lastStatus !== undefined) headers[DEAD_LETTER_HEADERS.lastStatus] = String(reason.lastStatus ?? '');
  headers[DEAD_LETTER_HEADERS.error] = reason.error.slice(0, 1_000);
  if (reason.subscription !== undefined) headers[DEAD_LETTER_HEADERS.subscription] = reason.subscription;
  if (reason.group !== undefined) headers[DEAD_LETTER_HEADERS.group] = reason.group;
  headers[DEAD_LETTER_HEADERS.timestamp] = String(Date.now());
  return headers;
}

// ---- which addresses the cluster may call -----------------------------------------------

/** Every range that is not a public unicast address: loopback, private, link-local (cloud metadata), CGNAT, multicast... */
const NOT_PUBLIC: ReadonlyArray<[string, number, 'ipv4' | 'ipv6']> = [
  ['0.0.0.0', 8, 'ipv4'],
  ['10.0.0.0', 8, 'ipv4'],
  ['100.64.0.0', 10, 'ipv4'],
  ['127.0.0.0', 8, 'ipv4'],
  ['169.254.0.0', 16, 'ipv4'],
  ['172.16.0.0', 12, 'ipv4'],
  ['192.0.0.0', 24, 'ipv4'],
  ['192.168.0.0', 16, 'ipv4'],
  ['198.18.0.0', 15, 'ipv4'],
  ['224.0.0.0', 3, 'ipv4'],
  ['::', 128, 'ipv6'],
  ['::1', 128, 'ipv6'],
  ['fc00::', 7, 'ipv6'],
  ['fe80::', 10, 'ipv6'],
  ['ff00::', 8, 'ipv6'],
  ['64:ff9b::', 96, 'ipv6'],
];
/** `NOT_PUBLIC` as a BlockList, built once; only read (`check`) after this. */
const notPublic = new BlockList();
for (const [net, prefix, type] of NOT_PUBLIC) notPublic.addSubnet(net, prefix, type);
const LOOPBACK: ReadonlyArray<[string, number, 'ipv4' | 'ipv6']> = [
  ['127.0.0.0', 8, 'ipv4'],
  ['::1', 128, 'ipv6'],
];

/** What a `TargetPolicy` says of a URL; `checkUrl` refuses it with `url: ${reason}`. */
export type TargetVerdict = { allowed: true } | { allowed: false; reason: string; unresolved: boolean };

/** The default: public addresses only. Loopback and private ranges need to be listed. */
export const DEFAULT_ALLOWED_TARGETS = 'public';

/**
 * Which addresses subscriptions may target, from a comma-separated list of: `public` (any public
 * unicast address), `loopback`, a CIDR range (`10.1.0.0/16`, `fd00::/8`) or a host name (allowed
 * whatever it resolves to: the operator vouches for it).
 */
export class TargetPolicy {
  private readonly publicAllowed: boolean;
  private readonly ranges = new BlockList();
  private readonly hosts = new Set<string>();

  constructor(readonly spec: string) {
    let publicAllowed = false;
    for (const raw of spec.split(',')) {
      const entry = raw.trim().toLowerCase();
      if (entry === '') continue;
      if (entry === 'public') publicAllowed = true;
      else if (entry === 'loopback') for (const [net, prefix, type] of LOOPBACK) this.ranges.addSubnet(net, prefix, type);
      else if (entry.includes('/')) {
        const [net, bits] = entry.split('/');
        const type = isIP(net ?? '');
        const prefix = Number(bits);
        if (type === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > (type === 4 ? 32 : 128)) {
          throw new TesseraError('INVALID_REQUEST', `allowed targets: "${raw.trim()}" is not a CIDR range`);
        }
        this.ranges.addSubnet(net!, prefix, type === 4 ? 'ipv4' : 'ipv6');
      } else if (/^[a-z0-9.-]{1,253}$/.test(entry) || isIP(entry) !== 0) {
        if (isIP(entry) !== 0) this.ranges.addAddress(entry, isIP(entry) === 4 ? 'ipv4' : 'ipv6');
        else this.hosts.add(entry);
      } else {
        throw new TesseraError('INVALID_REQUEST', `allowed targets: "${raw.trim()}" is not public, loopback, a CIDR range or a host name`);
      }
    }
    this.publicAllowed = publicAllowed;
  }

  /** Whether an IP address may be called. */
  allowsAddress(address: string): boolean {
    const type = isIP(address);
    if (type === 0) return false;
    const family = type === 4 ? 'ipv4' : 'ipv6';
    // An IPv4-mapped IPv6 address is judged as the IPv4 address it is.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return this.allowsAddress(mapped[1]!);
    if (this.ranges.check(address, family)) return true;
    return this.publicAllowed && !notPublic.check(address, family);
  }

  allowsHostName(host: string): boolean {
    return this.hosts.has(host.toLowerCase());
  }

  /**
   * Throws INVALID_REQUEST unless `url` is http(s) without credentials and its host is listed or
   * resolves only to allowed addresses. Brokers check every connection again (`lookup` below),
   * since a name can resolve elsewhere later.
   */
  async checkUrl(url: string): Promise<void> {
    const verdict = await this.judgeUrl(url);
    if (!verdict.allowed) throw new TesseraError('INVALID_REQUEST', `url: ${verdict.reason}`);
  }

  /**
   * What the policy says of `url` now, as `checkUrl` judges it; `unresolved` when the only
   * reason is that its host resolves to nothing (which may pass: a DNS failure).
   */
  async judgeUrl(url: string): Promise<TargetVerdict> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return { allowed: false, reason: `${url} is not a URL`, unresolved: false };
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return { allowed: false, reason: 'only http and https URLs can be subscribed', unresolved: false };
    if (parsed.username !== '' || parsed.password !== '') {
      return { allowed: false, reason: 'credentials in the URL are refused; verify the signature instead', unresolved: false };
    }
    const host = parsed.hostname.replace(/^\[|\]$/g, '');
    if (this.allowsHostName(host)) return { allowed: true };
    const addresses = isIP(host) !== 0 ? [host] : await resolveAll(host);
    const refused = addresses.filter((address) => !this.allowsAddress(address));
    if (refused.length === 0 && addresses.length > 0) return { allowed: true };
    return {
      allowed: false,
      reason:
        `${host} ${isIP(host) !== 0 ? 'is' : `resolves to ${refused.join(', ') || 'nothing'}, which is`} not an allowed target ` +
        `(allowed: ${this.spec}; the operator sets --subscription-allowed-targets)`,
      unresolved: addresses.length === 0,
    };
  }

  /** A `lookup` for net.connect that resolves only to allowed addresses (or fails the connection). */
  lookup(): (hostname: string, options: object, callback: (error: Error | null, address: string | Array<{ address: string; family: number }>, family?: number) => void) => void {
    return (hostname, options, callback) => {
      const all = (options as { all?: boolean }).all === true;
      const listed = this.allowsHostName(hostname);
      resolveAll(hostname).then(
        (addresses) => {
          const allowed = listed ? addresses : addresses.filter((address) => this.allowsAddress(address));
          if (allowed.length === 0) {
            callback(new Error(`${hostname} resolves to no allowed target address (${addresses.join(', ') || 'nothing'})`), '', 4);
            return;
          }
          if (all) callback(null, allowed.map((address) => ({ address, family: isIP(address) })));
          else callback(null, allowed[0]!, isIP(allowed[0]!));
        },
        (error: Error) => callback(error, '', 4),
      );
    };
  }
}

async function resolveAll(host: string): Promise<string[]> {
  try {
    return (await lookup(host, { all: true })).map((entry) => entry.address);
  } catch {
    return [];
  }
}
