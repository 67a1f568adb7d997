// Proves bytes survive every way in and out of a real three-broker cluster: random values
// (NUL bytes, invalid UTF-8, empty and 1 MiB values), binary keys and headers are produced
// through the client library, through the CLI (`--value-format base64`) and as plain HTTP
// JSON to the coordinator (`"valueEncoding":"base64"`, as curl would), and each comes back
// byte-identical and in order through the client, the CLI's JSON lines and a broker's JSON fetch.
import { randomBytes } from 'node:crypto';
import type { TesseraClient } from '@tessera/client';
import { afterEach, describe, expect, it } from 'vitest';
import { type Cluster, startCluster } from './harness/cluster.js';
import { type CliResult, runCli as runCliProcess } from './harness/cli.js';
import { rawPost } from './harness/raw-http.js';

const MIB = 1024 * 1024;

let cluster: Cluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

interface Sent {
  key: Buffer | null;
  value: Buffer;
  headers: Record<string, Buffer>;
}

/** Values that break anything treating bytes as text. */
function awkwardValues(): Buffer[] {
  return [
    Buffer.alloc(0),
    Buffer.alloc(16, 0), // only NUL bytes
    Buffer.from([0xff, 0xfe, 0xfd]), // never valid UTF-8
    Buffer.from([0xc0, 0xaf, 0x80, 0xed, 0xa0, 0x80]), // overlong form, lone continuation, surrogate
    Buffer.from('text with a NUL \u0000 inside', 'utf8'),
    Buffer.from('\r\n{"json":true}\n', 'utf8'), // newlines must not split a CLI record
    randomBytes(1),
    randomBytes(300),
    randomBytes(64 * 1024),
    randomBytes(MIB), // the largest value a broker accepts by default
  ];
}

/** The CLI as the cluster's admin, trusting its CA: what an operator's shell would have set. */
function cliEnv(running: Cluster): NodeJS.ProcessEnv {
  return {
    ...process.env,
    ...(running.admin ? { TESSERA_PRINCIPAL: running.admin.principal, TESSERA_SECRET: running.admin.secret } : {}),
    ...(running.caFile ? { TESSERA_CA_FILE: running.caFile } : {}),
  };
}

function runCli(args: string[], input: string): Promise<CliResult> {
  return runCliProcess(args, { input, env: cliEnv(cluster!) });
}

/** Every record of `partition` read by a new group through the client, until `count` came. */
async function readPartition(client: TesseraClient, topic: string, partition: number, count: number) {
  const consumer = client.consumer({ group: `read-${partition}-${Math.random().toString(36).slice(2)}`, topic, fromBeginning: true, waitMs: 200 });
  const records = [];
  const deadline = Date.now() + 60_000;
  while (records.length < count && Date.now() < deadline) {
    for (const record of await consumer.poll({ maxRecords: 100 })) if (record.partition === partition) records.push(record);
  }
  await consumer.close();
  return records;
}

function expectSame(actual: { key: Buffer | null; value: Buffer | null; headers: Record<string, Buffer> }, expected: Sent, what: string): void {
  expect(actual.value?.equals(expected.value), `${what}: value of ${expected.value.length} bytes`).toBe(true);
  expect(actual.key === null ? null : actual.key.toString('base64'), `${what}: key`).toBe(expected.key === null ? null : expected.key.toString('base64'));
  const headers = Object.fromEntries(Object.entries(actual.headers).map(([name, value]) => [name, value.toString('base64')]));
  expect(headers, `${what}: headers`).toEqual(Object.fromEntries(Object.entries(expected.headers).map(([name, value]) => [name, value.toString('base64')])));
}

