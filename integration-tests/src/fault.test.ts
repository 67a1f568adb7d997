// Promises 1-5 under injected faults. For each seeded schedule, keyed producers and a consumer
// group run while the nemesis applies every fault kind once (SIGKILL + restart, SIGSTOP/SIGCONT,
// a cut or blackholed replication link, a cut link to the coordinator, a coordinator crash, a
// broker drained and given back its share, a broker joining), one at a time; then the history
// checker compares what producers were told with what two groups received. Lost, unexpected and
// reordered records must be zero, and so must records stored twice by the log (the producers are
// idempotent, the client's default); records delivered again after a rebalance are reported.
//
// Replay a failing seed:  TESSERA_FAULT_SEEDS=<seed> npx vitest run integration-tests/src/fault.test.ts
// Soak:                   pnpm test:soak --minutes 30   (random seeds until the time is up,
//                         every other one over TLS: replay such a seed with TESSERA_FAULT_TLS_SEEDS=<seed> too)
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Consumer } from '@tessera/client';
import { JsonHttpClient } from '@tessera/protocol';
import { type Cluster, startCluster, waitFor, launcher } from './harness/cluster.js';
import { History, describeReport } from './harness/history.js';
import { KeyedLoad } from './harness/keyed-load.js';
import { FAULT_KINDS, Nemesis, planSchedule } from './harness/nemesis.js';
import { consumeInto, keys } from './harness/workload.js';

const BROKER_TIMEOUT_MS = 1_500;
const soakMinutes = Number(process.env.TESSERA_SOAK_MINUTES ?? 0);
// 676965 is kept from a soak run that found a new primary's trailing HW refusing a consumer's commit.
const fixedSeeds = (process.env.TESSERA_FAULT_SEEDS ?? '11,23,42,676965')
  .split(',')
  .map((seed) => Number(seed.trim()))
  .filter((seed) => Number.isInteger(seed));
// The containers launcher runs every seed in plain HTTP; processes can run one over TLS.
const tlsPossible = launcher === 'processes';
// Seeds run with TLS on every hop (every run has signed internal calls and authentication).
const tlsSeeds = new Set(
  (process.env.TESSERA_FAULT_TLS_SEEDS ?? '42')
    .split(',')
    .map((seed) => Number(seed.trim()))
    .filter((seed) => Number.isInteger(seed) && tlsPossible),
);

let cluster: Cluster | undefined;
/** Set by a failing schedule: its cluster's logs and SQLite files stay for a post-mortem. */
let keepData = false;

afterEach(async () => {
  const before = process.env.TESSERA_KEEP_DATA;
  if (keepData) process.env.TESSERA_KEEP_DATA = '1';
  try {
    await cluster?.stop();
  } finally {
    if (before === undefined) delete process.env.TESSERA_KEEP_DATA;
    else process.env.TESSERA_KEEP_DATA = before;
    keepData = false;
    cluster = undefined;
  }
});

/** Keeps the data of the schedule that runs now (see keepData). */
function keepForPostMortem(nemesis: Nemesis): void {
  if (launcher !== 'processes' || cluster === undefined) return;
  keepData = true;
  nemesis.log(`logs and data kept in ${cluster.dataDir}`);
}

