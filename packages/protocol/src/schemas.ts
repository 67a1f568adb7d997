/**
 * The wire format of every request body, as zod schemas, with the TypeScript types
 * inferred from them. Services validate every body with these at the edge, so
 * nothing invalid reaches storage; clients use the inferred types to build them.
 * Response bodies are plain interfaces in `wire.ts`.
 */
import { z } from 'zod';
import {
  GROUP_ID_PATTERN,
  MAX_FETCH_WAIT_MS,
  MAX_HEADERS_PER_RECORD,
  MAX_PARTITIONS,
  MAX_RECORDS_PER_REQUEST,
  TOPIC_NAME_PATTERN,
} from './limits.js';

const nonNegativeInt = z.number().int().nonnegative();
const brokerId = z.number().int().positive().max(1_000_000);

export const topicName = z
  .string()
  .regex(TOPIC_NAME_PATTERN, 'topic names are 1 to 200 characters of [A-Za-z0-9._-]')
  .refine((name) => name !== '.' && name !== '..', 'topic names "." and ".." are reserved');
export const groupId = z
  .string()
  .regex(GROUP_ID_PATTERN, 'group ids are 1 to 200 characters of [A-Za-z0-9._-]')
  .refine((name) => name !== '.' && name !== '..', 'group ids "." and ".." are reserved');
export const partitionNumber = z.number().int().nonnegative().max(MAX_PARTITIONS - 1);
/** Offsets and epochs stay within the integers a JavaScript number holds exactly. */
export const offset = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
export const epoch = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
export const brokerUrl = z.string().url().max(500);

export const headers = z
  .record(z.string().max(256), z.string().max(64 * 1024))
  .refine((h) => Object.keys(h).length <= MAX_HEADERS_PER_RECORD, `at most ${MAX_HEADERS_PER_RECORD} headers`);

/** A record as a producer sends it. The value is text; the value size limit is checked by the broker. */
export const recordInput = z.object({
  key: z.string().max(64 * 1024).nullish(),
  value: z.string(),
  headers: headers.nullish(),
  /** Milliseconds since the epoch; the broker stamps its own clock when absent. */
  timestamp: nonNegativeInt.optional(),
  /** How `value` is written: UTF-8 text (default) or base64 for bytes that are not text. */
  valueEncoding: z.enum(['utf8', 'base64']).optional(),
});
export type RecordInput = z.infer<typeof recordInput>;

export const topicConfig = z
  .object({
    /** 1 or 2: with 2, a produce is refused with NOT_ENOUGH_REPLICAS unless both replicas are in sync. */
    minInsyncReplicas: z.number().int().min(1).max(2).optional(),
    /** Batches whose newest record is older than this are deleted in the background; -1: no time limit. Absent: the cluster default. */
    retentionMs: z.number().int().min(-1).max(Number.MAX_SAFE_INTEGER).optional(),
    /** Each partition keeps at most about this many bytes (its oldest whole batches go); -1: no size limit. Absent: the cluster default. */
    retentionBytes: z.number().int().min(-1).max(Number.MAX_SAFE_INTEGER).optional(),
  })
  .strict();
export type TopicConfig = z.infer<typeof topicConfig>;

/** `PATCH /topics/:topic`: the settings to change (the others keep their values). */
export const alterTopicRequest = z
  .object({
    config: topicConfig
      .omit({ minInsyncReplicas: true })
      .refine((config) => Object.keys(config).length > 0, 'name at least one setting to change'),
  })
  .strict();
export type AlterTopicRequest = z.infer<typeof alterTopicRequest>;

// ---- coordinator: topics -------------------------------------------------------------

export const createTopicRequest = z
  .object({
    name: topicName,
    partitions: z.number().int().min(1).max(MAX_PARTITIONS),
    replicationFactor: z.number().int().min(1).max(2).default(2),
    config: topicConfig.default({}),
  })
  .strict();
export type CreateTopicRequest = z.input<typeof createTopicRequest>;

/** Routing produce through the coordinator: each record's key picks its partition unless `partition` is given. */
export const routedProduceRequest = z
  .object({
    records: z
      .array(recordInput.extend({ partition: partitionNumber.optional() }))
      .min(1)
      .max(MAX_RECORDS_PER_REQUEST),
  })
  .strict();
export type RoutedProduceRequest = z.infer<typeof routedProduceRequest>;

// ---- coordinator: brokers ------------------------------------------------------------

/**
 * `url` is where clients reach the broker; `internalUrl` (default: `url`) is where the
 * coordinator and the other brokers do, e.g. a container network alias, or a proxy in tests.
 */
export const registerBrokerRequest = z.object({ id: brokerId, url: brokerUrl, internalUrl: brokerUrl.optional() }).strict();
export type RegisterBrokerRequest = z.infer<typeof registerBrokerRequest>;

