/**
 * `pnpm bench:failover [--kills 20] [--broker-timeout-ms 3000]`: how long a partition
 * cannot take writes after its primary crashes. A measurement, not a test.
 *
 * It starts a real cluster (coordinator + 3 brokers as processes on loopback), creates a
 * topic with replication factor 2, keeps a producer (the client library) writing to every
 * partition, and then, `--kills` times: picks a partition, SIGKILLs its primary, and probes
 * the partition with single-record produce requests every few ms (each one sent to the
 * primary the coordinator names at that moment) until one is acknowledged. That interval,
 * from the SIGKILL to the first acknowledgement, is the failover time. The broker is then
 * restarted and the run waits until every partition has both replicas in sync again before
 * the next kill. At the end a fresh consumer group reads the topic from the beginning and
 * the run reports how many acknowledged records it did not get (it should be zero).
 *
 * Progress goes to stderr, the final table to stdout.
 */
import { parseArgs } from 'node:util';
import type { TesseraClient } from '@tessera/client';
import type { Cluster } from '@tessera/integration-tests/harness/cluster';
import { startProcessCluster } from '@tessera/integration-tests/harness/process-cluster';
import { type MetadataResponse, sleep } from '@tessera/protocol';

const USAGE = `usage: pnpm bench:failover [--kills 20] [--broker-timeout-ms 3000] [--heartbeat-ms 500]
  [--replica-timeout-ms 2000] [--partitions 6] [--rate 600] [--probe-interval-ms 5]
  [--durability full|normal] [--keep-data]`;

