// Checks that docker-compose.yml, prometheus/prometheus.yml, the Grafana provisioning, the GitLab
// pipeline and the services' real configuration agree: ports, environment names, scrape targets
// and the datasource the dashboards use.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ENTRY_POINTS } from '../harness/process.js';
import { dashboardFiles, dashboards, panelQueries, repoRoot } from './dashboards.js';

// Compose files use YAML merge keys (`<<: *broker`), which YAML 1.2 parsers apply only when asked.
const readYaml = (file: string) => parse(readFileSync(path.join(repoRoot, file), 'utf8'), { merge: true });
const compose = readYaml('docker-compose.yml') as {
  services: Record<string, { command?: string[]; environment?: Record<string, string>; volumes?: string[]; ports?: string[] }>;
};
const prometheus = readYaml('prometheus/prometheus.yml') as {
  scrape_configs: Array<{ job_name: string; scheme?: string; tls_config?: { ca_file: string }; static_configs: Array<{ targets: string[] }> }>;
};
const datasources = readYaml('grafana/provisioning/datasources/prometheus.yml') as {
  datasources: Array<{ name: string; uid: string; type: string; url: string }>;
};
const providers = readYaml('grafana/provisioning/dashboards/tessera.yml') as {
  providers: Array<{ type: string; options: { path: string } }>;
};

const helpOf = (role: 'coordinator' | 'broker') =>
  spawnSync(process.execPath, [ENTRY_POINTS[role], '--help'], { encoding: 'utf8' }).stdout;

const services = Object.entries(compose.services);
const tesseraServices = services.filter(([, service]) => ['coordinator', 'broker'].includes(service.command?.[0] ?? ''));