export const replicaReport = z
  .object({
    topic: topicName,
    partition: partitionNumber,
    epoch,
    leo: offset,
    hw: offset,
    role: z.enum(['primary', 'secondary']),
  })
  .strict();
export type ReplicaReport = z.infer<typeof replicaReport>;

// ---- push subscriptions (the rest is in subscriptions.ts) ---------------------------

export const SUBSCRIPTION_NAME_PATTERN = /^[A-Za-z0-9._-]{1,100}$/;
export const subscriptionName = z
  .string()
  .regex(SUBSCRIPTION_NAME_PATTERN, 'subscription names are 1 to 100 characters of [A-Za-z0-9._-]')
  .refine((name) => name !== '.' && name !== '..', 'subscription names "." and ".." are reserved');

/** What a broker reports per (subscription, partition) it delivers, in its heartbeat. */
export const subscriptionReport = z
  .object({
    name: subscriptionName,
    partition: z.number().int().nonnegative(),
    offset: z.number().int().nonnegative(),
    highWatermark: z.number().int().nonnegative(),
    attempts: z.number().int().nonnegative(),
    lastStatus: z.number().int().nullable(),
    lastError: z.string().max(500).nullable(),
    delivered: z.number().int().nonnegative(),
    deadLettered: z.number().int().nonnegative(),
  })
  .strict();
export type SubscriptionReport = z.infer<typeof subscriptionReport>;

export const brokerHeartbeatRequest = z
  .object({
    id: brokerId,
    url: brokerUrl,
    internalUrl: brokerUrl.optional(),
    replicas: z.array(replicaReport).max(100_000),
    /** Progress of every subscription partition this broker delivers (push subscriptions). */
    subscriptions: z.array(subscriptionReport).max(100_000).optional(),
  })
  .strict();
export type BrokerHeartbeatRequest = z.infer<typeof brokerHeartbeatRequest>;

/**
 * A primary asks the coordinator to change a partition's ISR: shrink to itself when the
 * secondary cannot be reached, expand when the secondary has caught up. Refused with
 * STALE_EPOCH when `epoch` is not the partition's current epoch, NOT_PRIMARY when the
 * sender is not its primary, and an expansion with STALE_ASSIGNMENT when `version` is not
 * the assignment's current version (unless the ISR asked for is already the ISR).
 */
export const isrChangeRequest = z
  .object({
    brokerId,
    topic: topicName,
    partition: partitionNumber,
    epoch,
    isr: z.array(brokerId).min(1).max(2),
    /** The assignment version the primary decided on (absent from a broker of an earlier release). */
    version: offset.optional(),
  })
  .strict();
export type IsrChangeRequest = z.infer<typeof isrChangeRequest>;

/**
 * The primary tells the coordinator that the replica being added to a partition (`target`,
 * the assignment's `adding`) has caught up to the primary's log end: the coordinator makes it
 * the secondary with ISR [primary, target] in one step and drops the old secondary. Refused
 * with STALE_EPOCH / NOT_PRIMARY like an ISR change, INVALID_REQUEST when `target` is not
 * being added any more, STALE_ASSIGNMENT when `version` is not the assignment's current one.
 * Idempotent: asking again after the swap answers the same assignment.
 */
export const reassignCompleteRequest = z
  .object({
    brokerId,
    topic: topicName,
    partition: partitionNumber,
    epoch,
    target: brokerId,
    /** The assignment version the primary decided on (absent from a broker of an earlier release). */
    version: offset.optional(),
  })
  .strict();
export type ReassignCompleteRequest = z.infer<typeof reassignCompleteRequest>;

/** A broker id in a route (`/brokers/:id/drain`), as text. */
export const brokerIdParam = z
  .string()
  .regex(/^[1-9][0-9]{0,6}$/, 'a broker id is a positive integer')
  .transform(Number)
  .pipe(brokerId);

// ---- coordinator: consumer groups ----------------------------------------------------

export const joinGroupRequest = z
  .object({
    topic: topicName,
    /** Omit on first join; send the id you were given to rejoin. */
    memberId: z.string().min(1).max(200).optional(),
    /** Client-chosen name shown in group listings. */
    clientId: z.string().max(200).optional(),
    sessionTimeoutMs: z.number().int().min(100).max(300_000).optional(),
  })
  .strict();
export type JoinGroupRequest = z.infer<typeof joinGroupRequest>;

/**
 * A member's heartbeat also acknowledges the generation whose assignment it has applied
 * (stopped fetching what it lost, committed what it processed). Partitions move to their
 * next owner only after the previous owner acknowledged losing them, so two members never
 * process one partition at the same time.
 */
