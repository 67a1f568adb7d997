/** Reads every Grafana dashboard of the repository and lists its panels' Prometheus queries. */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const dashboardsDir = path.join(repoRoot, 'grafana/provisioning/dashboards');

export interface PanelQuery {
  dashboard: string;
  panel: string;
  expr: string;
  datasourceUid: string | undefined;
}

export function dashboardFiles(): string[] {
  return readdirSync(dashboardsDir)
    .filter((file) => file.endsWith('.json'))
    .map((file) => path.join(dashboardsDir, file));
}

export function panelQueries(): PanelQuery[] {
  const queries: PanelQuery[] = [];
  for (const file of dashboardFiles()) {
    const dashboard = JSON.parse(readFileSync(file, 'utf8')) as {
      title: string;
      panels: Array<{ title: string; datasource?: { uid?: string }; targets?: Array<{ expr: string; datasource?: { uid?: string } }> }>;
    };
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        queries.push({
          dashboard: dashboard.title,
          panel: panel.title,
          expr: target.expr,
          datasourceUid: target.datasource?.uid ?? panel.datasource?.uid,
        });
      }
    }
  }
  return queries;
}
