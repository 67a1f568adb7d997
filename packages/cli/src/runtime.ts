/**
 * What every command shares: the coordinator URL, the output streams, one lazily
 * created client (closed when the command ends), and the error context a command
 * fills in so a failure names what it was about.
 */
import { type Credentials, TesseraClient, type TlsClientOptions } from '@tessera/client';
import type { ErrorContext } from './errors.js';

export interface Io {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  stdin: NodeJS.ReadStream;
}

export interface ClientFactoryOptions {
  coordinator: string;
  requestTimeoutMs: number;
  credentials?: Credentials;
  tls?: TlsClientOptions;
}

export class Runtime {
  readonly io: Io;
  readonly errorContext: ErrorContext;
  private clientInstance: TesseraClient | undefined;
  /** Per-request deadline of admin calls. */
  requestTimeoutMs = 10_000;
  /** From the flags; undefined lets the client find them (environment, dev cluster). */
  credentials: Credentials | undefined;
  /** From --ca-file; undefined lets the client find the CA (TESSERA_CA_FILE, dev cluster). */
  tls: TlsClientOptions | undefined;

  private readonly createClient: (options: ClientFactoryOptions) => TesseraClient;

  /** `createClient` is for tests, which pass a fake. */
  constructor(
    io: Io,
    coordinatorUrl: string,
    createClient: (options: ClientFactoryOptions) => TesseraClient = (options) => new TesseraClient(options),
  ) {
    this.io = io;
    this.errorContext = { coordinatorUrl };
    this.createClient = createClient;
  }

  get coordinatorUrl(): string {
    return this.errorContext.coordinatorUrl;
  }

  set coordinatorUrl(url: string) {
    this.errorContext.coordinatorUrl = url;
  }

  client(): TesseraClient {
    this.clientInstance ??= this.createClient({
      coordinator: this.coordinatorUrl,
      requestTimeoutMs: this.requestTimeoutMs,
      ...(this.credentials === undefined ? {} : { credentials: this.credentials }),
      ...(this.tls === undefined ? {} : { tls: this.tls }),
    });
    return this.clientInstance;
  }

  async close(): Promise<void> {
    const client = this.clientInstance;
    this.clientInstance = undefined;
    await client?.close();
  }

  /** Data for scripts and people: stdout. */
  out(text: string): void {
    this.io.stdout.write(text);
  }

  /** Logs, progress and summaries: stderr. */
  err(text: string): void {
    this.io.stderr.write(text.endsWith('\n') ? text : text + '\n');
  }
}