describe('docker-compose.yml', () => {
  it('runs a coordinator and three brokers with distinct ids, ports and volumes', () => {
    const brokers = tesseraServices.filter(([, service]) => service.command?.[0] === 'broker');
    expect(tesseraServices.filter(([, service]) => service.command?.[0] === 'coordinator')).toHaveLength(1);
    expect(brokers).toHaveLength(3);
    expect(new Set(brokers.map(([, s]) => s.environment?.TESSERA_BROKER_ID)).size).toBe(3);
    expect(new Set(brokers.map(([, s]) => s.environment?.TESSERA_PORT)).size).toBe(3);
    for (const [name, service] of brokers) {
      // Other containers and clients reach a broker by its compose name and its own port.
      expect(service.environment?.TESSERA_ADVERTISED_URL).toBe(`https://${name}:${service.environment?.TESSERA_PORT}`);
      expect(service.environment?.TESSERA_COORDINATOR).toBe(`https://coordinator:${compose.services.coordinator.environment?.TESSERA_PORT}`);
      // Its own certificate (made by tls-init under its compose name), and the cluster secret.
      expect(service.environment?.TESSERA_TLS_CERT).toBe(`/tls/private/${name}.crt`);
      expect(service.environment?.TESSERA_CLUSTER_SECRET_FILE).toBe('/tls/private/cluster-secret');
      expect(service.volumes?.some((volume) => volume.endsWith(':/data'))).toBe(true);
    }
  });

  it('uses only environment variables the services know', () => {
    const help = { coordinator: helpOf('coordinator'), broker: helpOf('broker') };
    for (const [name, service] of tesseraServices) {
      const role = service.command![0] as 'coordinator' | 'broker';
      for (const variable of Object.keys(service.environment ?? {})) {
        expect(help[role], `${name} sets ${variable}`).toContain(variable);
      }
    }
  });

  it('runs every helper (a shell or the CLI, no data) under an init, so docker stop ends it at once', () => {
    const helpers = services.filter(([, service]) => (service as { image?: string }).image?.includes('tessera') && !['coordinator', 'broker'].includes(service.command?.[0] ?? ''));
    expect(helpers.map(([name]) => name).sort()).toEqual(['cli', 'demo-consumer', 'demo-producer', 'demo-topic', 'demo-webhook', 'tls-init']);
    for (const [name, service] of helpers) expect((service as { init?: boolean }).init, name).toBe(true);
  });

  it('keeps data only in named volumes, and the image declares no VOLUME (no anonymous volume per container)', () => {
    const named = Object.keys((readYaml('docker-compose.yml') as { volumes: Record<string, unknown> }).volumes);
    for (const [name, service] of services) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0]!;
        if (!source.startsWith('./')) expect(named, `${name}: ${volume}`).toContain(source);
      }
    }
    const dockerfile = readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');
    expect(dockerfile).not.toMatch(/^VOLUME/m);
  });

  it("lets the demo subscription call the demo's receiver, and gives the receiver the secret the demo saves", () => {
    const demoTopic = compose.services['demo-topic'] as { environment?: Record<string, string>; volumes?: string[]; command?: string[] };
    const webhook = compose.services['demo-webhook'] as { environment?: Record<string, string>; volumes?: string[] };
    const url = new URL(demoTopic.environment?.DEMO_WEBHOOK_URL ?? '');
    const allowed = (compose.services.coordinator.environment?.TESSERA_SUBSCRIPTION_ALLOWED_TARGETS ?? '').split(',');
    expect(allowed).toContain(url.hostname);
    expect(allowed).toContain('public');
    expect(compose.services).toHaveProperty(url.hostname);
    expect(demoTopic.volumes).toContain('demo-webhook:/data');
    expect(demoTopic.command?.join(' ')).toContain('> /data/secret.tmp && mv /data/secret.tmp /data/secret');
    expect(webhook.volumes).toContain('demo-webhook:/data:ro');
    expect(webhook.environment?.DEMO_WEBHOOK_SECRET_FILE).toBe('/data/secret');
    const script = webhook.volumes?.find((volume) => volume.startsWith('./'))?.split(':')[0];
    expect(script && existsSync(path.join(repoRoot, script)), script).toBe(true);
  });

  it('gives every shell helper a command that sh parses (as compose hands it over: $$ becomes $)', () => {
    const shells = services.filter(([, service]) => ((service as { entrypoint?: string[] }).entrypoint ?? []).join(' ') === '/bin/sh -c');
    expect(shells.map(([name]) => name)).toContain('demo-topic');
    for (const [name, service] of shells) {
      const script = service.command![0]!.replaceAll('$$', '$');
      const parsed = spawnSync('sh', ['-n', '-c', script], { encoding: 'utf8' });
      expect(parsed.status, `${name}: ${parsed.stderr}`).toBe(0);
    }
  });

  it("demo-topic's command creates what is missing, saves the secret once, and exits 0 when everything exists", () => {
    // The command's own control flow, with a stand-in for the CLI that answers "exists" or "created".
    const demoTopic = compose.services['demo-topic'] as { environment?: Record<string, string>; command?: string[] };
    const dir = mkdtempSync(path.join(tmpdir(), 'demo-topic-'));
    const bin = path.join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(
      path.join(bin, 'tessera-entrypoint'),
      [
        '#!/bin/sh',
        'echo "$*" >> "$CALLS"',
        'case "$1 $2" in',
        '  "topics describe"|"subscriptions describe") [ -n "$EXISTS" ] && exit 0; exit 1 ;;',
        '  "subscriptions create") echo \'{"name":"demo-webhook","secret":"whsec_demo"}\' ;;',
        'esac',
      ].join('\n'),
      { mode: 0o755 },
    );
    const script = demoTopic.command![0]!.replaceAll('$$', '$').replaceAll('/data/', `${dir}/`);
    const run = (exists: boolean) =>
      spawnSync('sh', ['-c', script], {
        encoding: 'utf8',
        env: { ...process.env, ...demoTopic.environment, PATH: `${bin}:${process.env.PATH}`, CALLS: path.join(dir, 'calls'), EXISTS: exists ? '1' : '' },
      });
    const first = run(false);
    expect(first.status, first.stderr).toBe(0);
    expect(readFileSync(path.join(dir, 'secret'), 'utf8')).toBe('whsec_demo');
    expect(readFileSync(path.join(dir, 'calls'), 'utf8')).toContain(`subscriptions create demo-webhook --topic demo --url ${demoTopic.environment?.DEMO_WEBHOOK_URL}`);
    rmSync(path.join(dir, 'calls'));
    const again = run(true);
    expect(again.status, again.stderr).toBe(0);
    expect(readFileSync(path.join(dir, 'calls'), 'utf8')).not.toMatch(/create/);
    expect(readFileSync(path.join(dir, 'secret'), 'utf8')).toBe('whsec_demo');
    rmSync(dir, { recursive: true });
  });

  it('passes an optional extra CA to the image build', () => {
    const dockerfile = readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^ARG EXTRA_CA_CERT=""$/m);
    const build = (compose.services.coordinator as { build?: { args?: Record<string, string> } }).build;
    expect(build?.args?.EXTRA_CA_CERT).toBe('${EXTRA_CA_CERT:-}');
  });

  it('mounts the Prometheus configuration and the Grafana provisioning of the repository', () => {
    expect(compose.services.prometheus.volumes).toContain('./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro');
    expect(compose.services.grafana.volumes).toContain('./grafana/provisioning:/etc/grafana/provisioning:ro');
  });
});

