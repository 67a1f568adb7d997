// Runs a real Prometheus against a local process cluster under a small workload, then runs every
// query of every Grafana dashboard panel through Prometheus's HTTP API: each must succeed and
// return at least one series, so no panel of the dashboards is empty or broken.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TesseraClient } from '@tessera/client';
import { type Cluster, launcher, startCluster, waitFor } from '../harness/cluster.js';
import { freePort } from '@tessera/protocol/test-support/ports';
import { History } from '../harness/history.js';
import { consumeInto, keys, produceKeyed } from '../harness/workload.js';
import { dashboards, panelQueries } from './dashboards.js';

const prometheusBinary = process.env.PROMETHEUS_BIN ?? 'prometheus';
const prometheusFound = spawnSync(prometheusBinary, ['--version']).status === 0;
if (!prometheusFound) {
  console.warn(`skipping the dashboard queries: no Prometheus binary "${prometheusBinary}" (apt-get install prometheus, or set PROMETHEUS_BIN)`);
}

let cluster: Cluster;
let prometheus: ChildProcess | undefined;
let receiver: http.Server | undefined;
let prometheusUrl: string;

async function query(expr: string): Promise<{ status: string; data?: { result: unknown[] }; error?: string }> {
  const response = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return (await response.json()) as { status: string; data?: { result: unknown[] }; error?: string };
}

