/**
 * Every SQL statement of the coordinator, in one module: the schema (migrations by
 * version, tracked in `PRAGMA user_version`), loading the whole state at start, and
 * the writes each change makes. Every change is written before it is answered.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { isStorageFull, sqliteFreePageBytes } from '@tessera/service';
import type { AclEntry } from '@tessera/protocol';
import type { ClusterEvent, GroupState, MemberState, MoveReason, MoveState, PartitionState, TopicState } from '../model.js';

/** The `meta` key of the next producer id to hand out (the lowest, if the clock's floor is not higher). */
const NEXT_PRODUCER_ID = 'next_producer_id';
/**
 * How fast the floor of the next producer id rises with the wall clock: ids per millisecond
 * since the Unix epoch (about 1.8e14 in 2026). 1,000 would reach PRODUCER_ID_LIMIT in 2112; 100
 * reaches it in 3397, and still outruns any rate a coordinator hands ids out at.
 */
const PRODUCER_IDS_PER_MS = 100;
/** Ids from 2^52 are the brokers' ids of idempotency keys (`KEYED_PRODUCER_ID_BASE`). */
const PRODUCER_ID_LIMIT = 2 ** 52;
/** The `meta` key of the lowest epoch a new topic may start at: above every epoch of a deleted topic. */
const TOPIC_EPOCH_FLOOR = 'topic_epoch_floor';