describe('prometheus/prometheus.yml', () => {
  it('scrapes every Tessera service of the compose file at its port', () => {
    const targets = prometheus.scrape_configs.flatMap((job) => job.static_configs.flatMap((config) => config.targets));
    const expected = tesseraServices.map(([name, service]) => `${name}:${service.environment?.TESSERA_PORT}`);
    expect(targets.sort()).toEqual(expected.sort());
  });

  it('scrapes over HTTPS, checking the certificates with the CA compose mounts into Prometheus', () => {
    for (const job of prometheus.scrape_configs) expect(job).toMatchObject({ scheme: 'https', tls_config: { ca_file: '/tls/ca.crt' } });
    expect(compose.services.prometheus.volumes).toContain('tls:/tls:ro');
  });
});

describe('the Grafana provisioning', () => {
  it('points the datasource at the compose Prometheus', () => {
    const [datasource] = datasources.datasources;
    expect(datasource.type).toBe('prometheus');
    expect(new URL(datasource.url).hostname).toBe('prometheus');
    expect(compose.services.prometheus).toBeDefined();
  });

  it('loads dashboards from the folder they are in', () => {
    expect(providers.providers[0].type).toBe('file');
    expect(providers.providers[0].options.path).toBe('/etc/grafana/provisioning/dashboards');
    expect(dashboardFiles().length).toBeGreaterThanOrEqual(4);
  });

  it('uses the provisioned datasource in every panel query, through the datasource variable', () => {
    const uid = datasources.datasources[0].uid;
    for (const query of panelQueries()) expect(query.datasourceUid, `${query.dashboard} / ${query.panel}`).toBe(uid);
  });

  it('has datasource, topic, consumer group and broker variables on every dashboard', () => {
    for (const dashboard of dashboards()) {
      const variables = dashboard.templating.list;
      expect(variables.map((v) => v.name), dashboard.title).toEqual(['datasource', 'topic', 'group', 'broker']);
      expect(variables[0]).toMatchObject({ type: 'datasource', query: 'prometheus' });
      for (const variable of variables.slice(1)) {
        expect(variable, `${dashboard.title} $${variable.name}`).toMatchObject({ type: 'query', includeAll: true, allValue: '.*' });
        expect(variable.datasource?.uid).toBe('${datasource}');
      }
    }
    // A variable nothing uses would filter nothing: each one appears in some query.
    const all = panelQueries().map((q) => q.expr).join('\n');
    for (const name of ['topic', 'group', 'broker']) expect(all).toContain(`$${name}`);
  });

  it('gives every panel a unit, and every stat panel thresholds', () => {
    for (const dashboard of dashboards()) {
      // A row only groups the panels below it: it shows no data and has no unit.
      for (const panel of dashboard.panels.filter((p) => p.type !== 'row')) {
        expect(panel.fieldConfig?.defaults?.unit, `${dashboard.title} / ${panel.title}`).toBeTruthy();
        if (panel.type === 'stat') expect(panel.fieldConfig?.defaults?.thresholds?.steps.length, panel.title).toBeGreaterThan(0);
      }
    }
  });

  it('turns red on dead brokers, offline and under-replicated partitions, and growing lag', () => {
    const panels = dashboards().flatMap((dashboard) => dashboard.panels);
    const redAtOne = (title: string) => {
      const panel = panels.find((p) => p.title === title);
      expect(panel, title).toBeDefined();
      const steps = panel!.fieldConfig?.defaults?.thresholds?.steps ?? [];
      // Green at 0, red from the first one.
      expect(steps[0]?.color, title).toBe('green');
      expect(steps.find((step) => step.color === 'red')?.value, title).toBe(1);
    };
    for (const title of ['Brokers dead', 'Offline partitions', 'Under-replicated partitions', 'Groups whose lag grows']) redAtOne(title);
  });

  it('shows consumer lag in seconds', () => {
    const lagSeconds = panelQueries().filter((q) => q.expr.includes('tessera_broker_group_lag_seconds'));
    expect(lagSeconds.length).toBeGreaterThan(0);
    const units = dashboards().flatMap((d) => d.panels).filter((p) => p.targets?.some((t) => t.expr.includes('tessera_broker_group_lag_seconds')));
    for (const panel of units) expect(panel.fieldConfig?.defaults?.unit, panel.title).toBe('s');
  });
});

describe('.gitlab-ci.yml', () => {
  const pipeline = readYaml('.gitlab-ci.yml') as Record<string, unknown>;
  const jobs = Object.values(pipeline).filter(
    (job): job is { stage?: string; script?: string[] } => typeof job === 'object' && job !== null && !Array.isArray(job),
  );

  it('has the four stages, each with a job', () => {
    expect(pipeline.stages).toEqual(['test', 'build', 'integration', 'deploy']);
    for (const stage of ['test', 'build', 'integration', 'deploy']) {
      expect(jobs.some((job) => job.stage === stage), stage).toBe(true);
    }
  });

  it('runs in its test job the same command as .ci/run', () => {
    const testJob = jobs.find((job) => job.stage === 'test');
    expect(testJob?.script).toEqual(['bash .ci/run']);
  });
});