/** A push subscription whose receiver refuses one record: deliveries, failed attempts and a dead letter. */
async function pushWorkload(client: TesseraClient, topic: string): Promise<void> {
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => res.writeHead(body.includes('"value":"poison"') ? 500 : 200).end());
  });
  await new Promise<void>((resolve) => receiver!.listen(0, '127.0.0.1', resolve));
  await client.admin.createTopic({ name: 'dashboards-dead-letters', partitions: 1 });
  await client.subscriptions.create({
    name: 'dashboards-hook',
    topic,
    url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/`,
    fromBeginning: true,
    maxAttempts: 2,
    deadLetterTopic: 'dashboards-dead-letters',
    backoffInitialMs: 10,
  });
  await client.producer().send({ topic, key: 'poison', value: 'poison' });
  await waitFor(async () => (await client.subscriptions.describe('dashboards-hook')).partitions.some((p) => p.deadLettered > 0), {
    what: 'the dead letter of the subscription',
  });
}

describe.skipIf(!prometheusFound)('the Grafana dashboards against a real Prometheus', () => {
  beforeAll(async () => {
    // Loopback targets allowed, for the push subscription's receiver below.
    cluster = await startCluster({ name: 'prometheus', serviceEnv: { TESSERA_SUBSCRIPTION_ALLOWED_TARGETS: 'loopback' } });
    const client = cluster.client();
    const topic = 'dashboards';
    await client.admin.createTopic({ name: topic, partitions: 3 });
    // One refused call of each kind (401 without credentials, 403 without the permission) for the authentication panel.
    expect((await fetch(`${cluster.coordinatorUrl}/topics`)).status).toBe(401);
    const reader = await client.admin.createPrincipal('dashboards-reader');
    const readerClient = cluster.client({ credentials: { principal: 'dashboards-reader', secret: reader.secret } });
    await expect(readerClient.admin.listPrincipals()).rejects.toMatchObject({ code: 'FORBIDDEN' });

    const dir = path.join(cluster.dataDir, 'prometheus');
    mkdirSync(dir, { recursive: true });
    const hostPort = (url: string) => new URL(url).host;
    writeFileSync(
      path.join(dir, 'prometheus.yml'),
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        'scrape_configs:',
        '  - job_name: tessera-coordinator',
        `    static_configs: [{ targets: ['${hostPort(cluster.coordinatorUrl)}'] }]`,
        '  - job_name: tessera-broker',
        `    static_configs: [{ targets: [${[...cluster.brokers.values()].map((b) => `'${hostPort(b.url)}'`).join(', ')}] }]`,
        '',
      ].join('\n'),
    );
    const port = await freePort();
    prometheusUrl = `http://127.0.0.1:${port}`;
    prometheus = spawn(
      prometheusBinary,
      [
        `--config.file=${path.join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: 'ignore' },
    );

    // A small workload: keyed records produced while a group consumes them.
    const history = new History();
    const consumer = client.consumer({ group: 'dashboards-group', topic, fromBeginning: true, waitMs: 500 });
    const consuming = consumeInto(consumer, history, 'dashboards-group');
    await produceKeyed(client.producer(), history, { topic, keys: keys(6), recordsPerKey: 50 });
    await waitFor(() => history.acknowledgedDelivered('dashboards-group') === 300, { what: 'the workload to be consumed' });
    // A push subscription (processes only: containers cannot reach a receiver on this machine's loopback).
    if (launcher === 'processes') await pushWorkload(client, topic);
    // Records that nobody consumes yet, so the lag panels have something to show.
    await produceKeyed(client.producer(), history, { topic, keys: keys(3, 'later'), recordsPerKey: 20 });

    await waitFor(
      async () => {
        const result = await query('up{job=~"tessera-.*"}');
        return (result.data?.result.length ?? 0) === 1 + cluster.brokers.size;
      },
      { what: 'Prometheus to scrape every service', timeoutMs: 30_000 },
    );
    // rate() needs two samples after the workload; a few scrapes at 1 s cover it.
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    await consumer.close();
    await consuming;
  }, 120_000);

  afterAll(async () => {
    if (prometheus?.pid) {
      prometheus.kill('SIGTERM');
      await new Promise((resolve) => prometheus!.once('exit', resolve));
    }
    await cluster?.stop();
    await new Promise((resolve) => (receiver ? receiver.close(resolve) : resolve(undefined)));
  });

  // The values of each template variable, as Grafana's `label_values(metric, label)` asks for them.
  const variableQueries = dashboards().flatMap((dashboard) =>
    dashboard.templating.list.flatMap((variable) => {
      const text = typeof variable.query === 'string' ? variable.query : (variable.query as { query?: string } | undefined)?.query;
      const match = /^label_values\((\w+), (\w+)\)$/.exec(text ?? '');
      return match ? [[`${dashboard.title} / $${variable.name}`, `count by (${match[2]}) (${match[1]})`]] : [];
    }),
  );
  it.each(variableQueries)('variable %s has values', async (_name, expr) => {
    let last: Awaited<ReturnType<typeof query>> | undefined;
    await waitFor(async () => ((last = await query(expr)).data?.result.length ?? 0) > 0, { what: expr, timeoutMs: 15_000, intervalMs: 500 }).catch(() => undefined);
    expect(last?.data?.result.length ?? 0).toBeGreaterThan(0);
  });

  // Each query as Grafana sends it with every variable at "All" (`$topic` as `.*`, ...).
  // The push subscription panels need the receiver of pushWorkload, which containers cannot reach.
  const panels = panelQueries().filter((q) => launcher === 'processes' || !q.query.includes('tessera_subscription_'));
  if (panels.length < panelQueries().length) console.log(`prometheus.test.ts: push subscription panels skipped with the ${launcher} launcher (the receiver is on this machine's loopback)`);
  it.each(panels.map((q) => [`${q.dashboard} / ${q.panel}: ${q.query}`, q.query]))('%s', async (_name, expr) => {
    // Counters and gauges may need one more scrape after the workload; retry briefly.
    let last: Awaited<ReturnType<typeof query>> | undefined;
    await waitFor(
      async () => {
        last = await query(expr);
        return last.status === 'success' && (last.data?.result.length ?? 0) > 0;
      },
      { what: `a series for ${expr}`, timeoutMs: 15_000, intervalMs: 500 },
    ).catch(() => undefined);
    expect(last?.error).toBeUndefined();
    expect(last?.status).toBe('success');
    expect(last?.data?.result.length ?? 0).toBeGreaterThan(0);
  });
});
