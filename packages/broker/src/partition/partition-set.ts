/** Every partition replica this broker holds, keyed by topic and partition, over the broker's one database. */
import type { BrokerStore } from '../storage/index.js';
import { Partition, type ReplicaOptions } from './partition.js';

/** What every partition shares (cluster link, replication client, limits...), and the database they live in. */
export type PartitionSetOptions = Omit<ReplicaOptions, 'topic' | 'partition' | 'store'> & { store: BrokerStore };

export function replicaKey(topic: string, partition: number): string {
  return `${topic}/${partition}`;
}

export class PartitionSet {
  private readonly replicas = new Map<string, Partition>();

  constructor(private readonly options: PartitionSetOptions) {}

  get(topic: string, partition: number): Partition | undefined {
    return this.replicas.get(replicaKey(topic, partition));
  }

  all(): Partition[] {
    return [...this.replicas.values()];
  }

  /** Opens the replica (its log lives in the broker's database; nothing is written until its first write). */
  open(topic: string, partition: number): Partition {
    const key = replicaKey(topic, partition);
    const existing = this.replicas.get(key);
    if (existing) return existing;
    const { store, ...shared } = this.options;
    const log = store.log(topic, partition);
    const replica = new Partition({ ...shared, topic, partition, store: log });
    this.replicas.set(key, replica);
    this.options.logger.debug({ topic, partition, leo: log.leo, hw: log.hwCheckpoint }, 'replica opened');
    return replica;
  }

  /** Closes the replica and deletes its log: this broker no longer holds it. */
  async drop(topic: string, partition: number): Promise<void> {
    const key = replicaKey(topic, partition);
    const replica = this.replicas.get(key);
    if (!replica) return;
    this.replicas.delete(key);
    await replica.close();
    await replica.store.destroy();
    this.options.logger.debug({ topic, partition }, 'replica dropped');
  }

  /** Deletes logs in the database that are neither open nor in `keep` (replicas given up while this broker was down). */
  async deleteOrphans(keep: Set<string>): Promise<void> {
    for (const found of this.options.store.partitions()) {
      const key = replicaKey(found.topic, found.partition);
      if (this.replicas.has(key) || keep.has(key)) continue;
      await this.options.store.log(found.topic, found.partition).destroy();
      this.options.logger.info({ topic: found.topic, partition: found.partition }, 'orphan replica deleted');
    }
  }

  async closeAll(): Promise<void> {
    const replicas = this.all();
    this.replicas.clear();
    await Promise.allSettled(replicas.map((replica) => replica.close()));
    await this.options.store.close();
  }
}
