/**
 * CPU time of every process of a benchmark: each service's `process_cpu_seconds_total`
 * from its `/metrics` (the coordinator and every broker of the map), and this process's
 * own `process.cpuUsage()`, read before and after a run, so a report can say how many
 * microseconds of CPU each process spent per record.
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
  const metadata = await client.admin.metadata();
  const targets = [
    { process: 'coordinator', url: client.coordinatorUrl },
    ...metadata.brokers.filter((b) => b.alive).sort((a, b) => a.id - b.id).map((b) => ({ process: `broker-${b.id}`, url: b.url })),
  ];
  const trust = tls ?? discoverTls(client.coordinatorUrl);
  const http = new JsonHttpClient({ timeoutMs: METRICS_TIMEOUT_MS, maxSockets: 4, ...(trust ? { tls: trust } : {}) });
  let services: CpuSample[];
  try {
    services = await Promise.all(targets.map(async (target) => ({ process: target.process, cpuSeconds: await serviceCpuSeconds(http, target.url) })));
  } finally {
    http.close();
  }
  const own = process.cpuUsage();
  return [...services, { process: 'bench', cpuSeconds: (own.user + own.system) / 1e6 }];
}

/** CPU used between two samples, per record. */
export function cpuPerRecord(before: CpuSample[], after: CpuSample[], records: number): CpuUse[] {
  return after.map((end) => {
    const start = before.find((sample) => sample.process === end.process);
    const cpuSeconds = start?.cpuSeconds == null || end.cpuSeconds === null ? null : end.cpuSeconds - start.cpuSeconds;
    return { process: end.process, cpuSeconds, microsPerRecord: cpuSeconds === null || records === 0 ? null : (cpuSeconds * 1e6) / records };
  });
}

async function serviceCpuSeconds(http: JsonHttpClient, baseUrl: string): Promise<number | null> {
  try {
    return parseCpuSeconds(await http.getText(`${baseUrl.replace(/\/+$/, '')}/metrics`));
  } catch {
    return null;
  }
}

/** The value of `process_cpu_seconds_total` in a Prometheus text exposition, or null. */
export function parseCpuSeconds(text: string): number | null {
  const match = /^process_cpu_seconds_total(?:\{[^}]*\})? ([0-9.eE+-]+)$/m.exec(text);
  if (match === null) return null;
  const value = Number(match[1]);
  return Number.isFinite(value) ? value : null;
}
