/** Reads every Grafana dashboard of the repository and lists its panels' Prometheus queries. */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const dashboardsDir = path.join(repoRoot, 'grafana/provisioning/dashboards');

export interface PanelQuery {
  dashboard: string;
  panel: string;
  /** The query as written, with template variables (`$topic`, ...). */
  expr: string;
  /** The query as Grafana sends it with every variable at "All" (`.*`), which is what a fresh dashboard shows. */
  query: string;
  /** The datasource uid, with `${datasource}` resolved to the variable's default. */
  datasourceUid: string | undefined;
}

export interface TemplateVariable {
  name: string;
  type: string;
  allValue?: string;
  includeAll?: boolean;
  current?: { value?: string | string[] };
  datasource?: { uid?: string };
  query?: unknown;
}

export interface Dashboard {
  title: string;
  templating: { list: TemplateVariable[] };
  panels: Array<{
    title: string;
    type: string;
    datasource?: { uid?: string };
    fieldConfig?: { defaults?: { unit?: string; thresholds?: { steps: Array<{ color: string; value: number | null }> } } };
    targets?: Array<{ expr: string; datasource?: { uid?: string } }>;
  }>;
}

export function dashboardFiles(): string[] {
  return readdirSync(dashboardsDir)
    .filter((file) => file.endsWith('.json'))
    .map((file) => path.join(dashboardsDir, file));
}

export function dashboards(): Dashboard[] {
  return dashboardFiles().map((file) => JSON.parse(readFileSync(file, 'utf8')) as Dashboard);
}

/** Replaces `$name` and `${name}` by each variable's value: the default of a datasource, `allValue` of the others. */
export function substitute(text: string, variables: readonly TemplateVariable[]): string {
  let out = text;
  for (const variable of variables) {
    const value = variable.type === 'datasource' ? String(variable.current?.value ?? '') : (variable.allValue ?? '.*');
    out = out.replaceAll(`\${${variable.name}}`, value).replace(new RegExp(`\\$${variable.name}\\b`, 'g'), value);
  }
  return out;
}

export function panelQueries(): PanelQuery[] {
  const queries: PanelQuery[] = [];
  for (const dashboard of dashboards()) {
    const variables = dashboard.templating?.list ?? [];
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        const uid = target.datasource?.uid ?? panel.datasource?.uid;
        queries.push({
          dashboard: dashboard.title,
          panel: panel.title,
          expr: target.expr,
          query: substitute(target.expr, variables),
          datasourceUid: uid === undefined ? undefined : substitute(uid, variables),
        });
      }
    }
  }
  return queries;
}
