/**
 * The observability kit that ships in deploy/: Prometheus alert rules and their promtool unit
 * tests, and the Grafana dashboards. promtool checks the rules, runs their tests and parses every
 * dashboard query; every alert is tested and carries a severity, a summary, a description and a
 * runbook; and every metric an alert or a panel reads is one a running system exports, so a
 * renamed metric breaks this test instead of silently emptying a panel or muting an alert.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';
import { metricNames, templatingExpr } from './harness/promql-names.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RULES = 'deploy/prometheus/rules/aetherium.yml';
const RULE_TESTS = 'deploy/prometheus/rules/aetherium.test.yml';
const DASHBOARDS = 'deploy/grafana/dashboards';
const DASHBOARD_FILES = [
  'api-and-events.json',
  'boot-waterfall.json',
  'cluster-overview.json',
  'scheduler-and-queue.json',
  'worker-detail.json',
];

/** The sections of docs/TROUBLESHOOTING.md the runbooks point at. */
const RUNBOOK_ANCHORS = [
  'worker-down',
  'heartbeat-age-high',
  'capacity-nearly-full',
  'tasks-pending-too-long',
  'task-failure-rate-high',
  'placement-latency-high',
  'engine-unavailable',
  'event-fan-out-lag',
  'control-plane-down',
];

/** The data source panels name: the dashboard's `datasource` variable, or the provisioned uid. */
const DATASOURCES = [`\${datasource}`, 'prometheus'];

/** Grafana's own variables, which a dashboard uses without declaring them. */
const GRAFANA_VARIABLES = new Set(['__rate_interval', '__interval', '__range']);

// ── reading the files ─────────────────────────────────────────────────────────────────────────────

interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleTests {
  tests: { name: string; alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
}
interface Panel {
  type: string;
  title?: string;
  datasource?: { uid?: string };
  targets?: { expr?: string }[];
  fieldConfig?: { defaults?: { unit?: string } };
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  title: string;
  tags: string[];
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: string | { query?: string } }[] };
}

const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

const rules: AlertRule[] = (parse(read(RULES)) as { groups: { rules: AlertRule[] }[] }).groups.flatMap((g) => g.rules);
const alerts = rules.filter((r) => r.alert);
const ruleTests = parse(read(RULE_TESTS)) as RuleTests;
const dashboards = DASHBOARD_FILES.map((file) => ({
  file,
  dashboard: JSON.parse(read(join(DASHBOARDS, file))) as Dashboard,
}));

/** Every panel, those inside rows (collapsed rows hold theirs) included. */
function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** Each dashboard query with where it is: the panels' targets and the templating variables'. */
function dashboardQueries(): { where: string; expr: string }[] {
  return dashboards.flatMap(({ file, dashboard }) => [
    ...allPanels(dashboard.panels).flatMap((p) =>
      (p.targets ?? []).flatMap((t) => (t.expr ? [{ where: `${file}: ${p.title}`, expr: t.expr }] : [])),
    ),
    ...dashboard.templating.list.flatMap((v) => {
      const query = typeof v.query === 'string' ? v.query : v.query?.query;
      const expr = v.type === 'query' && query ? templatingExpr(query) : null;
      return expr ? [{ where: `${file}: $${v.name}`, expr }] : [];
    }),
  ]);
}

// ── promtool ──────────────────────────────────────────────────────────────────────────────────────

