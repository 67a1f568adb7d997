// Checks prometheus/rules.yml with Prometheus's own tool: the rules load (`promtool check rules`),
// and every alert fires on the series of its failure and stays quiet otherwise
// (`promtool test rules prometheus/rules.test.yml`). Every alert must have a firing case there.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { repoRoot } from './dashboards.js';

const promtool = process.env.PROMTOOL_BIN ?? 'promtool';
const promtoolFound = spawnSync(promtool, ['--version']).status === 0;
if (!promtoolFound) {
  console.warn(`skipping promtool checks of prometheus/rules.yml: no "${promtool}" binary (apt-get install prometheus, or set PROMTOOL_BIN)`);
}

const prometheusDir = path.join(repoRoot, 'prometheus');
const read = (file: string) => parse(readFileSync(path.join(prometheusDir, file), 'utf8'));
const rules = read('rules.yml') as { groups: Array<{ rules: Array<{ alert?: string; expr: string; labels?: { severity?: string } }> }> };
const ruleTests = read('rules.test.yml') as {
  tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
};
const alerts = rules.groups.flatMap((group) => group.rules).filter((rule) => rule.alert !== undefined);

describe('prometheus/rules.yml', () => {
  it('is loaded by prometheus.yml and mounted next to it in the compose Prometheus', () => {
    expect((read('prometheus.yml') as { rule_files?: string[] }).rule_files).toEqual(['rules.yml']);
    const compose = parse(readFileSync(path.join(repoRoot, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
      services: { prometheus: { volumes: string[] } };
    };
    expect(compose.services.prometheus.volumes).toContain('./prometheus/rules.yml:/etc/prometheus/rules.yml:ro');
  });

  it('has the alerts operators expect, each with a severity and a firing unit test', () => {
    const names = new Set(alerts.map((rule) => rule.alert));
    for (const expected of [
      'TesseraBrokerDown',
      'TesseraPartitionOffline',
      'TesseraUnderReplicatedPartitions',
      'TesseraIsrShrinking',
      'TesseraConsumerLagGrowing',
      'TesseraDiskNearlyFull',
      'TesseraProduceErrors',
    ]) {
      expect(names).toContain(expected);
    }
    const firing = new Set(
      ruleTests.tests.flatMap((test) => (test.alert_rule_test ?? []).filter((t) => t.exp_alerts.length > 0).map((t) => t.alertname)),
    );
    for (const rule of alerts) {
      expect(['critical', 'warning', 'info'], rule.alert).toContain(rule.labels?.severity);
      expect(firing, `${rule.alert} has no test case where it fires`).toContain(rule.alert);
    }
  });

  it.skipIf(!promtoolFound)('passes promtool check rules', () => {
    const result = spawnSync(promtool, ['check', 'rules', 'rules.yml'], { cwd: prometheusDir, encoding: 'utf8' });
    expect(result.status, result.stdout + result.stderr).toBe(0);
  });

  it.skipIf(!promtoolFound)('passes its unit tests (promtool test rules)', () => {
    const result = spawnSync(promtool, ['test', 'rules', 'rules.test.yml'], { cwd: prometheusDir, encoding: 'utf8' });
    expect(result.status, result.stdout + result.stderr).toBe(0);
    expect(result.stdout + result.stderr).toContain('SUCCESS');
  });
});
