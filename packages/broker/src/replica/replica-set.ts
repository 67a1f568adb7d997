/** Every partition replica this broker holds, keyed by topic and partition, with their databases on disk. */
import { PartitionStore, deletePartitionFiles, listPartitionFiles, partitionFile, type Durability } from '../storage/index.js';
import { PartitionReplica, type ReplicaOptions } from './partition-replica.js';

/** What every replica shares (cluster link, replication client, limits...), and where their databases live. */
export type ReplicaSetOptions = Omit<ReplicaOptions, 'topic' | 'partition' | 'store'> & {
  dataDir: string;
  durability: Durability;
};

export function replicaKey(topic: string, partition: number): string {
  return `${topic}/${partition}`;
}

export class ReplicaSet {
  private readonly replicas = new Map<string, PartitionReplica>();

  constructor(private readonly options: ReplicaSetOptions) {}

  get(topic: string, partition: number): PartitionReplica | undefined {
    return this.replicas.get(replicaKey(topic, partition));
  }

  all(): PartitionReplica[] {
    return [...this.replicas.values()];
  }

  /** Opens (creating if needed) the replica's database. */
  open(topic: string, partition: number): PartitionReplica {
    const key = replicaKey(topic, partition);
    const existing = this.replicas.get(key);
    if (existing) return existing;
    const { dataDir, durability, ...shared } = this.options;
    const store = PartitionStore.open(partitionFile(dataDir, topic, partition), durability);
    const replica = new PartitionReplica({ ...shared, topic, partition, store });
    this.replicas.set(key, replica);
    this.options.logger.debug({ topic, partition, leo: store.leo, hw: store.hwCheckpoint }, 'replica opened');
    return replica;
  }

  /** Closes the replica and deletes its database: this broker no longer holds it. */
  async drop(topic: string, partition: number): Promise<void> {
    const key = replicaKey(topic, partition);
    const replica = this.replicas.get(key);
    if (!replica) return;
    this.replicas.delete(key);
    await replica.close();
    deletePartitionFiles(replica.store.file);
    this.options.logger.debug({ topic, partition }, 'replica dropped');
  }

  /** Deletes databases on disk that are neither open nor in `keep` (replicas given up while this broker was down). */
  deleteOrphans(keep: Set<string>): void {
    for (const found of listPartitionFiles(this.options.dataDir)) {
      const key = replicaKey(found.topic, found.partition);
      if (this.replicas.has(key) || keep.has(key)) continue;
      deletePartitionFiles(found.file);
      this.options.logger.info({ topic: found.topic, partition: found.partition }, 'orphan replica deleted');
    }
  }

  async closeAll(): Promise<void> {
    const replicas = this.all();
    this.replicas.clear();
    await Promise.allSettled(replicas.map((replica) => replica.close()));
  }
}
