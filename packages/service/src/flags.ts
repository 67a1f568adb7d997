/**
 * The flags every service shares for its HTTP edge: TLS files, the cluster secret and the
 * connection bounds. Each has an environment variable; a flag wins over its variable.
 */
import { InvalidArgumentError, Option } from 'commander';
import { type TlsClientOptions, type TlsServerOptions, loadClusterSecrets, loadTlsFiles } from '@tessera/protocol';
import { DEFAULT_SERVER_LIMITS, type ServerLimits } from './http.js';

export interface EdgeFlags {
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  clusterSecretFile?: string;
  insecureCluster?: boolean;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
}

/** What the edge flags configure. */
export interface EdgeConfig {
  /** The certificate this service serves; undefined: plain HTTP. */
  tls?: TlsServerOptions;
  /** What this service's HTTP clients trust when they call other services. */
  clientTls?: TlsClientOptions;
  /** Undefined when no secret is configured (cluster-only routes then stay open). */
  clusterSecrets?: string[];
  serverLimits: ServerLimits;
}

function positive(raw: string): number {
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < 1) throw new InvalidArgumentError('must be a positive integer');
  return value;
}

/** A flag's integer parser: digits (and a leading minus) only, within [min, max]. */
export function integerFlag(min: number, max: number): (raw: string) => number {
  return (raw: string): number => {
    const value = Number(raw);
    if (!/^-?\d+$/.test(raw) || value < min || value > max) throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
    return value;
  };
}

/**
 * The full-disk flags of a service with a data directory (`storage-space.ts`): the size of the
 * reserve file and the free space below which the service refuses what would grow its data.
 * `help` says what the reserve lets commit and what is refused, which differ per service.
 */
export function storageOptions(
  defaults: { reserveBytes: number; minFreeBytes: number },
  help: { reserveLetsCommit: string; refused: string },
): Option[] {
  return [
    new Option('--storage-reserve-bytes <n>', `size of the reserve file deleted when the disk fills, so ${help.reserveLetsCommit} can commit (0: none)`)
      .env('TESSERA_STORAGE_RESERVE_BYTES')
      .argParser(integerFlag(0, Number.MAX_SAFE_INTEGER))
      .default(defaults.reserveBytes),
    new Option('--storage-min-free-bytes <n>', `below this many bytes free for data, ${help.refused} with STORAGE_FULL`)
      .env('TESSERA_STORAGE_MIN_FREE_BYTES')
      .argParser(integerFlag(0, Number.MAX_SAFE_INTEGER))
      .default(defaults.minFreeBytes),
  ];
}

export function edgeOptions(): Option[] {
  const d = DEFAULT_SERVER_LIMITS;
  return [
    new Option('--tls-cert <file>', 'PEM certificate to serve HTTPS with (needs --tls-key)').env('TESSERA_TLS_CERT'),
    new Option('--tls-key <file>', 'PEM private key of --tls-cert').env('TESSERA_TLS_KEY'),
    new Option('--tls-ca <file>', 'PEM CA that the other services\' certificates chain to').env('TESSERA_TLS_CA'),
    new Option(
      '--cluster-secret-file <file>',
      'file of cluster secrets, one per line; the first signs calls between services, all are accepted (or TESSERA_CLUSTER_SECRET, comma-separated)',
    ).env('TESSERA_CLUSTER_SECRET_FILE'),
    new Option('--insecure-cluster', 'run without a cluster secret: anyone who reaches the service may call its internal routes').env(
      'TESSERA_INSECURE_CLUSTER',
    ),
    new Option('--headers-timeout-ms <ms>', 'time a client has to send its request headers')
      .env('TESSERA_HEADERS_TIMEOUT_MS')
      .argParser(positive)
      .default(d.headersTimeoutMs),
    new Option('--request-timeout-ms <ms>', 'time a client has to send its whole request')
      .env('TESSERA_REQUEST_TIMEOUT_MS')
      .argParser(positive)
      .default(d.requestTimeoutMs),
    new Option('--keep-alive-timeout-ms <ms>', 'an idle connection is closed after this long')
      .env('TESSERA_KEEP_ALIVE_TIMEOUT_MS')
      .argParser(positive)
      .default(d.keepAliveTimeoutMs),
    new Option('--max-connections <n>', 'open connections beyond this are closed at once')
      .env('TESSERA_MAX_CONNECTIONS')
      .argParser(positive)
      .default(d.maxConnections),
  ];
}

/**
 * Reads the files the edge flags name. Throws a one-line error when one is missing or wrong, or
 * when no cluster secret is given without --insecure-cluster: a service is secure by default.
 */
export function edgeConfig(flags: EdgeFlags, env: NodeJS.ProcessEnv = process.env): EdgeConfig {
  const tls = loadTlsFiles(flags);
  const clusterSecrets = loadClusterSecrets(flags.clusterSecretFile, env.TESSERA_CLUSTER_SECRET);
  if (clusterSecrets === undefined && flags.insecureCluster !== true) {
    throw new Error(
      'no cluster secret: give --cluster-secret-file (or TESSERA_CLUSTER_SECRET), the same on every service, or --insecure-cluster to let anyone call the internal routes',
    );
  }
  return {
    ...(tls.server ? { tls: tls.server } : {}),
    ...(tls.client ? { clientTls: tls.client } : {}),
    ...(clusterSecrets ? { clusterSecrets } : {}),
    serverLimits: {
      headersTimeoutMs: flags.headersTimeoutMs,
      requestTimeoutMs: flags.requestTimeoutMs,
      keepAliveTimeoutMs: flags.keepAliveTimeoutMs,
      maxConnections: flags.maxConnections,
    },
  };
}
