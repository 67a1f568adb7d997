/**
 * CPU time of every process of a benchmark: each service's `process_cpu_seconds_total`
 * from its `/metrics` (the coordinator and every broker of the map), and this process's
 * own `process.cpuUsage()`, read before and after a run, so a report can say how many
 * microseconds of CPU each process spent per record; and each broker's open files
 * (`process_open_fds`), which must not grow with the partitions it holds.
 */
import { discoverTls, type TesseraClient } from '@tessera/client';
import { JsonHttpClient, type TlsClientOptions } from '@tessera/protocol';

export interface CpuSample {
  /** `coordinator`, `broker-<id>`, `bench` (this process). */
  process: string;
  cpuSeconds: number | null;
}

export interface CpuUse {
  process: string;
  cpuSeconds: number | null;
  /** CPU microseconds per record, null when the process could not be read. */
  microsPerRecord: number | null;
}

const METRICS_TIMEOUT_MS = 2_000;

/**
 * Reads every process's CPU seconds now (a service that does not answer reads as null). `/metrics`
 * is open to anyone, but over HTTPS it needs the cluster's CA: `tls`, else the one the client finds.
 */
export async function sampleCpu(client: TesseraClient, tls?: TlsClientOptions): Promise<CpuSample[]> {
  const services = await readServiceMetric(client, tls, 'process_cpu_seconds_total', { coordinator: true });
  const own = process.cpuUsage();
  return [...services.map(({ process, value }) => ({ process, cpuSeconds: value })), { process: 'bench', cpuSeconds: (own.user + own.system) / 1e6 }];
}

/** CPU used between two samples, per record. */
export function cpuPerRecord(before: CpuSample[], after: CpuSample[], records: number): CpuUse[] {
  return after.map((end) => {
    const start = before.find((sample) => sample.process === end.process);
    const cpuSeconds = start?.cpuSeconds == null || end.cpuSeconds === null ? null : end.cpuSeconds - start.cpuSeconds;
    return { process: end.process, cpuSeconds, microsPerRecord: cpuSeconds === null || records === 0 ? null : (cpuSeconds * 1e6) / records };
  });
}

export interface OpenFilesSample {
  /** `broker-<id>`. */
  process: string;
  /** The broker's `process_open_fds` (Linux only), null when not readable. */
  openFiles: number | null;
}

/** Every live broker's open file descriptors now, from its `/metrics`. */
export async function sampleOpenFiles(client: TesseraClient, tls?: TlsClientOptions): Promise<OpenFilesSample[]> {
  const brokers = await readServiceMetric(client, tls, 'process_open_fds', { coordinator: false });
  return brokers.map(({ process, value }) => ({ process, openFiles: value }));
}

type ProcessMetric = 'process_cpu_seconds_total' | 'process_open_fds';

/** One process metric of every live broker (and the coordinator first, if asked), from each one's `/metrics`. */
async function readServiceMetric(
  client: TesseraClient,
  tls: TlsClientOptions | undefined,
  name: ProcessMetric,
  { coordinator }: { coordinator: boolean },
): Promise<Array<{ process: string; value: number | null }>> {
  const metadata = await client.admin.metadata();
  const targets = [
    ...(coordinator ? [{ process: 'coordinator', url: client.coordinatorUrl }] : []),
    ...metadata.brokers.filter((b) => b.alive).sort((a, b) => a.id - b.id).map((b) => ({ process: `broker-${b.id}`, url: b.url })),
  ];
  const trust = tls ?? discoverTls(client.coordinatorUrl);
  const http = new JsonHttpClient({ timeoutMs: METRICS_TIMEOUT_MS, maxSockets: 4, ...(trust ? { tls: trust } : {}) });
  try {
    return await Promise.all(
      targets.map(async (target) => {
        try {
          return { process: target.process, value: parseProcessMetric(await http.getText(`${target.url.replace(/\/+$/, '')}/metrics`), name) };
        } catch {
          return { process: target.process, value: null };
        }
      }),
    );
  } finally {
    http.close();
  }
}

/** The value of `process_cpu_seconds_total` in a Prometheus text exposition, or null. */
export function parseCpuSeconds(text: string): number | null {
  return parseProcessMetric(text, 'process_cpu_seconds_total');
}

/** The value of an unlabelled (or singly reported) process metric in a Prometheus text exposition, or null. */
function parseProcessMetric(text: string, name: ProcessMetric): number | null {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'm').exec(text);
  if (match === null) return null;
  const value = Number(match[1]);
  return Number.isFinite(value) ? value : null;
}