/** promtool from PATH, or from where the CI script unpacks it in the repository. */
function promtool(...args: string[]): { status: number | null; output: string } {
  const PATH = [join(ROOT, '.ci/tools/usr/bin'), process.env.PATH ?? ''].join(delimiter);
  const result = spawnSync('promtool', args, { cwd: ROOT, env: { ...process.env, PATH }, encoding: 'utf8' });
  if (result.error)
    throw new Error(
      `promtool did not run (${result.error.message}): install Prometheus' promtool on PATH, or run .ci/run, ` +
        "which unpacks it from Debian's prometheus package into .ci/tools",
    );
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('Prometheus rules', () => {
  it('pass promtool check rules', () => {
    const { status, output } = promtool('check', 'rules', RULES);
    expect(status, output).toBe(0);
  });

  it('pass their promtool unit tests', () => {
    const { status, output } = promtool('test', 'rules', RULE_TESTS);
    expect(status, output).toBe(0);
  });

  it('every alert has a test that fires it', () => {
    const fired = new Set(
      ruleTests.tests.flatMap((t) =>
        (t.alert_rule_test ?? []).filter((a) => (a.exp_alerts ?? []).length > 0).map((a) => a.alertname),
      ),
    );
    expect(alerts.length).toBeGreaterThan(0);
    expect(alerts.map((a) => a.alert).filter((name) => !fired.has(name!))).toEqual([]);
  });

  it('every alert waits, has a severity, a summary, a description and a runbook', () => {
    for (const rule of alerts) {
      expect(rule.for, rule.alert).toMatch(/^\d+[smh]$/);
      expect(['critical', 'warning'], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.description, rule.alert).toMatch(/\{\{ \$(labels\.\w+|value)/);
      const runbook = /^docs\/TROUBLESHOOTING\.md#(.+)$/.exec(rule.annotations?.runbook_url ?? '');
      expect(RUNBOOK_ANCHORS, `${rule.alert}: runbook_url ${rule.annotations?.runbook_url}`).toContain(runbook?.[1]);
    }
  });
});

describe('Grafana dashboards', () => {
  it('have unique uids and titles, the aetherium tag and a schema version', () => {
    expect(readdirSync(join(ROOT, DASHBOARDS)).sort()).toEqual(DASHBOARD_FILES);
    const uids = dashboards.map(({ dashboard }) => dashboard.uid);
    const titles = dashboards.map(({ dashboard }) => dashboard.title);
    expect(new Set(uids).size).toBe(dashboards.length);
    expect(new Set(titles).size).toBe(dashboards.length);
    for (const { file, dashboard } of dashboards) {
      expect(dashboard.uid, file).toMatch(/^[\w-]{1,40}$/);
      expect(dashboard.tags, file).toContain('aetherium');
      expect(dashboard.schemaVersion, file).toBeGreaterThanOrEqual(36);
    }
  });

  it('every panel reads the Prometheus data source and states its unit', () => {
    for (const { file, dashboard } of dashboards)
      for (const panel of allPanels(dashboard.panels).filter((p) => p.type !== 'row')) {
        expect(DATASOURCES, `${file}: ${panel.title}`).toContain(panel.datasource?.uid);
        expect(panel.targets?.length, `${file}: ${panel.title}`).toBeGreaterThan(0);
        expect(panel.fieldConfig?.defaults?.unit, `${file}: ${panel.title}`).toBeTruthy();
      }
  });

  it('use only the variables they declare', () => {
    for (const { file, dashboard } of dashboards) {
      const declared = new Set(dashboard.templating.list.map((v) => v.name));
      const used = dashboardQueries()
        .filter((q) => q.where.startsWith(`${file}:`))
        .flatMap((q) => [...q.expr.matchAll(/\$\{?(\w+)\}?/g)].map((m) => m[1]!));
      expect(
        used.filter((name) => !declared.has(name) && !GRAFANA_VARIABLES.has(name)),
        file,
      ).toEqual([]);
    }
  });

  it('every query is valid PromQL (promtool parses them as recording rules)', () => {
    // Grafana's variables stand in for a duration or a label value; promtool needs real ones.
    const asPromql = (expr: string) =>
      expr.replace(/\$\{?(\w+)\}?/g, (_, name: string) => (GRAFANA_VARIABLES.has(name) ? '5m' : 'x'));
    const queries = dashboardQueries();
    const file = {
      groups: [
        {
          name: 'dashboards',
          rules: queries.map((q, i) => ({ record: `dashboard:query_${i}`, expr: asPromql(q.expr) })),
        },
      ],
    };
    const dir = mkdtempSync(join(tmpdir(), 'aetherium-dashboards-'));
    try {
      writeFileSync(join(dir, 'queries.yml'), JSON.stringify(file));
      const { status, output } = promtool('check', 'rules', join(dir, 'queries.yml'));
      // promtool names a bad rule by its index: say which panel that is.
      const bad = [...output.matchAll(/query_(\d+)/g)].map((m) => queries[Number(m[1])]);
      expect(status, `${output}\n${JSON.stringify(bad, null, 2)}`).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('metric names in PromQL', () => {
  it('keeps metrics, drops functions, keywords, labels, strings, ranges and numbers', () => {
    expect(
      metricNames('histogram_quantile(0.99, sum by (le) (rate(aetherium_placement_latency_seconds_bucket[5m]))) > 10'),
    ).toEqual(['aetherium_placement_latency_seconds_bucket']);
    expect(
      metricNames(
        'max by (worker) (aetherium_worker_heartbeat_age_seconds) > 60\n' +
          'unless on (worker) (max by (worker) (aetherium_worker_up) == bool 0)',
      ),
    ).toEqual(['aetherium_worker_heartbeat_age_seconds', 'aetherium_worker_up']);
    expect(
      metricNames(
        'label_replace(sum by (instance) (increase(dropped_total{reason="gap",x=~"a|b}"}[10m])) > 5, "signal", "d", "", "")',
      ),
    ).toEqual(['dropped_total']);
    expect(
      metricNames(
        'sum(rate(requests_total{route="$route"}[$__rate_interval])) / on (job) group_left (version) build_info offset 1h',
      ),
    ).toEqual(['requests_total', 'build_info']);
    expect(metricNames('sum(rate(x_total[30m:1m])) without (pod) * 1e3 # per_second is a word, not a metric')).toEqual([
      'x_total',
    ]);
    expect(metricNames('clamp_min(a, 0) or vector(0) and absent(b) unless time() - c')).toEqual(['a', 'b', 'c']);
  });

  it('finds the PromQL in Grafana templating queries', () => {
    expect(templatingExpr('label_values(aetherium_worker_up{job="x, y"}, worker)')).toBe(
      'aetherium_worker_up{job="x, y"}',
    );
    expect(templatingExpr('query_result(topk(5, up))')).toBe('topk(5, up)');
    expect(templatingExpr('label_values(worker)')).toBeNull();
    expect(templatingExpr('label_names()')).toBeNull();
  });
});

describe('every metric the rules and dashboards read is exported', () => {
  let t: TestSystem;

  beforeAll(async () => {
    t = await startTestSystem();
  }, 120_000);

  afterAll(async () => {
    await t?.stop();
  });

  /** The series names a scrape of the embedded system can carry, from its `# TYPE` lines. */
  async function exportedNames(): Promise<Set<string>> {
    const res = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    // `up` is Prometheus' own, one per scrape target.
    const names = new Set(['up']);
    for (const [, name, type] of res.body.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
      else if (type === 'summary') for (const suffix of ['', '_sum', '_count']) names.add(`${name}${suffix}`);
      else names.add(name!);
    }
    return names;
  }

  it('by a running system (embedded: the control plane and its worker)', async () => {
    const exported = await exportedNames();
    const read = [
      ...rules.map((r) => ({ where: `${RULES}: ${r.alert ?? r.record}`, expr: r.expr })),
      ...dashboardQueries(),
    ];
    const missing = read.flatMap(({ where, expr }) =>
      metricNames(expr)
        .filter((name) => !exported.has(name))
        .map((name) => `${name} (${where})`),
    );
    expect(missing, `not exported:\n${missing.join('\n')}`).toEqual([]);
    // The extractor found the names: an empty read would pass vacuously.
    expect(new Set(read.flatMap((r) => metricNames(r.expr))).size).toBeGreaterThan(40);
  });
});
