/**
 * A continuous keyed workload for fault scenarios: producers send each key's records one
 * after another until stopped, recording every outcome in a History.
 */
import type { Producer } from '@tessera/client';
import { sleep } from '@tessera/protocol';
import { History, recordValue } from './history.js';

export class KeyedLoad {
  private stopped = false;
  private readonly loops: Promise<void>[] = [];
  acknowledged = 0;
  unknown = 0;

  constructor(
    private readonly history: History,
    private readonly topic: string,
    private readonly run: string,
  ) {}

  /** Starts one sequential sender per key on `producer`; `pauseMs` between sends bounds the rate. */
  start(producer: Producer, keys: string[], pauseMs = 2): void {
    for (const key of keys) {
      this.loops.push(
        (async () => {
          for (let seq = 0; !this.stopped; seq++) {
            const value = recordValue(key, seq, this.run);
            this.history.sending(value);
            try {
              await producer.send({ topic: this.topic, key, value });
              this.history.produced(value, 'ok');
              this.acknowledged++;
            } catch {
              // Gave up (delivery timeout): the record may or may not be stored.
              this.unknown++;
            }
            await sleep(pauseMs);
          }
        })(),
      );
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }
}
