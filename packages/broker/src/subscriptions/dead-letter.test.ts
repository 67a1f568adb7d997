// Proves a dead letter names the dead-letter partition's epoch in this broker's map to its
// primary: a primary behind that map (UNKNOWN_EPOCH) gets the record again until it stores it; a
// broker of an earlier release, which refuses the epoch field, gets it without the epoch, and the
// next one too; one that refused a try for another reason gets the epoch again. A real HTTP
// client and a stand-in primary on loopback.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DataHttpClient, decodeFrame, decodeRecordBatch, type DecodedRecord, type MetadataResponse } from '@tessera/protocol';
import { heldSubscription } from '../test-support/subscription.js';
import { DeadLetterWriter, type DeadLetterLink } from './dead-letter.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The dead-letter partition's epoch in the writing broker's map. */
const EPOCH = 7;

/**
 * A stand-in primary of the dead-letter topic: notes the epoch each produce names and stores its
 * records' values. `behindOnce`: the first produce naming an epoch is answered UNKNOWN_EPOCH, as
 * by a broker that has not applied the map yet. `earlierRelease`: a produce naming an epoch is
 * refused as a broker of the release before the field refuses it. `refusesOnce`: the first
 * produce is refused as bad input for another reason.
 */
async function primary(options: { behindOnce?: boolean; earlierRelease?: boolean; refusesOnce?: boolean } = {}) {
  const epochs: Array<number | undefined> = [];
  const stored: string[] = [];
  const refuse = (res: http.ServerResponse, issue: { path: string; message: string }) => {
    res.statusCode = 400;
    res.end(JSON.stringify({ error: { code: 'INVALID_REQUEST', message: `invalid frame head: ${issue.path}: ${issue.message}`, retriable: false, issues: [issue] } }));
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      const { head, tail } = decodeFrame(Buffer.concat(chunks));
      const [{ topic, partition, epoch }] = (head as { partitions: Array<{ topic: string; partition: number; epoch?: number }> }).partitions;
      epochs.push(epoch);
      if (options.earlierRelease && epoch !== undefined) return refuse(res, { path: 'partitions.0', message: 'Unrecognized key: "epoch"' });
      if (options.refusesOnce && epochs.length === 1) return refuse(res, { path: 'partitions.0.bytes', message: 'Too small: expected number to be >=1' });
      if (options.behindOnce && epoch !== undefined && epochs.length === 1) {
        const error = { code: 'UNKNOWN_EPOCH', message: 'this broker has not applied the map yet', retriable: true, epoch: EPOCH - 1 };
        return res.end(JSON.stringify({ partitions: [{ topic, partition, error }] }));
      }
      const values = decodeRecordBatch(tail).records.map((r) => r.value!.toString());
      stored.push(...values);
      res.end(JSON.stringify({ partitions: [{ topic, partition, baseOffset: 0, lastOffset: values.length - 1, epoch: EPOCH }] }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, epochs, stored };
}

/** A writer whose map has dead-letter topic `dlq` (one partition at EPOCH, led by broker 2 at `url`). */
function writer(url: string): DeadLetterWriter {
  const metadata: MetadataResponse = {
    version: 1,
    brokers: [{ id: 2, url, internalUrl: url, alive: true }],
    topics: [
      {
        name: 'dlq',
        replicationFactor: 1,
        config: { minInsyncReplicas: 1, retentionMs: -1, retentionBytes: -1 },
        partitions: [{ partition: 0, primary: 2, secondary: null, epoch: EPOCH, isr: [2] }],
      },
    ],
  };
  const link: DeadLetterLink = { metadata, brokerUrl: (id) => (id === 2 ? url : undefined), requestMetadataRefresh: () => undefined };
  const client = new DataHttpClient({ timeoutMs: 2_000 });
  cleanups.push(() => client.close());
  return new DeadLetterWriter(link, client);
}

/** Writes one failed record (value `value`) to the dead-letter topic; resolves once stored, with the errors of the failed tries. */
async function deadLetter(to: DeadLetterWriter, value: string): Promise<unknown[]> {
  const errors: unknown[] = [];
  const record: DecodedRecord = { offset: 3, timestamp: 1_000, key: null, value: Buffer.from(value), headers: [] };
  const stop = new AbortController();
  cleanups.push(() => stop.abort());
  const subscription = heldSubscription('http://127.0.0.1:1/', { deadLetterTopic: 'dlq', maxAttempts: 3 });
  const reason = { attempts: 3, lastStatus: 500, error: 'receiver failed' };
  await to.write(subscription, 't', 0, record, reason, { request: stop.signal, wait: stop.signal }, (error) => errors.push(error));
  return errors;
}

describe('DeadLetterWriter', () => {
  it("names the dead-letter partition's epoch in this broker's map", async () => {
    const target = await primary();
    expect(await deadLetter(writer(target.url), 'a')).toEqual([]);
    expect(target.epochs).toEqual([EPOCH]);
    expect(target.stored).toEqual(['a']);
  });

  it('sends the record again to a primary behind the map (UNKNOWN_EPOCH) until it stores it', async () => {
    const target = await primary({ behindOnce: true });
    const errors = await deadLetter(writer(target.url), 'a');
    expect(errors).toEqual([expect.objectContaining({ code: 'UNKNOWN_EPOCH' })]);
    expect(target.epochs).toEqual([EPOCH, EPOCH]);
    expect(target.stored).toEqual(['a']);
  });

  it('sends a broker of an earlier release, which refuses the epoch field, the record again without it, and the next one too', async () => {
    const target = await primary({ earlierRelease: true });
    const to = writer(target.url);
    expect(await deadLetter(to, 'a')).toEqual([]);
    expect(await deadLetter(to, 'b')).toEqual([]);
    expect(target.epochs).toEqual([EPOCH, undefined, undefined]);
    expect(target.stored).toEqual(['a', 'b']);
  });

  it('keeps naming the epoch to a primary that refused a try for another reason', async () => {
    const target = await primary({ refusesOnce: true });
    const errors = await deadLetter(writer(target.url), 'a');
    expect(errors).toEqual([expect.objectContaining({ code: 'INVALID_REQUEST' })]);
    expect(target.epochs).toEqual([EPOCH, EPOCH]);
    expect(target.stored).toEqual(['a']);
  });
});