/** Migration N (index N-1) brings the schema from version N-1 to N. Never edit one that shipped; append. */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE brokers (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    alive INTEGER NOT NULL
  );
  CREATE TABLE topics (
    name TEXT PRIMARY KEY,
    replication_factor INTEGER NOT NULL,
    config TEXT NOT NULL,
    created_ms INTEGER NOT NULL
  );
  CREATE TABLE partitions (
    topic TEXT NOT NULL REFERENCES topics(name) ON DELETE CASCADE,
    partition INTEGER NOT NULL,
    primary_id INTEGER,
    secondary_id INTEGER,
    epoch INTEGER NOT NULL,
    isr TEXT NOT NULL,
    last_isr TEXT NOT NULL,
    PRIMARY KEY (topic, partition)
  );
  CREATE TABLE groups (
    group_id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    generation INTEGER NOT NULL,
    owner TEXT NOT NULL,
    target TEXT NOT NULL
  );
  CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES groups(group_id) ON DELETE CASCADE,
    member_id TEXT NOT NULL,
    client_id TEXT,
    session_timeout_ms INTEGER NOT NULL,
    acked_generation INTEGER NOT NULL,
    PRIMARY KEY (group_id, member_id)
  );
  CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms INTEGER NOT NULL,
    type TEXT NOT NULL,
    details TEXT NOT NULL
  );
  `,
  // 2: a broker may be reached by the coordinator and its peers at another address than by clients.
  `ALTER TABLE brokers ADD COLUMN internal_url TEXT;`,
  // 3: rebalancing: the replica being added to a partition, drained brokers, moves in progress.
  `
  ALTER TABLE partitions ADD COLUMN adding INTEGER;
  ALTER TABLE brokers ADD COLUMN draining INTEGER NOT NULL DEFAULT 0;
  CREATE TABLE moves (
    topic TEXT NOT NULL REFERENCES topics(name) ON DELETE CASCADE,
    partition INTEGER NOT NULL,
    target_primary INTEGER NOT NULL,
    target_secondary INTEGER,
    reason TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
  );
  `,
  // 4: client authentication and authorization: principals with hashed secrets, and ACLs.
  `
  CREATE TABLE principals (
    name TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    credential TEXT NOT NULL,
    created_ms INTEGER NOT NULL
  );
  CREATE TABLE acls (
    principal TEXT NOT NULL,
    resource TEXT NOT NULL,
    name TEXT NOT NULL,
    prefix INTEGER NOT NULL,
    operation TEXT NOT NULL,
    PRIMARY KEY (principal, resource, name, prefix, operation)
  );
  `,
  // 5: push subscriptions: each is a consumer group delivered by the partitions' primaries.
  `
  CREATE TABLE subscriptions (
    name TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    config TEXT NOT NULL,
    secret TEXT NOT NULL,
    state TEXT NOT NULL,
    group_id TEXT NOT NULL,
    start_offsets TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL
  );
  `,
  // 6: a topic made again under a deleted one's name starts above that one's epochs, every
  // change of a partition's assignment is counted (ISR changes are fenced by that count), a
  // group remembers since when it has been empty (empty groups expire), and a subscription
  // delivers only while its creator may read its topic: what kind of caller created it, and
  // whether it is suspended. `created_by` held a principal's name, or `member` / `anonymous` for
  // a caller without one, and cannot tell them from principals of those names: an existing row
  // is taken as its principal's, except `anonymous` when no such principal exists (it was
  // created with authentication off). Both fail closed: a subscription a cluster member created
  // is followed as the principal `member`'s. Whether each is suspended is worked out at the
  // coordinator's start.
  `
  ALTER TABLE topics ADD COLUMN first_epoch INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE partitions ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE groups ADD COLUMN empty_since_ms INTEGER;
  ALTER TABLE subscriptions ADD COLUMN creator_kind TEXT NOT NULL DEFAULT 'principal';
  UPDATE subscriptions SET creator_kind = 'anonymous' WHERE created_by = 'anonymous' AND created_by NOT IN (SELECT name FROM principals);
  ALTER TABLE subscriptions ADD COLUMN suspended_reason TEXT;
  ALTER TABLE subscriptions ADD COLUMN suspended_ms INTEGER;
  `,
];

/** The event log keeps this many newest rows. */
const MAX_EVENTS = 10_000;

export interface LoadedState {
  version: number;
  brokers: Array<{ id: number; url: string; internalUrl: string; alive: boolean; draining: boolean }>;
  topics: TopicState[];
  moves: MoveState[];
  /** A rebalance was asked for (broker joined or drained) and has not finished yet. */
  rebalanceRequested: boolean;
  groups: Array<Omit<GroupState, 'members'> & { members: Array<Omit<MemberState, 'lastHeartbeatMs'>> }>;
}

/** A principal as stored: its secret only as a scrypt hash (`secrets.ts`). */
export interface PrincipalRow {
  name: string;
  secret_hash: string;
  /** Changes with the secret; tokens name it, so tokens of an old secret are refused. */
  credential: string;
  created_ms: number;
}

/** Who created a subscription: a principal (named by `created_by`), a cluster member, or an anonymous caller (authentication off). */
export type CreatorKind = 'principal' | 'member' | 'anonymous';

/** A push subscription as stored: `config` is JSON of its delivery settings, `start_offsets` of {partition: offset}. */
export interface SubscriptionRow {
  name: string;
  topic: string;
  config: string;
  secret: string;
  state: string;
  group_id: string;
  start_offsets: string;
  created_ms: number;
  created_by: string;
  creator_kind: CreatorKind;
  /** Why it is suspended (its creator's access does not cover it), null while it is not. */
  suspended_reason: string | null;
  /** Wall clock when the suspension began, null while it is not suspended. */
  suspended_ms: number | null;
}

interface PartitionRow {
  topic: string;
  partition: number;
  primary_id: number | null;
  secondary_id: number | null;
  epoch: number;
  isr: string;
  last_isr: string;
  adding: number | null;
  version: number;
}

export class Store {
  private readonly db: Database.Database;
  private readonly statements;

  constructor(dataDir: string) {
    // The database holds the token signing key and the principals' secret hashes: only the
    // coordinator's user may read it (SQLite gives its -wal and -shm files the database's mode).
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const file = path.join(dataDir, 'coordinator.db');
    this.db = new Database(file);
    for (const name of [file, `${file}-wal`, `${file}-shm`]) if (fs.existsSync(name)) fs.chmodSync(name, 0o600);
    this.db.pragma('journal_mode = WAL');
    // The control plane writes little and must not forget a failover: sync every commit.
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.migrate();
    const db = this.db;
    this.statements = {
      getMeta: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
      setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
      allBrokers: db.prepare<[], { id: number; url: string; internal_url: string | null; alive: number; draining: number }>(
        'SELECT id, url, internal_url, alive, draining FROM brokers ORDER BY id',
      ),
      upsertBroker: db.prepare(
        `INSERT INTO brokers (id, url, internal_url, alive, draining) VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET
           url = excluded.url, internal_url = excluded.internal_url, alive = excluded.alive, draining = excluded.draining`,
      ),
      allTopics: db.prepare<[], { name: string; replication_factor: number; config: string; created_ms: number; first_epoch: number }>(
        'SELECT name, replication_factor, config, created_ms, first_epoch FROM topics ORDER BY name',
      ),
      allPartitions: db.prepare<[], PartitionRow>('SELECT * FROM partitions ORDER BY topic, partition'),
      insertTopic: db.prepare('INSERT INTO topics (name, replication_factor, config, created_ms, first_epoch) VALUES (?, ?, ?, ?, ?)'),
      updateTopicConfig: db.prepare('UPDATE topics SET config = ? WHERE name = ?'),
      deleteTopic: db.prepare('DELETE FROM topics WHERE name = ?'),
      upsertPartition: db.prepare(
        `INSERT INTO partitions (topic, partition, primary_id, secondary_id, epoch, isr, last_isr, adding, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(topic, partition) DO UPDATE SET primary_id = excluded.primary_id, secondary_id = excluded.secondary_id,
           epoch = excluded.epoch, isr = excluded.isr, last_isr = excluded.last_isr, adding = excluded.adding, version = excluded.version`,
      ),
      allMoves: db.prepare<
        [],
        { topic: string; partition: number; target_primary: number; target_secondary: number | null; reason: string; started_ms: number }
      >('SELECT * FROM moves ORDER BY started_ms, topic, partition'),
      upsertMove: db.prepare(
        `INSERT INTO moves (topic, partition, target_primary, target_secondary, reason, started_ms) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(topic, partition) DO UPDATE SET target_primary = excluded.target_primary,
           target_secondary = excluded.target_secondary, reason = excluded.reason, started_ms = excluded.started_ms`,
      ),
      deleteMove: db.prepare('DELETE FROM moves WHERE topic = ? AND partition = ?'),
      allGroups: db.prepare<[], { group_id: string; topic: string; generation: number; owner: string; target: string; empty_since_ms: number | null }>(
        'SELECT group_id, topic, generation, owner, target, empty_since_ms FROM groups ORDER BY group_id',
      ),
      allMembers: db.prepare<
        [],
        { group_id: string; member_id: string; client_id: string | null; session_timeout_ms: number; acked_generation: number }
      >('SELECT * FROM group_members ORDER BY group_id, member_id'),
      upsertGroup: db.prepare(
        `INSERT INTO groups (group_id, topic, generation, owner, target, empty_since_ms) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(group_id) DO UPDATE SET topic = excluded.topic, generation = excluded.generation,
           owner = excluded.owner, target = excluded.target, empty_since_ms = excluded.empty_since_ms`,
      ),
      deleteMembersOfGroup: db.prepare('DELETE FROM group_members WHERE group_id = ?'),
      deleteGroup: db.prepare('DELETE FROM groups WHERE group_id = ?'),
      insertMember: db.prepare(
        'INSERT INTO group_members (group_id, member_id, client_id, session_timeout_ms, acked_generation) VALUES (?, ?, ?, ?, ?)',
      ),
      allPrincipals: db.prepare<[], PrincipalRow>('SELECT name, secret_hash, credential, created_ms FROM principals ORDER BY name'),
      upsertPrincipal: db.prepare(
        `INSERT INTO principals (name, secret_hash, credential, created_ms) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET
           secret_hash = excluded.secret_hash, credential = excluded.credential`,
      ),
      deletePrincipal: db.prepare('DELETE FROM principals WHERE name = ?'),
      allAcls: db.prepare<[], { principal: string; resource: string; name: string; prefix: number; operation: string }>(
        'SELECT principal, resource, name, prefix, operation FROM acls ORDER BY principal, resource, name, prefix, operation',
      ),
      insertAcl: db.prepare('INSERT OR IGNORE INTO acls (principal, resource, name, prefix, operation) VALUES (?, ?, ?, ?, ?)'),
      deleteAcl: db.prepare('DELETE FROM acls WHERE principal = ? AND resource = ? AND name = ? AND prefix = ? AND operation = ?'),
      allSubscriptions: db.prepare<[], SubscriptionRow>('SELECT * FROM subscriptions ORDER BY name'),
      upsertSubscription: db.prepare(
        `INSERT INTO subscriptions (name, topic, config, secret, state, group_id, start_offsets, created_ms, created_by, creator_kind, suspended_reason, suspended_ms)
         VALUES (@name, @topic, @config, @secret, @state, @group_id, @start_offsets, @created_ms, @created_by, @creator_kind, @suspended_reason, @suspended_ms)
         ON CONFLICT(name) DO UPDATE SET config = excluded.config, state = excluded.state,
           suspended_reason = excluded.suspended_reason, suspended_ms = excluded.suspended_ms`,
      ),
      deleteSubscription: db.prepare('DELETE FROM subscriptions WHERE name = ?'),
      insertEvent: db.prepare('INSERT INTO events (time_ms, type, details) VALUES (?, ?, ?)'),
      trimEvents: db.prepare('DELETE FROM events WHERE id <= ?'),
      latestEvents: db.prepare<[number], { id: number; time_ms: number; type: string; details: string }>(
        'SELECT id, time_ms, type, details FROM events ORDER BY id DESC LIMIT ?',
      ),
    };
  }

  private migrate(): void {
    const current = this.db.pragma('user_version', { simple: true }) as number;
    if (current > MIGRATIONS.length) {
      throw new Error(`coordinator.db has schema version ${current}, newer than this coordinator knows (${MIGRATIONS.length})`);
    }
    for (let version = current; version < MIGRATIONS.length; version++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[version]);
        this.db.pragma(`user_version = ${version + 1}`);
      })();
    }
  }

  /** Runs `fn` in one SQLite transaction: all of a change is stored, or none of it. */
  transaction<T>(fn: () => T): T {
    const run = this.db.transaction(fn);
    // A nested transaction is a savepoint: the outermost one handles a full disk.
    if (this.db.inTransaction) return run();
    try {
      try {
        return run();
      } catch (error) {
        // The disk filled: release the storage reserve and run the same change once more (it was
        // rolled back). This is what lets a topic be deleted on a full disk.
        if (!isStorageFull(error) || this.onFull?.() !== true) throw error;
        return run();
      }
    } catch (error) {
      if (error instanceof Database.SqliteError) this.onWriteFailed(error);
      throw error;
    }
  }

  /**
   * Called when a transaction could not be stored (SQLite refused it; what `fn` throws itself is
   * the caller's). The cluster's state in memory may already hold the change, so the coordinator
   * stops rather than answer from a state a restart would not load (`startCoordinator` sets it).
   */
  onWriteFailed: (error: Error) => void = () => undefined;

  /**
   * Called when a transaction failed with SQLITE_FULL; true when it freed space (the storage
   * reserve), and the transaction is run once more.
   */
  onFull: (() => boolean) | undefined;

  /** Bytes of free pages in the database: space deleted rows left, which new rows reuse. */
  freePageBytes(): number {
    return this.db.open ? sqliteFreePageBytes(this.db) : 0;
  }

  loadAll(): LoadedState {
    const version = Number(this.statements.getMeta.get('version')?.value ?? 0);
    const brokers = this.statements.allBrokers
      .all()
      .map((row) => ({
        id: row.id,
        url: row.url,
        internalUrl: row.internal_url ?? row.url,
        alive: row.alive === 1,
        draining: row.draining === 1,
      }));
    const partitionsByTopic = new Map<string, PartitionState[]>();
    for (const row of this.statements.allPartitions.all()) {
      const list = partitionsByTopic.get(row.topic) ?? [];
      list.push({
        partition: row.partition,
        primary: row.primary_id,
        secondary: row.secondary_id,
        epoch: row.epoch,
        isr: JSON.parse(row.isr) as number[],
        lastIsr: JSON.parse(row.last_isr) as number[],
        ...(row.adding === null ? {} : { adding: row.adding }),
        version: row.version,
      });
      partitionsByTopic.set(row.topic, list);
    }
    const topics = this.statements.allTopics.all().map((row): TopicState => {
      const partitions = partitionsByTopic.get(row.name) ?? [];
      partitions.forEach((p, index) => {
        if (p.partition !== index) throw new Error(`coordinator.db: topic ${row.name} misses partition ${index}`);
      });
      return {
        name: row.name,
        replicationFactor: row.replication_factor,
        config: JSON.parse(row.config) as TopicState['config'],
        createdMs: row.created_ms,
        firstEpoch: row.first_epoch,
        partitions,
      };
    });
    const membersByGroup = new Map<string, Array<Omit<MemberState, 'lastHeartbeatMs'>>>();
    for (const row of this.statements.allMembers.all()) {
      const list = membersByGroup.get(row.group_id) ?? [];
      list.push({
        memberId: row.member_id,
        clientId: row.client_id,
        sessionTimeoutMs: row.session_timeout_ms,
        ackedGeneration: row.acked_generation,
      });
      membersByGroup.set(row.group_id, list);
    }
    const groups = this.statements.allGroups.all().map((row) => ({
      group: row.group_id,
      topic: row.topic,
      generation: row.generation,
      owner: JSON.parse(row.owner) as Array<string | null>,
      target: JSON.parse(row.target) as Array<string | null>,
      emptySinceMs: row.empty_since_ms,
      members: membersByGroup.get(row.group_id) ?? [],
    }));
    const moves = this.statements.allMoves.all().map(
      (row): MoveState => ({
        topic: row.topic,
        partition: row.partition,
        targetPrimary: row.target_primary,
        targetSecondary: row.target_secondary,
        reason: row.reason as MoveReason,
        startedMs: row.started_ms,
      }),
    );
    const rebalanceRequested = this.statements.getMeta.get('rebalance_requested')?.value === '1';
    return { version, brokers, topics, groups, moves, rebalanceRequested };
  }

  saveVersion(version: number): void {
    this.statements.setMeta.run('version', String(version));
  }

  saveBroker(broker: { id: number; url: string; internalUrl: string; alive: boolean; draining?: boolean }): void {
    this.statements.upsertBroker.run(broker.id, broker.url, broker.internalUrl, broker.alive ? 1 : 0, broker.draining ? 1 : 0);
  }

  saveMove(move: MoveState): void {
    this.statements.upsertMove.run(move.topic, move.partition, move.targetPrimary, move.targetSecondary, move.reason, move.startedMs);
  }

  deleteMove(topic: string, partition: number): void {
    this.statements.deleteMove.run(topic, partition);
  }

  saveRebalanceRequested(requested: boolean): void {
    this.statements.setMeta.run('rebalance_requested', requested ? '1' : '0');
  }

  insertTopic(topic: TopicState): void {
    this.statements.insertTopic.run(topic.name, topic.replicationFactor, JSON.stringify(topic.config), topic.createdMs, topic.firstEpoch);
    for (const partition of topic.partitions) this.savePartition(topic.name, partition);
  }

  saveTopicConfig(name: string, config: TopicState['config']): void {
    this.statements.updateTopicConfig.run(JSON.stringify(config), name);
  }

  /**
   * Deletes the topic and, by cascade, its partitions, and raises the epoch floor above its
   * epochs: a topic made later under the same name starts there (see `topicEpochFloor`).
   */
  deleteTopic(topic: TopicState): void {
    const above = Math.max(topic.firstEpoch, ...topic.partitions.map((p) => p.epoch)) + 1;
    if (above > this.topicEpochFloor()) this.statements.setMeta.run(TOPIC_EPOCH_FLOOR, String(above));
    this.statements.deleteTopic.run(topic.name);
  }

  /**
   * The epoch a new topic's partitions start at: above every epoch any deleted topic had. A
   * broker that missed a deletion can so tell its old replica (written at lower epochs) from
   * one of the new topic of the same name.
   */
  topicEpochFloor(): number {
    const floor = Number(this.statements.getMeta.get(TOPIC_EPOCH_FLOOR)?.value ?? 0);
    if (!Number.isSafeInteger(floor) || floor < 0) throw new Error(`coordinator.db: meta ${TOPIC_EPOCH_FLOOR} is ${floor}, not an epoch`);
    return floor;
  }

  savePartition(topic: string, p: PartitionState): void {
    this.statements.upsertPartition.run(
      topic,
      p.partition,
      p.primary,
      p.secondary,
      p.epoch,
      JSON.stringify(p.isr),
      JSON.stringify(p.lastIsr),
      p.adding ?? null,
      p.version,
    );
  }

  /** Writes the group row and replaces its member rows (groups are small: at most a few hundred members). */
  saveGroup(group: GroupState): void {
    this.transaction(() => {
      this.statements.upsertGroup.run(
        group.group,
        group.topic,
        group.generation,
        JSON.stringify(group.owner),
        JSON.stringify(group.target),
        group.emptySinceMs,
      );
      this.statements.deleteMembersOfGroup.run(group.group);
      for (const m of group.members.values()) {
        this.statements.insertMember.run(group.group, m.memberId, m.clientId, m.sessionTimeoutMs, m.ackedGeneration);
      }
    });
  }

  /**
   * A new producer id for an idempotent producer: the larger of a counter kept in `meta` and a
   * floor that rises with the wall clock (`wallMs` × PRODUCER_IDS_PER_MS), persisted as the next
   * id before it is answered. The counter alone makes ids strictly increasing and never handed
   * out twice, across restarts and a clock set back; the floor keeps them unique after
   * `coordinator.db` is restored from a backup, whose counter is behind ids brokers may still
   * hold producer state for: an id handed out before is below the floor of a later millisecond
   * as long as ids were not handed out faster than PRODUCER_IDS_PER_MS per millisecond (each is
   * a commit synced to disk: thousands per second at most) and the clock was not set back
   * (docs/architecture.md, "Producer ids").
   */
  allocateProducerId(wallMs: number): number {
    return this.transaction(() => {
      const next = Number(this.statements.getMeta.get(NEXT_PRODUCER_ID)?.value ?? 0);
      if (!Number.isSafeInteger(next) || next < 0 || next >= PRODUCER_ID_LIMIT) {
        throw new Error(`coordinator.db: meta ${NEXT_PRODUCER_ID} is ${next}, not a producer id`);
      }
      const id = Math.max(next, Math.floor(wallMs) * PRODUCER_IDS_PER_MS);
      // Reached only with a clock past the year 3397: refused rather than handing out an id of an idempotency key.
      if (!(id < PRODUCER_ID_LIMIT)) throw new Error(`no producer id left below 2^52 at wall clock ${wallMs} ms (next id ${next})`);
      this.statements.setMeta.run(NEXT_PRODUCER_ID, String(id + 1));
      return id;
    });
  }

  /** Deletes a group and, by cascade, its member rows. */
  deleteGroup(groupId: string): void {
    this.statements.deleteGroup.run(groupId);
  }

  getMeta(key: string): string | undefined {
    return this.statements.getMeta.get(key)?.value;
  }

  setMeta(key: string, value: string): void {
    this.statements.setMeta.run(key, value);
  }

  principals(): PrincipalRow[] {
    return this.statements.allPrincipals.all();
  }

  savePrincipal(row: PrincipalRow): void {
    this.statements.upsertPrincipal.run(row.name, row.secret_hash, row.credential, row.created_ms);
  }

  /** True when the principal existed. */
  deletePrincipal(name: string): boolean {
    return this.statements.deletePrincipal.run(name).changes > 0;
  }

  acls(): AclEntry[] {
    return this.statements.allAcls.all().map((row) => ({
      principal: row.principal,
      resource: row.resource as AclEntry['resource'],
      name: row.name,
      prefix: row.prefix === 1,
      operation: row.operation as AclEntry['operation'],
    }));
  }

  /** True when the entry is new. */
  addAcl(acl: AclEntry): boolean {
    return this.statements.insertAcl.run(acl.principal, acl.resource, acl.name, acl.prefix ? 1 : 0, acl.operation).changes > 0;
  }

  /** True when the entry existed. */
  removeAcl(acl: AclEntry): boolean {
    return this.statements.deleteAcl.run(acl.principal, acl.resource, acl.name, acl.prefix ? 1 : 0, acl.operation).changes > 0;
  }

  subscriptions(): SubscriptionRow[] {
    return this.statements.allSubscriptions.all();
  }

  saveSubscription(row: SubscriptionRow): void {
    this.statements.upsertSubscription.run(row);
  }

  deleteSubscription(name: string): boolean {
    return this.statements.deleteSubscription.run(name).changes > 0;
  }

  appendEvent(timeMs: number, type: string, details: Record<string, unknown>): number {
    const id = Number(this.statements.insertEvent.run(timeMs, type, JSON.stringify(details)).lastInsertRowid);
    // Bounded log: trim in steps so most inserts do not pay for a delete.
    if (id % 1_000 === 0 && id > MAX_EVENTS) this.statements.trimEvents.run(id - MAX_EVENTS);
    return id;
  }

  /** The newest `limit` events, oldest first. */
  latestEvents(limit: number): ClusterEvent[] {
    return this.statements.latestEvents
      .all(limit)
      .reverse()
      .map((row) => ({ ...(JSON.parse(row.details) as Record<string, unknown>), id: row.id, timeMs: row.time_ms, type: row.type }));
  }

  close(): void {
    this.db.close();
  }
}
