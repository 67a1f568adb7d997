/**
 * TLS settings of Tessera's HTTP clients and servers. Every HTTP client takes one
 * `TlsClientOptions` (the CA it trusts, and a client certificate where one is wanted), so a
 * new client applies the same settings by taking the same object.
 */
import { readFileSync } from 'node:fs';

export interface TlsClientOptions {
  /** The CA certificate(s) (PEM) a server's certificate must chain to. */
  ca: string | Buffer;
  /** A client certificate and key (PEM), for servers that ask for one. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** False only to debug; a client that does not verify the server can be talked to by anyone. */
  rejectUnauthorized: boolean;
}

export interface TlsServerOptions {
  cert: Buffer;
  key: Buffer;
  /** The cluster's CA; also what this service trusts when it calls another one. */
  ca?: Buffer;
}

export interface TlsFiles {
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
}

/**
 * Reads `--tls-cert`, `--tls-key` and `--tls-ca`. A certificate needs its key (and the other
 * way round); without either, the service serves plain HTTP. The CA alone makes a plain
 * service call TLS peers.
 */
export function loadTlsFiles(files: TlsFiles): { server?: TlsServerOptions; client?: TlsClientOptions } {
  if ((files.tlsCert === undefined) !== (files.tlsKey === undefined)) {
    throw new Error('--tls-cert and --tls-key go together');
  }
  const ca = files.tlsCa === undefined ? undefined : readFileSync(files.tlsCa);
  const server =
    files.tlsCert === undefined || files.tlsKey === undefined
      ? undefined
      : { cert: readFileSync(files.tlsCert), key: readFileSync(files.tlsKey), ...(ca === undefined ? {} : { ca }) };
  const client = ca === undefined ? undefined : { ca, rejectUnauthorized: true };
  return { ...(server ? { server } : {}), ...(client ? { client } : {}) };
}