/** Runs one seeded schedule on a fresh cluster (over TLS or in plain HTTP) and checks the history. */
async function runSchedule(seed: number, tls = tlsSeeds.has(seed)): Promise<void> {
  cluster = await startCluster({
    name: `fault-${seed}`,
    proxies: true,
    tls,
    brokerTimeoutMs: BROKER_TIMEOUT_MS,
    heartbeatMs: 200,
    replicaTimeoutMs: 800,
    groupSessionTimeoutMs: 4_000,
  });
  const client = cluster.client({ requestTimeoutMs: 3_000 });
  const topic = `fault-${seed}`;
  await client.admin.createTopic({ name: topic, partitions: 6, replicationFactor: 2 });
  const nemesis = new Nemesis(cluster, client.admin, seed, topic);
  await nemesis.logMap('start:');

  const history = new History();
  const members: Consumer[] = [];
  const consuming: Promise<void>[] = [];
  for (let i = 0; i < 2; i++) {
    const member = client.consumer({ group: 'workers', topic, fromBeginning: true, waitMs: 300, sessionTimeoutMs: 4_000 });
    members.push(member);
    consuming.push(consumeInto(member, history, 'workers'));
  }
  const load = new KeyedLoad(history, topic, randomUUID().slice(0, 8));
  for (let p = 0; p < 3; p++) {
    load.start(client.producer({ lingerMs: 1, deliveryTimeoutMs: 15_000 }), keys(4, `p${p}-key`));
  }

  const kinds = cluster.links ? [...FAULT_KINDS] : FAULT_KINDS.filter((kind) => !kind.includes('replication') && !kind.includes('link'));
  const schedule = planSchedule(seed, [...cluster.brokers.keys()], { brokerTimeoutMs: BROKER_TIMEOUT_MS, kinds });
  try {
    for (const [index, step] of schedule.entries()) await nemesis.apply(step, index, schedule.length);
  } catch (error) {
    nemesis.log(`schedule failed: ${(error as Error).message}`);
    keepForPostMortem(nemesis);
    await nemesis.healAll();
    throw error;
  } finally {
    await load.stop();
  }
  nemesis.log(`producers stopped: ${load.acknowledged} acknowledged, ${load.unknown} unknown`);
  nemesis.log(`retried batches answered from the producer state (brokers up now, since their start): ${await duplicateBatches(cluster)}`);

  // Every acknowledged record reaches the group that ran through the faults, and a new group
  // reading the logs afterwards finds them all too.
  const audit = client.consumer({ group: 'audit', topic, fromBeginning: true, waitMs: 300 });
  consuming.push(consumeInto(audit, history, 'audit'));
  for (const group of ['workers', 'audit']) {
    await waitFor(() => history.acknowledgedDelivered(group) === load.acknowledged, {
      what: `group ${group} to receive all ${load.acknowledged} acknowledged records`,
      timeoutMs: 60_000,
      intervalMs: 200,
    }).catch((error) => nemesis.log(`${(error as Error).message}; checking what arrived`));
  }
  await Promise.all([...members, audit].map((consumer) => consumer.close()));
  await Promise.all(consuming);

  const reports = (['workers', 'audit'] as const).map((group) => {
    const report = history.check(group);
    nemesis.log(
      `${group}: ${report.acknowledged} acknowledged, ${report.delivered} delivered, lost ${report.lost.length}, ` +
        `unexpected ${report.unexpected.length}, reordered ${report.reordered.length}, ` +
        `stored duplicates ${report.storedDuplicates}, redelivered ${report.redelivered}`,
    );
    return report;
  });
  if (load.acknowledged === 0 || reports.some((r) => r.lost.length + r.unexpected.length + r.reordered.length + r.storedDuplicates > 0)) {
    keepForPostMortem(nemesis);
  }
  for (const report of reports) {
    const context = `seed ${seed} (replay: TESSERA_FAULT_SEEDS=${seed}) ${describeReport(report)}\n${nemesis.trace.join('\n')}`;
    expect(report.lost, context).toEqual([]);
    expect(report.unexpected, context).toEqual([]);
    expect(report.reordered, context).toEqual([]);
    expect(report.storedDuplicates, context).toBe(0);
  }
  expect(load.acknowledged).toBeGreaterThan(0);
}

/** The sum of tessera_broker_produce_duplicate_batches_total over the running brokers (a restart resets a broker's count). */
async function duplicateBatches(target: Cluster): Promise<number> {
  const http = new JsonHttpClient({ timeoutMs: 3_000, tls: target.tls });
  let total = 0;
  try {
    for (const broker of target.brokers.values()) {
      if (!broker.running) continue;
      const text = await http.getText(`${broker.url}/metrics`).catch(() => '');
      total += Number(/^tessera_broker_produce_duplicate_batches_total (\d+)$/m.exec(text)?.[1] ?? 0);
    }
  } finally {
    http.close();
  }
  return total;
}

describe(`the fault-injection suite (${launcher})`, () => {
  if (soakMinutes > 0) {
    it(`soaks with random seeds for ${soakMinutes} minutes`, async () => {
      const deadline = Date.now() + soakMinutes * 60_000;
      let runs = 0;
      while (Date.now() < deadline) {
        const seed = Math.floor(Math.random() * 1_000_000);
        // Every other schedule over TLS (with processes), so both kinds of link are soaked.
        const tls = tlsPossible && runs % 2 === 1;
        console.log(`soak run ${++runs}: seed ${seed} ${tls ? 'over TLS' : 'in plain HTTP'}`);
        await runSchedule(seed, tls);
        await cluster?.stop();
        cluster = undefined;
      }
      expect(runs).toBeGreaterThan(0);
    }, (soakMinutes + 10) * 60_000);
  } else {
    it.each(fixedSeeds.map((seed) => [seed, tlsSeeds.has(seed) ? 'over TLS' : 'in plain HTTP'] as const))(
      'loses, invents and reorders nothing under seed %i %s',
      (seed) => runSchedule(seed),
      300_000,
    );
  }
});
