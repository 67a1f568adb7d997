/**
 * The broker's kept-open streams share its HTTP port: an upgrade request goes to the stream
 * whose path and protocol it names (the replication stream, the clients' data stream); any
 * other is answered 404 with the usual error body, which a client of an earlier version takes
 * to mean "no stream here".
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { TesseraError, refuseUpgrade } from '@tessera/protocol';

export interface UpgradeTarget {
  readonly path: string;
  readonly protocol: string;
  accept(request: IncomingMessage, socket: Duplex, head: Buffer): void;
}

/** Routes the server's upgrade requests to `targets` by path and protocol. */
export function routeUpgrades(server: Server, targets: readonly UpgradeTarget[]): void {
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    const path = request.url ?? '';
    const protocol = request.headers.upgrade?.toLowerCase();
    const target = request.method === 'GET' ? targets.find((t) => t.path === path && t.protocol === protocol) : undefined;
    if (target === undefined) {
      refuseUpgrade(socket, new TesseraError('NOT_FOUND', `no upgrade to ${String(request.headers.upgrade).slice(0, 100)} at ${request.method} ${path.slice(0, 200)}`));
      return;
    }
    target.accept(request, socket, head);
  });
}

/** The open sockets of one kind of stream, so a stopping broker can close them (the HTTP server waits for its connections). */
export class StreamSockets {
  private readonly sockets = new Set<Duplex>();
  private closed = false;

  /** Keeps `socket` to close with the others; false (and the socket destroyed) once they were closed, or when it is gone already. */
  add(socket: Duplex): boolean {
    if (this.closed || socket.destroyed) {
      socket.destroy();
      return false;
    }
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    return true;
  }

  close(): void {
    this.closed = true;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }
}
