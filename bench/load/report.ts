/**
 * What a scenario hands back, and how it is printed: one Markdown table per scenario (it reads in
 * a terminal and pastes into the README's figures section as is) and the suite's summary table.
 */

export interface Target {
  /** `<=`: the value must not exceed `value`; `>=`: it must reach it. */
  op: '<=' | '>=';
  value: number;
}

export interface SummaryRow {
  scenario: string;
  metric: string;
  value: number;
  unit: string;
  target?: Target;
}

export interface Table {
  headers: string[];
  rows: (string | number)[][];
}

export interface ScenarioResult {
  /** The scenario's own table(s), printed in order. */
  tables: { title: string; table: Table }[];
  summary: SummaryRow[];
  /** Lines printed under the tables: what was measured how, what to keep in mind. */
  notes?: string[];
  /** Raw numbers for the JSON file. */
  details?: Record<string, unknown>;
}

export function met(row: SummaryRow): boolean | null {
  if (!row.target || !Number.isFinite(row.value)) return row.target ? false : null;
  return row.target.op === '<=' ? row.value <= row.target.value : row.value >= row.target.value;
}

export function cell(value: string | number): string {
  if (typeof value === 'string') return value;
  if (!Number.isFinite(value)) return '—';
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return String(Number(value.toPrecision(2)));
}

export function markdown(table: Table): string {
  const lines = [table.headers, ...table.rows.map((r) => r.map(cell))];
  const widths = table.headers.map((_, i) => Math.max(3, ...lines.map((l) => String(l[i] ?? '').length)));
  const row = (cells: (string | number)[]) => `| ${cells.map((c, i) => String(c).padEnd(widths[i]!)).join(' | ')} |`;
  return [row(lines[0]!), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...lines.slice(1).map(row)].join('\n');
}

export function summaryTable(rows: SummaryRow[]): Table {
  return {
    headers: ['scenario', 'metric', 'value', 'target', 'met?'],
    rows: rows.map((r) => {
      const ok = met(r);
      return [
        r.scenario,
        r.metric,
        `${cell(r.value)} ${r.unit}`.trim(),
        r.target ? `${r.target.op} ${cell(r.target.value)} ${r.unit}`.trim() : '—',
        ok === null ? '—' : ok ? 'yes' : 'NO',
      ];
    }),
  };
}