export const groupHeartbeatRequest = z.object({ memberId: z.string().min(1).max(200), generation: epoch }).strict();
export type GroupHeartbeatRequest = z.infer<typeof groupHeartbeatRequest>;

export const leaveGroupRequest = z.object({ memberId: z.string().min(1).max(200) }).strict();
export type LeaveGroupRequest = z.infer<typeof leaveGroupRequest>;

// ---- broker: produce, fetch, commit --------------------------------------------------

/** Produce to one partition on its primary: `POST /topics/:topic/partitions/:partition/records`. */
export const produceRequest = z
  .object({ records: z.array(recordInput).min(1).max(MAX_RECORDS_PER_REQUEST) })
  .strict();
export type ProduceRequest = z.infer<typeof produceRequest>;

export const partitionRef = z.object({ topic: topicName, partition: partitionNumber }).strict();
export type PartitionRef = z.infer<typeof partitionRef>;

/**
 * The partition's epoch in the caller's cluster map (optional). A broker whose own epoch of the
 * partition is older has not heard of the caller's map yet: it answers UNKNOWN_EPOCH (retriable)
 * and fetches the map, rather than serve a replica it may be about to lose or drop.
 */
const knownEpoch = epoch.optional();
/** A partition named by a data-path call, with the epoch of the caller's map. */
export const partitionAtEpoch = partitionRef.extend({ epoch: knownEpoch }).strict();
export type PartitionAtEpoch = z.infer<typeof partitionAtEpoch>;

/**
 * `POST /internal/purge` (coordinator to a primary): the partition's log start moves to its HW.
 * `epoch`: the partition's epoch in the coordinator's map (a broker behind it refuses the purge).
 */
export const purgePartitionRequest = partitionAtEpoch;
export type PurgePartitionRequest = PartitionAtEpoch;

/** Fetch from several partitions led by one broker; waits up to `waitMs` when none has records. */
export const fetchRequest = z
  .object({
    partitions: z
      .array(partitionAtEpoch.extend({ offset }).strict())
      .min(1)
      .max(MAX_PARTITIONS),
    maxRecords: z.number().int().min(1).max(100_000).optional(),
    maxBytes: z.number().int().min(1).max(64 * 1024 * 1024).optional(),
    waitMs: z.number().int().min(0).max(MAX_FETCH_WAIT_MS).optional(),
  })
  .strict();
export type FetchRequest = z.infer<typeof fetchRequest>;

/** Commit a group's next offsets to read; `generation` is the group generation the member holds. */
export const commitRequest = z
  .object({
    group: groupId,
    generation: epoch,
    memberId: z.string().min(1).max(200).optional(),
    offsets: z
      .array(partitionAtEpoch.extend({ offset }).strict())
      .min(1)
      .max(MAX_PARTITIONS),
  })
  .strict();
export type CommitRequest = z.infer<typeof commitRequest>;

export const committedOffsetsRequest = z
  .object({ group: groupId, partitions: z.array(partitionAtEpoch).min(1).max(MAX_PARTITIONS) })
  .strict();
export type CommittedOffsetsRequest = z.infer<typeof committedOffsetsRequest>;

// Broker-to-broker replication exchanges: `replication.ts`.

// ---- frames: heads of the binary data plane (`batch/frame.ts`) ------------------------

/** Bytes of one frame part (the tail's real size is checked against the sum by `splitTail`). */
const partBytes = z.number().int().nonnegative().max(2 ** 31 - 1);

/**
 * `POST /produce` on a broker: per partition, `bytes` of whole RecordBatches in the tail,
 * in the order listed. A partition appears at most once.
 */
export const produceFrameHead = z
  .object({
    partitions: z
      .array(partitionAtEpoch.extend({ bytes: partBytes.min(1) }).strict())
      .min(1)
      .max(MAX_PARTITIONS * 16)
      .refine(
        (partitions) => new Set(partitions.map((p) => `${p.topic}\u0000${p.partition}`)).size === partitions.length,
        'each partition appears at most once',
      ),
  })
  .strict();
export type ProduceFrameHead = z.infer<typeof produceFrameHead>;

const errorBody = z
  .object({ code: z.string(), message: z.string(), retriable: z.boolean() })
  .passthrough();

/** `POST /fetch` answered as a frame: per partition, `bytes` of whole stored batches in the tail. */
export const fetchFrameHead = z
  .object({
    partitions: z
      .array(
        partitionRef
          .extend({
            highWatermark: offset,
            logStartOffset: offset,
            bytes: partBytes,
            error: errorBody.optional(),
          })
          .strict(),
      )
      .max(MAX_PARTITIONS * 16),
  })
  .strict();
export type FetchFrameHead = z.infer<typeof fetchFrameHead>;
