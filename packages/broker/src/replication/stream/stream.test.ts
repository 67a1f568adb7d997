// The replication stream between two real endpoints on loopback: a node:http server with the
// stream attached, and the client a leader uses. Answers find their calls in any order, only
// signed brokers get a stream, a peer without one says so, and a deadline or a closed peer
// fails the calls in flight with a retriable network error and leaves the next call a new
// connection.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLUSTER_AUTH_HEADER, ClusterSigner, TesseraError, isRetriable, makeCertificates, type TlsClientOptions } from '@tessera/protocol';
import { createLogger } from '@tessera/service';
import type { Duplex } from 'node:stream';
import { MAC_BYTES, MessageReader, encodeMessage } from '@tessera/protocol';
import { routeUpgrades } from '../../http/upgrades.js';
import { REPLICATION_STREAM_PATH, REPLICATION_STREAM_PROTOCOL, SEAL_BY_TLS, STREAM_NONCE_HEADER, STREAM_SEAL_HEADER, StreamMac } from './framing.js';
import { ReplicationStreamClient, StreamUnsupported } from './stream-client.js';
import { ReplicationStreamServer } from './stream-server.js';

const SECRET = 'a-cluster-secret-for-the-stream-tests-0123456789';
const logger = createLogger('broker', {}, { level: 'silent' });
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `${server instanceof https.Server ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A CA and a certificate for 127.0.0.1 (made with openssl), for the streams over TLS. */
function certificates(): { server: { cert: Buffer; key: Buffer }; client: TlsClientOptions } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-stream-tls-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const made = makeCertificates(dir, [{ name: 'broker-1', hosts: ['127.0.0.1'] }]);
  const files = made.services['broker-1']!;
  return {
    server: { cert: fs.readFileSync(files.certFile), key: fs.readFileSync(files.keyFile) },
    client: { ca: fs.readFileSync(made.caFile), rejectUnauthorized: true },
  };
}

/** A server whose stream answers each frame with `{ echo: <frame text> }` after `delayMs(frame)`. */
async function streamServer(
  delayMs: (frame: string) => number = () => 0,
  maxMessageBytes = 1 << 20,
  secrets: string[] | null = [SECRET],
  tls?: { cert: Buffer; key: Buffer },
) {
  const notFound: http.RequestListener = (_request, response) => response.writeHead(404).end();
  const server = tls === undefined ? http.createServer(notFound) : https.createServer(tls, notFound);
  const authFailures: string[] = [];
  const streams = new ReplicationStreamServer({
    onAuthFailure: (reason) => authFailures.push(reason),
    secrets: secrets ?? undefined,
    maxMessageBytes,
    logger,
    onInvariantBroken: (error) => {
      throw error;
    },
    handle: async (frame) => {
      const text = frame.toString('utf8');
      const wait = delayMs(text);
      if (wait === Infinity) return new Promise(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, wait));
      if (text === 'refuse') throw new TesseraError('INVALID_REQUEST', 'refused');
      return { echo: text };
    },
  });
  // The server side of every upgraded connection, so a test can drop them as a peer would.
  const accepted = new Set<Duplex>();
  server.on('upgrade', (_request: http.IncomingMessage, socket: Duplex) => accepted.add(socket));
  routeUpgrades(server, [streams]);
  const url = await listen(server);
  cleanups.push(() => streams.close());
  const dropConnections = () => {
    for (const socket of accepted) socket.destroy();
    accepted.clear();
  };
  return { url, streams, authFailures, dropConnections };
}

function client(secret = SECRET, tls?: TlsClientOptions): ReplicationStreamClient {
  const streams = new ReplicationStreamClient({ maxAnswerBytes: 1 << 20, signer: new ClusterSigner([secret], 'broker-2'), ...(tls ? { tls } : {}) });
  cleanups.push(() => streams.close());
  return streams;
}

const call = async (streams: ReplicationStreamClient, url: string, text: string, timeoutMs = 5_000) =>
  JSON.parse((await streams.call(url, [Buffer.from(text)], timeoutMs)).toString('utf8')) as unknown;

describe('replication stream', () => {
  it('matches answers to calls when they come back in another order', async () => {
    const { url } = await streamServer((frame) => (frame === 'slow' ? 200 : 0));
    const streams = client();
    const slow = call(streams, url, 'slow');
    const fast = await Promise.all(['a', 'b', 'c'].map((text) => call(streams, url, text)));
    expect(fast).toEqual([{ echo: 'a' }, { echo: 'b' }, { echo: 'c' }]);
    expect(await slow).toEqual({ echo: 'slow' });
  });

  it('answers a refused exchange with its error body', async () => {
    const { url } = await streamServer();
    expect(await call(client(), url, 'refuse')).toMatchObject({ error: { code: 'INVALID_REQUEST', message: 'refused' } });
  });

  it('opens only to a caller signed with the cluster secret', async () => {
    const { url, authFailures } = await streamServer();
    const error = await client('another-secret-that-is-long-enough-0123456789').call(url, [Buffer.from('x')], 5_000).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TesseraError);
    expect((error as TesseraError).code).toBe('UNAUTHORIZED');
    // Counted as a refused HTTP call would be (tessera_auth_failures_total).
    expect(authFailures).toEqual(['cluster_bad_signature']);
  });

  it('carries no MACs without a cluster secret, and a signing leader takes no such stream', async () => {
    const { url } = await streamServer(() => 0, 1 << 20, null);
    const unsigned = new ReplicationStreamClient({ maxAnswerBytes: 1 << 20 });
    cleanups.push(() => unsigned.close());
    expect(await call(unsigned, url, 'open')).toEqual({ echo: 'open' });
    await expect(client().call(url, [Buffer.from('x')], 5_000)).rejects.toBeInstanceOf(StreamUnsupported);
  });

  it('says so when the peer offers no stream (an earlier broker answers the upgrade with 404)', async () => {
    const url = await listen(http.createServer((_request, response) => response.writeHead(404).end('{}')));
    await expect(client().call(url, [Buffer.from('x')], 5_000)).rejects.toBeInstanceOf(StreamUnsupported);
  });

  it('fails the calls in flight with a retriable timeout, and the next call opens a new connection', async () => {
    const { url } = await streamServer((frame) => (frame === 'never' ? Infinity : 0));
    const streams = client();
    const other = call(streams, url, 'never', 5_000).catch((e: unknown) => e);
    const error = await call(streams, url, 'never', 200).catch((e: unknown) => e);
    expect((error as { code?: string }).code).toBe('ETIMEDOUT');
    expect(isRetriable(error)).toBe(true);
    expect(isRetriable(await other)).toBe(true);
    expect(await call(streams, url, 'again')).toEqual({ echo: 'again' });
  });

  it('fails the calls in flight when the peer drops its streams, then reconnects', async () => {
    const { url, dropConnections } = await streamServer((frame) => (frame === 'never' ? Infinity : 0));
    const streams = client();
    expect(await call(streams, url, 'first')).toEqual({ echo: 'first' });
    const pending = call(streams, url, 'never').catch((e: unknown) => e);
    await new Promise((resolve) => setTimeout(resolve, 50));
    dropConnections();
    const error = await pending;
    expect((error as { code?: string }).code).toBe('ECONNRESET');
    expect(isRetriable(error)).toBe(true);
    expect(await call(streams, url, 'second')).toEqual({ echo: 'second' });
  });

  it('refuses new streams once closed (a stopping broker), after closing the open ones', async () => {
    const { url, streams: server } = await streamServer();
    const streams = client();
    expect(await call(streams, url, 'first')).toEqual({ echo: 'first' });
    server.close();
    const error = await call(streams, url, 'second').catch((e: unknown) => e);
    expect(isRetriable(error)).toBe(true);
    expect((error as { code?: string }).code).toBe('ECONNRESET');
  });

  it('closes a stream that sends a message larger than the request limit', async () => {
    const { url } = await streamServer(() => 0, 1_000);
    const streams = client();
    const error = await streams.call(url, [Buffer.alloc(1_001)], 5_000).catch((e: unknown) => e);
    expect((error as { code?: string }).code).toBe('ECONNRESET');
    expect(await call(streams, url, 'small')).toEqual({ echo: 'small' });
  });

  it('goes without MACs over TLS when the leader offers it, and seals a plain link and an earlier leader', async () => {
    const tls = certificates();
    const secure = await streamServer(() => 0, 1 << 20, [SECRET], tls.server);
    // The leader's own client: over TLS its calls are answered on a stream without MACs.
    expect(await call(client(SECRET, tls.client), secure.url, 'over tls')).toEqual({ echo: 'over tls' });
    const offered = await rawStream(secure.url, { tls: tls.client, offerTls: true });
    expect(offered.nonce).toBeUndefined();
    // An upgrade that is not signed is still refused, offer or not.
    await expect(client('another-secret-that-is-long-enough-0123456789', tls.client).call(secure.url, [Buffer.from('x')], 5_000)).rejects.toMatchObject({
      code: 'UNAUTHORIZED',
    });

    // A leader that does not offer it (an earlier version) gets a nonce, and sealed messages, on TLS too.
    const earlier = await rawStream(secure.url, { tls: tls.client });
    expect(earlier.nonce).toBeDefined();
    const body = [Buffer.from('sealed')];
    for (const chunk of encodeMessage(1, earlier.mac!.sign('request', 1, body), body)) earlier.socket.write(chunk);
    await new Promise<void>((resolve) => earlier.socket.once('data', () => resolve()));
    earlier.socket.destroy();
    const [answer] = await earlier.closed;
    expect(earlier.mac!.check('answer', 1, answer!.body, answer!.mac)).toBe(true);

    // On a plain link the offer is ignored: a MAC is what keeps its messages from being forged.
    const plain = await streamServer();
    expect((await rawStream(plain.url, { offerTls: true })).nonce).toBeDefined();
  });

  it('closes the connection on a message whose MAC fails, and on a request id used before', async () => {
    const { url, authFailures } = await streamServer();
    const body = [Buffer.from('hello')];

    const forged = await rawStream(url);
    const badMac = Buffer.from(forged.mac!.sign('request', 1, body));
    badMac[0]! ^= 1;
    for (const chunk of encodeMessage(1, badMac, body)) forged.socket.write(chunk);
    expect(await forged.closed).toEqual([]);

    const replayed = await rawStream(url);
    const send = () => {
      for (const chunk of encodeMessage(1, replayed.mac!.sign('request', 1, body), body)) replayed.socket.write(chunk);
    };
    // The first is answered (with a MAC of its own), the repeat closes the connection.
    send();
    await new Promise<void>((resolve) => replayed.socket.once('data', () => resolve()));
    send();
    const answers = await replayed.closed;
    expect(answers.map((answer) => answer.id)).toEqual([1]);
    expect(replayed.mac!.check('answer', 1, answers[0]!.body, answers[0]!.mac)).toBe(true);
    expect(JSON.parse(answers[0]!.body.toString('utf8'))).toEqual({ echo: 'hello' });
    expect(authFailures).toEqual(['cluster_bad_signature', 'cluster_bad_signature']);
  });
});

/**
 * An upgraded connection opened by hand (signed like a broker; offering to go without MACs
 * with `offerTls`), its nonce and MACs when the follower sent one, and the answers read
 * until it closes.
 */
async function rawStream(
  url: string,
  options: { tls?: TlsClientOptions; offerTls?: boolean } = {},
): Promise<{ socket: Duplex; nonce: string | undefined; mac: StreamMac | undefined; closed: Promise<Array<{ id: number; mac: Buffer; body: Buffer }>> }> {
  const signer = new ClusterSigner([SECRET], 'broker-2');
  const headers: Record<string, string> = {
    connection: 'Upgrade',
    upgrade: REPLICATION_STREAM_PROTOCOL,
    [CLUSTER_AUTH_HEADER]: signer.header('GET', REPLICATION_STREAM_PATH, undefined),
    ...(options.offerTls ? { [STREAM_SEAL_HEADER]: SEAL_BY_TLS } : {}),
  };
  return new Promise((resolve, reject) => {
    const request = url.startsWith('https:')
      ? https.request(`${url}${REPLICATION_STREAM_PATH}`, { headers, agent: false, ...options.tls })
      : http.request(`${url}${REPLICATION_STREAM_PATH}`, { headers });
    request.on('upgrade', (response: http.IncomingMessage, socket: Duplex) => {
      const header = response.headers[STREAM_NONCE_HEADER];
      const nonce = typeof header === 'string' ? header : undefined;
      const mac = nonce === undefined ? undefined : new StreamMac(SECRET, Buffer.from(nonce, 'base64url'));
      const reader = new MessageReader(1 << 20, mac === undefined ? 0 : MAC_BYTES);
      const answers: Array<{ id: number; mac: Buffer; body: Buffer }> = [];
      socket.on('data', (chunk: Buffer) => answers.push(...reader.push(chunk)));
      const closed = new Promise<typeof answers>((done) => socket.on('close', () => done(answers)));
      cleanups.push(() => socket.destroy());
      resolve({ socket, nonce, mac, closed });
    });
    request.on('response', () => reject(new Error('no upgrade')));
    request.on('error', reject);
    request.end();
  });
}