describe('bytes end to end', () => {
  it('reads back exactly the bytes produced through the client, the CLI and plain HTTP JSON', async () => {
    cluster = await startCluster({ name: 'binary' });
    const client = cluster.client();
    const topic = `bytes-${Math.random().toString(36).slice(2, 8)}`;
    await client.admin.createTopic({ name: topic, partitions: 3, replicationFactor: 2 });

    // Partition 0: the client library, with binary keys and headers.
    const viaClient = awkwardValues().map(
      (value, i): Sent => ({
        key: i % 3 === 0 ? null : randomBytes(i + 1),
        value,
        headers: i % 2 === 0 ? { trace: randomBytes(8), empty: Buffer.alloc(0), 'ünïcode': Buffer.from([0, 0xff]) } : {},
      }),
    );
    const producer = client.producer();
    for (const record of viaClient) await producer.send({ topic, partition: 0, key: record.key, value: record.value, headers: record.headers });

    // Partition 1: the CLI, one base64 key:value per line.
    const viaCli: Sent[] = awkwardValues().map((value, i) => ({ key: randomBytes(i + 2), value, headers: {} }));
    const lines = viaCli.map((record) => `${record.key!.toString('base64')}:${record.value.toString('base64')}\n`).join('');
    const produced = await runCli(
      ['--coordinator', cluster.coordinatorUrl, 'produce', topic, '--partition', '1', '-K', ':', '--key-format', 'base64', '--value-format', 'base64'],
      lines,
    );
    expect(produced.code, produced.stderr).toBe(0);

    // Partition 2: plain HTTP JSON to the coordinator's routed produce, values in base64, as curl would send them.
    const viaHttp: Sent[] = awkwardValues().map((value, i) => ({ key: Buffer.from(`key-${i}`), value, headers: { source: Buffer.from('curl') } }));
    const tls = cluster.tls;
    const adminHeaders = await cluster.adminHeaders();
    for (const record of viaHttp) {
      // One record per request: a 1 MiB value in base64 is most of a request body.
      const answer = await rawPost(
        `${cluster.coordinatorUrl}/topics/${topic}/records`,
        { records: [{ partition: 2, key: record.key!.toString('utf8'), value: record.value.toString('base64'), valueEncoding: 'base64', headers: { source: 'curl' } }] },
        { headers: adminHeaders, ...(tls ? { tls } : {}) },
      );
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    }

    const sent: Sent[][] = [viaClient, viaCli, viaHttp];

    // Back through the client: every partition byte-identical, in order.
    for (const partition of [0, 1, 2]) {
      const records = await readPartition(client, topic, partition, sent[partition]!.length);
      expect(records).toHaveLength(sent[partition]!.length);
      records.forEach((record, i) => expectSame(record, sent[partition]![i]!, `client read of partition ${partition} record ${i}`));
    }

    // Back through the CLI: JSON lines, base64 with "encoding":"base64" where the bytes are not UTF-8.
    const total = sent.reduce((n, list) => n + list.length, 0);
    const consumed = await runCli(['--coordinator', cluster.coordinatorUrl, 'consume', topic, '-g', 'cli-reader', '--from-beginning', '-n', String(total)], '');
    expect(consumed.code, consumed.stderr).toBe(0);
    const byPartition: Array<Array<Record<string, any>>> = [[], [], []];
    for (const line of consumed.stdout.split('\n').filter((l) => l.length > 0)) {
      const record = JSON.parse(line);
      byPartition[record.partition]!.push(record);
    }
    for (const partition of [0, 1, 2]) {
      const list = byPartition[partition]!.sort((a, b) => a.offset - b.offset);
      expect(list).toHaveLength(sent[partition]!.length);
      list.forEach((line, i) => {
        const decode = (text: string | null) => (text === null ? null : Buffer.from(text, line.encoding === 'base64' ? 'base64' : 'utf8'));
        expectSame(
          { key: decode(line.key), value: decode(line.value), headers: Object.fromEntries(Object.entries(line.headers ?? {}).map(([k, v]) => [k, decode(v as string)!])) },
          sent[partition]![i]!,
          `CLI read of partition ${partition} record ${i}`,
        );
      });
    }

    // Back through a broker's plain JSON fetch (no frame Accept header), as curl would read.
    const metadata = await client.admin.metadata();
    const assignment = metadata.topics.find((t) => t.name === topic)!.partitions;
    for (const partition of [0, 1, 2]) {
      const primary = metadata.brokers.find((b) => b.id === assignment[partition]!.primary)!;
      const got: Array<Record<string, any>> = [];
      while (got.length < sent[partition]!.length) {
        const answer = await rawPost(
          `${primary.url}/fetch`,
          { partitions: [{ topic, partition, offset: got.length }], maxBytes: 4 * MIB },
          { headers: adminHeaders, ...(tls ? { tls } : {}) },
        );
        expect(answer.status).toBe(200);
        const body = answer.body as { partitions: Array<{ records: Array<Record<string, any>> }> };
        const records = body.partitions[0]!.records.filter((r) => r.offset >= got.length);
        expect(records.length, `JSON fetch of partition ${partition} from ${got.length}`).toBeGreaterThan(0);
        got.push(...records);
      }
      got.slice(0, sent[partition]!.length).forEach((record, i) => {
        const decode = (text: string | null) => (text === null ? null : Buffer.from(text, record.encoding === 'base64' ? 'base64' : 'utf8'));
        expectSame(
          { key: decode(record.key), value: decode(record.value), headers: Object.fromEntries(Object.entries(record.headers ?? {}).map(([k, v]) => [k, decode(v as string)!])) },
          sent[partition]![i]!,
          `JSON fetch of partition ${partition} record ${i}`,
        );
      });
    }
  });
});
