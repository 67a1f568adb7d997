/**
 * A real node:http server on 127.0.0.1 for the HTTP clients' tests: the routes every client
 * is checked against (an error body, a plain 500, an answer that is not JSON, an empty answer,
 * a slow answer, a reset connection, a large UTF-8 answer), plus the test's own routes.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LoopbackServer {
  base: string;
  /** The connections requests arrived on, to check keep-alive. */
  sockets: Set<unknown>;
  close(): Promise<void>;
}

export type ExtraRoutes = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer, url: URL) => void;

export async function startLoopbackServer(extra: ExtraRoutes): Promise<LoopbackServer> {
  const sockets = new Set<unknown>();
  const server = http.createServer((req, res) => {
    sockets.add(req.socket);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      switch (url.pathname) {
        case '/error':
          res.statusCode = 421;
          res.end(JSON.stringify({ error: { code: 'NOT_PRIMARY', message: 'not me', retriable: true, primary: null } }));
          return;
        case '/plain-500':
          res.statusCode = 500;
          res.end('boom');
          return;
        case '/not-json':
          res.end('hello');
          return;
        case '/empty':
          res.statusCode = 204;
          res.end();
          return;
        case '/slow':
          setTimeout(() => res.end('{}'), 1_000);
          return;
        case '/reset':
          req.socket.destroy();
          return;
        case '/unicode':
          res.end(JSON.stringify({ text: 'é'.repeat(100_000) }));
          return;
        default:
          extra(req, res, Buffer.concat(chunks), url);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sockets,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A URL on a loopback port nothing listens on (it was bound, then released). */
export async function refusedUrl(path: string): Promise<string> {
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  return `http://127.0.0.1:${port}${path}`;
}
