/**
 * Workloads shared by the scenarios: keyed producers that record every outcome in a
 * History, and consumers that record every delivery.
 */
import { randomUUID } from 'node:crypto';
import type { Consumer, Producer, TesseraClient } from '@tessera/client';
import { History, recordValue } from './history.js';

export interface KeyedWorkload {
  topic: string;
  keys: string[];
  recordsPerKey: number;
  /** Called after each acknowledged record, e.g. to inject a fault part way through. */
  onAcknowledged?: (acknowledged: number) => void | Promise<void>;
}

/**
 * Sends `recordsPerKey` records for every key, each key's records one after another (so
 * their acknowledgement order is their sequence), all keys concurrently.
 */
export async function produceKeyed(producer: Producer, history: History, workload: KeyedWorkload): Promise<number> {
  const run = randomUUID().slice(0, 8);
  let acknowledged = 0;
  await Promise.all(
    workload.keys.map(async (key) => {
      for (let seq = 0; seq < workload.recordsPerKey; seq++) {
        const value = recordValue(key, seq, run);
        history.sending(value);
        try {
          await producer.send({ topic: workload.topic, key, value });
          history.produced(value, 'ok');
          acknowledged++;
          await workload.onAcknowledged?.(acknowledged);
        } catch (error) {
          // A producer that gave up cannot know whether the broker stored the record.
          history.produced(value, 'unknown');
        }
      }
    }),
  );
  return acknowledged;
}

/** Feeds every delivery of `consumer` (a member of `group`) into `history`; resolves when the consumer closes. */
export function consumeInto(consumer: Consumer, history: History, group: string): Promise<void> {
  return consumer.subscribe((record) => {
    history.delivered(group, record.value, record.partition, record.offset);
  });
}

/** A topic with a fresh random name, replicated on two brokers. */
export async function createTopic(client: TesseraClient, partitions: number): Promise<string> {
  const name = `t-${Math.random().toString(36).slice(2, 10)}`;
  await client.admin.createTopic({ name, partitions, replicationFactor: 2 });
  return name;
}

export function keys(count: number, prefix = 'key'): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
}
