/**
 * The metric names a PromQL expression reads, so a test can check that every name an alert rule or
 * a dashboard panel queries is one the system exports. Not a parser: it removes what cannot be a
 * metric name (strings, label matchers, ranges, label lists, Grafana variables, numbers) and keeps
 * the identifiers that are not PromQL's own words. Good enough for the expressions we write; an
 * expression it misreads shows up as an unknown "metric" in the test, never as a silent pass.
 */

/** PromQL's functions (as of Prometheus 2.x). */
const FUNCTIONS = [
  'abs',
  'absent',
  'absent_over_time',
  'acos',
  'acosh',
  'asin',
  'asinh',
  'atan',
  'atanh',
  'avg_over_time',
  'ceil',
  'changes',
  'clamp',
  'clamp_max',
  'clamp_min',
  'cos',
  'cosh',
  'count_over_time',
  'day_of_month',
  'day_of_week',
  'day_of_year',
  'days_in_month',
  'deg',
  'delta',
  'deriv',
  'exp',
  'floor',
  'histogram_avg',
  'histogram_count',
  'histogram_fraction',
  'histogram_quantile',
  'histogram_stddev',
  'histogram_stdvar',
  'histogram_sum',
  'holt_winters',
  'hour',
  'idelta',
  'increase',
  'irate',
  'label_join',
  'label_replace',
  'last_over_time',
  'ln',
  'log10',
  'log2',
  'max_over_time',
  'min_over_time',
  'minute',
  'month',
  'pi',
  'predict_linear',
  'present_over_time',
  'quantile_over_time',
  'rad',
  'rate',
  'resets',
  'round',
  'scalar',
  'sgn',
  'sin',
  'sinh',
  'sort',
  'sort_desc',
  'sqrt',
  'stddev_over_time',
  'stdvar_over_time',
  'sum_over_time',
  'tan',
  'tanh',
  'time',
  'timestamp',
  'vector',
  'year',
  // the `@` modifier's
  'start',
  'end',
];

const AGGREGATIONS = [
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
];

/** Binary operators, modifiers and literals spelled as words. */
const KEYWORDS = ['and', 'or', 'unless', 'atan2', 'bool', 'offset', 'inf', 'nan'];

const NOT_METRICS = new Set([...FUNCTIONS, ...AGGREGATIONS, ...KEYWORDS]);

/** The metric names `expr` reads, each once, in the order they first appear. */
export function metricNames(expr: string): string[] {
  const bare = expr
    // Strings first: they may hold any character, braces and `#` included.
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    // Comments run to the end of the line.
    .replace(/#.*$/gm, ' ')
    // Label matchers, ranges and subqueries (`[5m]`, `[$__rate_interval]`, `[30m:1m]`).
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    // Label lists: `by (worker)`, `on (worker)`, `group_left (resource)`, … name labels, not metrics.
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    // The bare modifiers left after their lists (`group_left` may stand alone).
    .replace(/\b(?:group_left|group_right)\b/g, ' ')
    // Grafana's variables outside matchers (`$__interval`, `${threshold}`).
    .replace(/\$\{[^}]*\}|\$\w+/g, ' ');
  const names: string[] = [];
  // A number or duration (`0.99`, `1e3`, `5m`) is consumed whole, so its letters never read as a name.
  for (const [, number, word] of bare.matchAll(/(\d[\w.]*)|([A-Za-z_:][\w:]*)/g)) {
    if (number || !word || NOT_METRICS.has(word) || names.includes(word)) continue;
    names.push(word);
  }
  return names;
}

/**
 * The PromQL inside a Grafana templating query: `label_values(metric, label)` and
 * `query_result(expr)` hold one; `label_values(label)` and the other helpers (`label_names()`,
 * `metrics(regex)`) read no metric by name and answer null.
 */
export function templatingExpr(query: string): string | null {
  const labelValues = /^\s*label_values\(\s*(.+),\s*\w+\s*\)\s*$/s.exec(query);
  if (labelValues) return labelValues[1]!;
  const queryResult = /^\s*query_result\(\s*(.+)\)\s*$/s.exec(query);
  return queryResult ? queryResult[1]! : null;
}
