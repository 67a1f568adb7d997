// Proves a client keeps working while a broker's body budget is full, on a real cluster
// (coordinator and broker as processes, authentication on): slow senders begin calls on data
// streams until the budget holds no more, a producer's call on its own stream is then answered
// UNAVAILABLE without being read, the producer retries it, and once the slow senders go the
// record is stored and read back exactly once.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BROKER_ROUTES,
  DATA_STREAM_PATH,
  DATA_STREAM_PROTOCOL,
  DEFAULT_MAX_REQUEST_BYTES,
  MessageReader,
  decodeDataAnswer,
  encodeDataCall,
  encodeMessage,
  type MetadataResponse,
} from '@tessera/protocol';
import type { TesseraClient } from '@tessera/client';
import { type Cluster, startCluster, waitFor } from './harness/cluster.js';

/** The broker's body budget (4 × the request limit, the HTTP edge's default) and its largest data stream call. */
const BUDGET_BYTES = 4 * DEFAULT_MAX_REQUEST_BYTES;
const MAX_CALL_BYTES = DEFAULT_MAX_REQUEST_BYTES + 1;

let cluster: Cluster;
let client: TesseraClient;
const sockets: net.Socket[] = [];

beforeAll(async () => {
  cluster = await startCluster({ name: 'stream-budget', brokers: 1 });
  client = cluster.client({ requestTimeoutMs: 5_000 });
}, 60_000);

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await cluster?.stop();
});

/** A data stream upgraded by hand as the bootstrap admin; resolves once the 101 is in, with the answers read after it, by id. */
async function rawStream(url: string): Promise<{ socket: net.Socket; answers: Map<number, number> }> {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  sockets.push(socket);
  socket.on('error', () => undefined);
  const answers = new Map<number, number>();
  const reader = new MessageReader(1 << 26);
  let head = '';
  let upgraded = false;
  socket.on('data', (chunk: Buffer) => {
    if (!upgraded) {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      upgraded = true;
      chunk = Buffer.from(head.slice(end + 4), 'latin1');
    }
    for (const message of reader.push(chunk)) answers.set(message.id, decodeDataAnswer(message.body).status);
  });
  const { authorization } = await cluster.adminHeaders();
  socket.write(`GET ${DATA_STREAM_PATH} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nConnection: Upgrade\r\nUpgrade: ${DATA_STREAM_PROTOCOL}\r\nAuthorization: ${authorization}\r\n\r\n`);
  await waitFor(() => upgraded, { what: 'the upgrade to be answered', timeoutMs: 5_000 });
  expect(head).toMatch(/^HTTP\/1.1 101 /);
  return { socket, answers };
}

/** The first bytes of a produce call of `bodyBytes` bytes: its prefix, the call byte and a little of the frame. */
function beginningOfCall(bodyBytes: number): Buffer {
  const prefix = Buffer.alloc(8);
  prefix.writeUInt32BE(4 + bodyBytes, 0);
  prefix.writeUInt32BE(1, 4);
  return Buffer.concat([prefix, Buffer.of(1), Buffer.alloc(9)]);
}

async function metric(url: string, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

describe('a broker whose body budget is full', () => {
  it('answers a producer UNAVAILABLE, and the producer retries until its record is stored, once', async () => {
    await client.admin.createTopic({ name: 'budget', partitions: 1, replicationFactor: 1 });
    const metadata: MetadataResponse = await client.admin.metadata();
    const url = metadata.brokers[0]!.url;
    // The producer's stream is open before the budget fills (its first record goes through).
    const producer = client.producer({ lingerMs: 0 });
    await producer.send({ topic: 'budget', value: 'before' });

    // Four slow senders whose calls together hold the whole budget.
    const sizes = [MAX_CALL_BYTES, MAX_CALL_BYTES, MAX_CALL_BYTES, BUDGET_BYTES - 3 * MAX_CALL_BYTES];
    for (const size of sizes) (await rawStream(url)).socket.write(beginningOfCall(size));
    // Full once even a small call on a stream of its own is refused.
    let probeId = 0;
    const probe = await rawStream(url);
    await waitFor(
      async () => {
        const id = ++probeId;
        probe.socket.write(Buffer.concat(encodeMessage(id, undefined, encodeDataCall(BROKER_ROUTES.fetch, [Buffer.from('{"partitions":[]}')]))));
        await waitFor(() => probe.answers.has(id), { what: `an answer to probe ${id}`, timeoutMs: 5_000 });
        return probe.answers.get(id) === 503;
      },
      { what: 'the budget to fill', timeoutMs: 10_000 },
    );
    const refusedBefore = await metric(url, 'tessera_broker_request_duration_seconds_count', 'method="STREAM",route="unmatched",status="503"');

    const sent = producer.send({ topic: 'budget', value: 'during' });
    await waitFor(async () => (await metric(url, 'tessera_broker_request_duration_seconds_count', 'method="STREAM",route="unmatched",status="503"')) > refusedBefore, {
      what: "the producer's call to be refused",
      timeoutMs: 10_000,
    });
    let settled = false;
    void sent.finally(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(settled, 'the send settled while the budget was full').toBe(false);

    for (const socket of sockets) socket.destroy();
    expect((await sent).offset).toBe(1);

    const consumer = client.consumer({ group: 'budget-check', topic: 'budget', fromBeginning: true, waitMs: 200 });
    const values: string[] = [];
    await waitFor(async () => {
      for (const record of await consumer.poll()) values.push(record.value?.toString() ?? '');
      return values.length >= 2;
    }, { what: 'both records', timeoutMs: 20_000 });
    await consumer.close();
    expect(values).toEqual(['before', 'during']);
  });
});