const { values: flags } = parseArgs({
  options: {
    kills: { type: 'string', default: '20' },
    'broker-timeout-ms': { type: 'string', default: '3000' },
    'heartbeat-ms': { type: 'string', default: '500' },
    'replica-timeout-ms': { type: 'string', default: '2000' },
    partitions: { type: 'string', default: '6' },
    rate: { type: 'string', default: '600' },
    'probe-interval-ms': { type: 'string', default: '5' },
    durability: { type: 'string', default: 'full' },
    'keep-data': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

function positiveInt(name: keyof typeof flags): number {
  const value = Number(flags[name]);
  if (!Number.isInteger(value) || value <= 0) {
    process.stderr.write(`--${name} must be a positive integer, got ${String(flags[name])}\n${USAGE}\n`);
    process.exit(2);
  }
  return value;
}

const kills = positiveInt('kills');
const brokerTimeoutMs = positiveInt('broker-timeout-ms');
const heartbeatMs = positiveInt('heartbeat-ms');
const replicaTimeoutMs = positiveInt('replica-timeout-ms');
const partitions = positiveInt('partitions');
const ratePerSecond = positiveInt('rate');
const probeIntervalMs = positiveInt('probe-interval-ms');
const durability = flags.durability === 'normal' ? 'normal' : 'full';
const topic = 'failover-bench';
const BROKERS = 3;
/** A kill whose partition takes no write for this long is reported as a failure of the run. */
const PROBE_LIMIT_MS = 60_000;
/** How long the cluster may take to be fully in sync again after a restart. */
const RESYNC_LIMIT_MS = 120_000;
/** Bound on the continuous producer's records sent and not yet settled, per partition. */
const MAX_OUTSTANDING_PER_PARTITION = 2_000;
/** The map must stay unchanged this long (and in sync) before the next kill. */
const SETTLED_MS = 1_500;

const log = (line: string) => process.stderr.write(`${line}\n`);

interface KillSample {
  partition: number;
  brokerId: number;
  /** SIGKILL → first acknowledged probe. */
  failoverMs: number;
  /** SIGKILL → the coordinator's broker_down event (detection). */
  detectMs: number | null;
  /** SIGKILL → the coordinator's failover event for the partition. */
  promotedMs: number | null;
  /** SIGKILL → first acknowledgement the client library's producer got for a record sent after the kill. */
  producerMs: number | null;
  probes: number;
  /** Restart → every partition with both replicas in the ISR. */
  resyncMs: number;
}

async function metadata(coordinatorUrl: string): Promise<MetadataResponse> {
  const response = await fetch(`${coordinatorUrl}/metadata?topics=${topic}`, { signal: AbortSignal.timeout(2_000) });
  if (!response.ok) throw new Error(`metadata: HTTP ${response.status}`);
  return (await response.json()) as MetadataResponse;
}

function percentile(sorted: number[], fraction: number): number {
  return sorted[Math.max(0, Math.ceil(fraction * sorted.length) - 1)];
}

async function main(): Promise<void> {
  const runStartedMs = performance.now();
  let cluster: Cluster | undefined;
  let client: TesseraClient | undefined;
  try {
    // The integration tests' process launcher: it waits until every broker is alive.
    cluster = await startProcessCluster({ name: 'failover-bench', brokers: BROKERS, heartbeatMs, brokerTimeoutMs, replicaTimeoutMs, durability });
    log(`data and logs in ${cluster.dataDir}`);
    const { coordinatorUrl } = cluster;
    client = cluster.client();
    await client.admin.createTopic({ name: topic, partitions, replicationFactor: 2 });
    log(
      `cluster up: ${BROKERS} brokers, topic ${topic} (${partitions} partitions, rf 2), heartbeatMs ${heartbeatMs}, ` +
        `brokerTimeoutMs ${brokerTimeoutMs}, replicaTimeoutMs ${replicaTimeoutMs}, durability ${durability}`,
    );

    // Every value is unique, so the final read can tell exactly which acknowledged records it got.
    const acknowledged = new Set<string>();
    let producerFailed = 0;
    const outstanding = new Array<number>(partitions).fill(0);
    /**
     * Per partition: send and ack time of each acknowledgement in ack order, for the producer-side
     * recovery time (bounded: the run produces at a fixed rate for a bounded number of kills).
     */
    const acks: Array<Array<{ sentMs: number; ackMs: number }>> = Array.from({ length: partitions }, () => []);
    const producer = client.producer();
    let producing = true;
    let sequence = 0;
    const tickMs = 10;
    const perTick = Math.max(1, Math.round((ratePerSecond * tickMs) / 1000 / partitions));
    const producerLoop = (async () => {
      while (producing) {
        for (let partition = 0; partition < partitions; partition++) {
          for (let i = 0; i < perTick && outstanding[partition] < MAX_OUTSTANDING_PER_PARTITION; i++) {
            const value = `p${partition}-${sequence++}`;
            const sentMs = performance.now();
            outstanding[partition]++;
            producer.send({ topic, partition, value }).then(
              () => {
                outstanding[partition]--;
                acknowledged.add(value);
                acks[partition].push({ sentMs, ackMs: performance.now() });
              },
              () => {
                outstanding[partition]--;
                producerFailed++;
              },
            );
          }
        }
        await sleep(tickMs);
      }
    })();

    await waitSettled(coordinatorUrl, RESYNC_LIMIT_MS);

    const samples: KillSample[] = [];
    const killedAt: number[] = [];
    let probeSequence = 0;
    for (let kill = 0; kill < kills; kill++) {
      const partition = kill % partitions;
      const before = await metadata(coordinatorUrl);
      const brokerId = before.topics[0].partitions[partition].primary;
      if (brokerId === null) throw new Error(`partition ${partition} is offline before kill ${kill + 1}`);
      const victim = cluster.brokers.get(brokerId)!;

      const killedAtMs = performance.now();
      const killedAtWallMs = Date.now();
      await victim.kill();
      // Probe: one record per request, always to the primary the coordinator names right now,
      // with no client-side backoff, so the number is the cluster's and not the client's.
      let probes = 0;
      let failoverMs: number | undefined;
      while (failoverMs === undefined) {
        if (performance.now() - killedAtMs > PROBE_LIMIT_MS) {
          throw new Error(`partition ${partition} took no write within ${PROBE_LIMIT_MS} ms of killing broker ${brokerId}`);
        }
        probes++;
        const value = `probe-${probeSequence++}`;
        try {
          const map = await metadata(coordinatorUrl);
          const assignment = map.topics[0].partitions[partition];
          const primary = map.brokers.find((b) => b.id === assignment.primary);
          if (primary?.alive) {
            const response = await fetch(`${primary.url}/topics/${topic}/partitions/${partition}/records`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ records: [{ value }] }),
              signal: AbortSignal.timeout(1_000),
            });
            await response.arrayBuffer();
            if (response.ok) {
              failoverMs = performance.now() - killedAtMs;
              acknowledged.add(value);
              break;
            }
          }
        } catch {
          // Refused, reset or timed out: the outcome of this probe is unknown, try again.
        }
        await sleep(probeIntervalMs);
      }
      // Where the time went, from the coordinator's event log (same machine, same wall clock).
      const events = await clusterEvents(coordinatorUrl).catch(() => []);
      const down = events.find((e) => e.type === 'broker_down' && e.brokerId === brokerId && e.timeMs >= killedAtWallMs);
      const promoted = events.find((e) => e.type === 'failover' && e.topic === topic && e.partition === partition && e.timeMs >= killedAtWallMs);
      const detectMs = down ? down.timeMs - killedAtWallMs : null;
      const promotedMs = promoted ? promoted.timeMs - killedAtWallMs : null;

      const restartedAtMs = performance.now();
      await victim.start();
      // In sync, and no rebalancing move left: the next kill starts from a quiet cluster.
      await waitSettled(coordinatorUrl, RESYNC_LIMIT_MS);
      const resyncMs = performance.now() - restartedAtMs;
      samples.push({ partition, brokerId, failoverMs, detectMs, promotedMs, producerMs: null, probes, resyncMs });
      killedAt.push(killedAtMs);
      const ms = (v: number | null) => (v === null ? 'n/a' : `${v.toFixed(0)} ms`);
      log(
        `kill ${String(kill + 1).padStart(2)}/${kills}: partition ${partition}, broker ${brokerId} SIGKILLed → ` +
          `declared dead ${ms(detectMs)}, failover ${ms(promotedMs)}, first ack ${ms(failoverMs)} (${probes} probes); ` +
          `restarted, settled after ${(resyncMs / 1000).toFixed(1)} s; acknowledged so far ${acknowledged.size}`,
      );
    }

    producing = false;
    await producerLoop;
    await producer.flush().catch(() => undefined);
    // The client library's view (its retry backoff included): the first acknowledgement of a
    // record sent after the kill, looked up now that every record has settled.
    samples.forEach((sample, i) => {
      const recovered = acks[sample.partition].find((ack) => ack.sentMs >= killedAt[i]);
      sample.producerMs = recovered ? recovered.ackMs - killedAt[i] : null;
    });
    const producedMs = performance.now();
    log(`producer stopped: ${acknowledged.size} records acknowledged, ${producerFailed} failed (not acknowledged); reading them back`);

    // The check: a fresh group reads everything and every acknowledged value must be there.
    const consumer = client.consumer({ group: `failover-check-${Date.now()}`, topic, fromBeginning: true });
    const seen = new Set<string>();
    let delivered = 0;
    let lastNewMs = performance.now();
    while (performance.now() - lastNewMs < 15_000) {
      const records = await consumer.poll({ maxRecords: 10_000, waitMs: 500 });
      for (const record of records) {
        delivered++;
        const value = record.value?.toString() ?? '';
        if (!seen.has(value)) lastNewMs = performance.now();
        seen.add(value);
      }
      if (records.length > 0) await consumer.commit(records);
      if (seen.size >= acknowledged.size) {
        let missing = 0;
        for (const value of acknowledged) if (!seen.has(value)) missing++;
        if (missing === 0) break;
      }
    }
    await consumer.close();
    let lost = 0;
    for (const value of acknowledged) if (!seen.has(value)) lost++;
    const readSeconds = (performance.now() - producedMs) / 1000;

    const failover = samples.map((s) => s.failoverMs).sort((a, b) => a - b);
    const detect = samples.flatMap((s) => (s.detectMs === null ? [] : [s.detectMs])).sort((a, b) => a - b);
    const promotedSorted = samples.flatMap((s) => (s.promotedMs === null ? [] : [s.promotedMs])).sort((a, b) => a - b);
    const producerSide = samples.flatMap((s) => (s.producerMs === null ? [] : [s.producerMs])).sort((a, b) => a - b);
    const resync = samples.map((s) => s.resyncMs).sort((a, b) => a - b);
    const row = (name: string, sorted: number[], unit: 'ms' | 's') => {
      const f = (v: number | undefined) => (v === undefined ? 'n/a' : unit === 'ms' ? `${v.toFixed(0)} ms` : `${(v / 1000).toFixed(1)} s`);
      return `| ${name} | ${sorted.length} | ${f(percentile(sorted, 0.5))} | ${f(percentile(sorted, 0.9))} | ${f(sorted[sorted.length - 1])} | ${f(sorted[0])} |`;
    };
    const totalSeconds = (performance.now() - runStartedMs) / 1000;
    const out = [
      '',
      `failover bench: ${kills} kills, brokerTimeoutMs ${brokerTimeoutMs}, heartbeatMs ${heartbeatMs}, replicaTimeoutMs ${replicaTimeoutMs}, ` +
        `durability ${durability}, ${BROKERS} brokers, ${partitions} partitions, rf 2, ~${ratePerSecond} records/s background`,
      '',
      '| measure | kills | p50 | p90 | max | min |',
      '| --- | --- | --- | --- | --- | --- |',
      row('SIGKILL → coordinator declares the broker dead', detect, 'ms'),
      row('SIGKILL → coordinator promotes the secondary', promotedSorted, 'ms'),
      row('SIGKILL → first acknowledged probe', failover, 'ms'),
      row('SIGKILL → first ack to the client producer', producerSide, 'ms'),
      row('restart → all partitions in sync, map settled', resync, 's'),
      '',
      `records acknowledged ${acknowledged.size} (incl. ${samples.length} probes), failed ${producerFailed}, ` +
        `delivered to a fresh group ${delivered} (distinct ${seen.size}), lost ${lost}`,
      `run took ${totalSeconds.toFixed(0)} s (read-back ${readSeconds.toFixed(1)} s)`,
      '',
    ];
    process.stdout.write(out.join('\n'));
    if (lost > 0) process.exitCode = 1;
  } finally {
    await client?.close().catch(() => undefined);
    if (flags['keep-data'] || process.exitCode === 1) {
      process.env.TESSERA_KEEP_DATA = '1';
      if (cluster) log(`kept ${cluster.dataDir}`);
    }
    await cluster?.stop();
  }
}

