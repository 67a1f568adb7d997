import { statfsSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface ServiceMetrics {
  requestDuration: Histogram<'method' | 'route' | 'status'>;
  /** Requests refused because their credential is missing or wrong, by reason (no principal: it is not known). */
  authFailures: Counter<'reason'>;
  /** Authenticated requests refused for want of a permission, by principal. */
  authDenied: Counter<'principal'>;
}

/** One registry per service, with the process metrics and the request latency histogram. */
export function createMetrics(service: string): { registry: Registry; metrics: ServiceMetrics } {
  const registry = new Registry();
  // Unprefixed, as every Node.js process exports them, so stock process and runtime dashboards apply.
  collectDefaultMetrics({ register: registry });
  const requestDuration = new Histogram({
    name: `tessera_${service}_request_duration_seconds`,
    help: `Time to answer an HTTP request to the ${service}, by route`,
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const authFailures = new Counter({
    name: 'tessera_auth_failures_total',
    help: 'Requests refused with 401: missing, malformed, expired or wrongly signed credentials, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const authDenied = new Counter({
    name: 'tessera_auth_denied_total',
    help: 'Authenticated requests refused with 403 for want of a permission, by principal',
    labelNames: ['principal'] as const,
    registers: [registry],
  });
  return { registry, metrics: { requestDuration, authFailures, authDenied } };
}

/**
 * Free and total bytes of the filesystem holding `dataDir`, read at scrape time: a full disk
 * stops every write (SQLite fails with SQLITE_FULL), so operators alert on it before it happens.
 */
export function registerDiskMetrics(registry: Registry, dataDir: string): void {
  const read = () => {
    try {
      const stats = statfsSync(dataDir);
      return { free: stats.bavail * stats.bsize, size: stats.blocks * stats.bsize };
    } catch {
      // The directory vanished or is unreadable: no sample rather than a false 0.
      return undefined;
    }
  };
  new Gauge({
    name: 'tessera_data_dir_free_bytes',
    help: 'Bytes available to this process on the filesystem holding its data directory',
    registers: [registry],
    collect() {
      const disk = read();
      if (disk) this.set(disk.free);
    },
  });
  new Gauge({
    name: 'tessera_data_dir_size_bytes',
    help: 'Size in bytes of the filesystem holding the data directory',
    registers: [registry],
    collect() {
      const disk = read();
      if (disk) this.set(disk.size);
    },
  });
}

/** A label set and its value, as a collector's `get()` answers them (`metricName` for a histogram's series). */
export interface CollectorSample {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/**
 * A metric made without prom-client (the broker and the coordinator do not depend on it): the
 * registry reads only its name, help and type, and calls `get()` at scrape time.
 */
export interface CollectorMetric {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  get(): Promise<{ name: string; help: string; type: string; values: CollectorSample[]; aggregator: string }>;
}

/** Registers collectors in a service's registry; a name registered twice throws (prom-client's check). */
export function registerCollectors(registry: Registry, metrics: readonly CollectorMetric[]): void {
  // prom-client types registerMetric() for its own classes; it uses only what CollectorMetric has.
  for (const metric of metrics) registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
}
