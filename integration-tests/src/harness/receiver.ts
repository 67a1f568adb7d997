/** A push subscription's receiver for tests: a real HTTP server on loopback that keeps every delivery. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DeliveryBody } from '@tessera/protocol';

export interface Received {
  body: DeliveryBody;
  raw: string;
  signature: string;
  /** When the request arrived (Date.now()). */
  atMs: number;
}

/** `answer` decides each request's status (and may wait). */
export class Receiver {
  readonly received: Received[] = [];
  private server: http.Server | undefined;
  url = '';

  constructor(public answer: (delivery: DeliveryBody) => number | Promise<number> = () => 200) {}

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const body = JSON.parse(raw) as DeliveryBody;
        this.received.push({ body, raw, signature: String(req.headers['tessera-signature'] ?? ''), atMs: Date.now() });
        void Promise.resolve(this.answer(body)).then(
          (status) => {
            if (!res.destroyed) res.writeHead(status).end();
          },
          () => res.destroy(),
        );
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}/hook`;
    return this;
  }

  /** Values of the 2xx-answered deliveries are not known here; this lists every delivery's value as text. */
  values(): string[] {
    return this.received.map((r) => r.body.value ?? '');
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}
