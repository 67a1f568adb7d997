/**
 * `pnpm bench:transport`: what one exchange of the replication's shape (a frame of a few KiB
 * out, a small JSON answer back) costs over three transports between two processes on
 * loopback, one exchange at a time:
 *  - service: the broker's own stack, a koa service of `@tessera/service` with a signed
 *    `/internal/*` route, called with `DataHttpClient` (undici) and a `ClusterSigner`, as
 *    `POST /internal/replicate` is today;
 *  - node-http: a bare `node:http` server, the same undici client (what koa, the router and
 *    the middleware add, by difference);
 *  - framed-tcp: one kept-open TCP connection carrying length-prefixed messages and nothing
 *    else (what HTTP itself adds, by difference).
 * Each row gives the wall time of an exchange and the CPU each side spends on it (the server
 * is a child process that reports its own CPU time). Plain TCP throughout: TLS adds the same
 * encryption to each. A measurement, not a test: run it on a quiet machine.
 */
import { fork, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { ClusterSigner, DataHttpClient, decodeFrame, encodeFrame } from '@tessera/protocol';
import { createHttpService, createLogger } from '@tessera/service';
import { lengthPrefixed, readMessages } from './framed-tcp.js';

type Transport = 'service' | 'node-http' | 'framed-tcp';
const TRANSPORTS: readonly Transport[] = ['service', 'node-http', 'framed-tcp'];
const SECRET = 'bench-transport-cluster-secret-of-enough-characters';
const PATH = '/internal/replicate';
const ANSWER = JSON.stringify({ answers: [{ leo: 12345, hw: 12300 }] });

const { values } = parseArgs({
  options: {
    serve: { type: 'string' },
    exchanges: { type: 'string', default: '5000' },
    bytes: { type: 'string', default: '8192' },
  },
});

if (values.serve !== undefined) await serve(values.serve as Transport);
else await measure();

/** The child: serves one transport on an ephemeral loopback port, answers `cpu` over IPC. */
async function serve(transport: Transport): Promise<void> {
  let server: net.Server;
  if (transport === 'service') {
    const service = createHttpService({
      service: 'broker',
      logger: createLogger('broker', {}, { level: 'silent' }),
      isReady: () => true,
      clusterSecrets: [SECRET],
    });
    service.router.post(PATH, (ctx) => {
      const { head } = decodeFrame(ctx.state.frame!);
      ctx.body = { answers: [{ leo: 12345, hw: 12300, pushes: (head as { pushes: unknown[] }).pushes.length }] };
    });
    server = await service.listen(0, '127.0.0.1');
  } else if (transport === 'node-http') {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        decodeFrame(Buffer.concat(chunks));
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(ANSWER) });
        res.end(ANSWER);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  } else {
    server = net.createServer((socket) => {
      socket.setNoDelay(true);
      const answer = lengthPrefixed(Buffer.from(ANSWER));
      readMessages(socket, (message) => {
        decodeFrame(message);
        socket.write(answer);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  }
  process.on('message', () => process.send!({ cpu: process.cpuUsage() }));
  process.on('disconnect', () => process.exit(0));
  process.send!({ port: (server.address() as AddressInfo).port });
}

function nextMessage<T>(child: ChildProcess): Promise<T> {
  return new Promise<T>((resolve) => child.once('message', (message) => resolve(message as T)));
}

async function childCpuMicros(child: ChildProcess): Promise<number> {
  const answer = nextMessage<{ cpu: NodeJS.CpuUsage }>(child);
  child.send('cpu');
  const { cpu } = await answer;
  return cpu.user + cpu.system;
}

async function measure(): Promise<void> {
  const exchanges = Number(values.exchanges);
  const bytes = Number(values.bytes);
  if (!Number.isInteger(exchanges) || exchanges <= 0) throw new Error('--exchanges must be a positive integer');
  if (!Number.isInteger(bytes) || bytes < 0) throw new Error('--bytes must be a non-negative integer');
  // The shape of a push: a JSON head naming the batches, then the batches' bytes.
  const frame = Buffer.concat(
    encodeFrame({ pushes: [{ topic: 'orders', partition: 3, epoch: 7, baseOffset: 12345, hw: 12300, bytes }] }, [Buffer.alloc(bytes, 'x')]),
  );
  console.error(`load average ${os.loadavg()[0]!.toFixed(2)} on ${os.cpus().length} CPUs; ${exchanges} exchanges of a ${frame.length}-byte frame per row`);
  // Alternating rounds, so a change in the machine's load hits every transport alike.
  for (let round = 1; round <= 2; round++) {
    for (const transport of TRANSPORTS) {
      const child = fork(fileURLToPath(import.meta.url), ['--serve', transport]);
      try {
        const { port } = await nextMessage<{ port: number }>(child);
        const { exchange, close } = await connect(transport, port, frame);
        try {
          for (let i = 0; i < Math.min(1_000, exchanges); i++) await exchange(); // warm-up: connection, JIT
          const latencies: number[] = [];
          const serverBefore = await childCpuMicros(child);
          const clientBefore = process.cpuUsage();
          for (let i = 0; i < exchanges; i++) {
            const startedAt = performance.now();
            await exchange();
            latencies.push(performance.now() - startedAt);
          }
          const client = process.cpuUsage(clientBefore);
          const server = (await childCpuMicros(child)) - serverBefore;
          latencies.sort((a, b) => a - b);
          const p = (q: number) => (latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]! * 1000).toFixed(0);
          console.log(
            `round ${round}  ${transport.padEnd(10)}  p50 ${p(0.5)} µs, p99 ${p(0.99)} µs;  CPU per exchange: client ${((client.user + client.system) / exchanges).toFixed(0)} µs, server ${(server / exchanges).toFixed(0)} µs`,
          );
        } finally {
          await close();
        }
      } finally {
        child.disconnect();
      }
    }
  }
}

async function connect(transport: Transport, port: number, frame: Buffer): Promise<{ exchange: () => Promise<void>; close: () => Promise<void> }> {
  if (transport !== 'framed-tcp') {
    const client = new DataHttpClient({ timeoutMs: 5_000, connectionsPerOrigin: 1, signer: transport === 'service' ? new ClusterSigner([SECRET], 'broker-1') : undefined });
    const url = `http://127.0.0.1:${port}${PATH}`;
    return {
      exchange: async () => {
        JSON.parse((await client.postFrame(url, [frame])).body.toString('utf8'));
      },
      close: () => client.close(),
    };
  }
  const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let answered: (() => void) | undefined;
  readMessages(socket, (message) => {
    JSON.parse(message.toString('utf8'));
    answered?.();
  });
  const request = lengthPrefixed(frame);
  return {
    exchange: () =>
      new Promise<void>((resolve) => {
        answered = resolve;
        socket.write(request);
      }),
    close: async () => {
      socket.destroy();
    },
  };
}
