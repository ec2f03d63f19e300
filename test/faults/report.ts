/**
 * The suite's printed report: the fault table (one row per fault injected), the invariant table
 * (name, PASS/FAIL, detail), the faults still planned, and a line about the load. Plain text
 * with aligned columns, so it reads the same in a terminal, a CI log and an issue.
 */
import type { PlannedFault } from './faults.ts';
import type { CheckResult } from './invariants.ts';
import type { FaultMeasures, FaultTimes } from './measures.ts';

export type FaultRow = FaultTimes & FaultMeasures;

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

const ms = (value: number | null) =>
  value === null ? 'never' : value < 10_000 ? `${value} ms` : `${(value / 1000).toFixed(1)} s`;

export function faultTable(rows: FaultRow[]): string {
  return table(
    [
      'fault',
      'target',
      'detected',
      'back after heal',
      'recovered',
      'failed ops',
      'slowest boot',
      'tasks affected',
      'note',
    ],
    rows.map((r) => [
      r.fault,
      r.target,
      ms(r.detectedMs),
      ms(r.backMs),
      ms(r.recoveredMs),
      `${r.failedOps}/${r.ops}`,
      r.slowestBootMs === null ? '-' : ms(r.slowestBootMs),
      `${r.tasksAffected}/${r.tasksInWindow}`,
      r.note ?? '',
    ]),
  );
}

export function checkTable(checks: CheckResult[]): string {
  return table(
    ['invariant', 'result', 'detail'],
    checks.map((c) => [c.name, c.ok ? 'PASS' : 'FAIL', c.detail]),
  );
}

export function plannedList(planned: PlannedFault[]): string {
  return planned.map((p) => `  planned, not yet run: ${p.name}: ${p.expect}`).join('\n');
}

export function report(options: {
  title: string;
  rows: FaultRow[];
  checks: CheckResult[];
  planned: PlannedFault[];
  summary: string;
}): string {
  return [
    `== ${options.title}`,
    options.summary,
    '',
    faultTable(options.rows),
    '',
    checkTable(options.checks),
    '',
    plannedList(options.planned),
  ].join('\n');
}