/**
 * Every broker alive, every partition of the topic with both replicas in the ISR, primaries
 * within one of each other per broker (the coordinator's leadership balance after a broker's
 * return is done), and the map unchanged for SETTLED_MS (so moves after a return are over).
 */
async function waitSettled(coordinatorUrl: string, timeoutMs: number): Promise<void> {
  let stableSince = 0;
  let lastVersion = -1;
  await waitUntil(
    async () => {
      const map = await metadata(coordinatorUrl);
      const led = map.brokers.filter((b) => b.alive).map((b) => map.topics[0].partitions.filter((p) => p.primary === b.id).length);
      const inSync =
        led.length === BROKERS &&
        Math.max(...led) - Math.min(...led) <= 1 &&
        map.topics[0].partitions.every((p) => p.primary !== null && p.isr.length === 2);
      if (!inSync || map.version !== lastVersion) {
        lastVersion = inSync ? map.version : -1;
        stableSince = performance.now();
        return false;
      }
      return performance.now() - stableSince >= SETTLED_MS;
    },
    timeoutMs,
    'every partition in sync and a settled map',
  );
}

interface ClusterEventLine {
  timeMs: number;
  type: string;
  brokerId?: number;
  topic?: string;
  partition?: number;
}

async function clusterEvents(coordinatorUrl: string): Promise<ClusterEventLine[]> {
  const response = await fetch(`${coordinatorUrl}/cluster/events?limit=200`, { signal: AbortSignal.timeout(2_000) });
  if (!response.ok) throw new Error(`cluster events: HTTP ${response.status}`);
  return ((await response.json()) as { events: ClusterEventLine[] }).events;
}

async function waitUntil(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if (await condition()) return;
    } catch {
      // The coordinator may be busy; ask again.
    }
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

main().catch((error: unknown) => {
  log(`bench:failover failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
});
