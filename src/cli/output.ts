/**
 * Output for people (tables, `-o wide` for more columns) or for programs (`--json` / `-o json`: the
 * API's data as one JSON document; a stream as one JSON object per line). Tables are plain columns
 * in the manner of kubectl, so that they read well and `grep`/`awk` well.
 */
import type { GlobalOptions } from './global-options.ts';
import { outputFormat } from './global-options.ts';

export type Cell = string | number | boolean | Date | null | undefined;

export interface Column<T> {
  header: string;
  value: (row: T) => Cell;
  /** Only with `-o wide`. */
  wide?: boolean;
  /** Cut longer text in the narrow table (never with `-o wide`). */
  max?: number;
}

export function out(text: string): void {
  process.stdout.write(text);
}

export function printJson(value: unknown): void {
  out(`${JSON.stringify(value, null, 2)}\n`);
}

/** One object of a stream: compact, on its own line. */
export function printJsonLine(value: unknown): void {
  out(`${JSON.stringify(value)}\n`);
}

/** `2026-01-02T03:04:05Z`: a time to the second. */
export function formatTime(value: Date | string | null | undefined): string {
  if (value === null || value === undefined) return '-';
  const date = typeof value === 'string' ? new Date(value) : value;
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A cell as text: '-' for null, times to the second, objects as compact JSON. */
export function cellText(value: unknown): string {
  if (value === null || value === undefined) return '-';
  if (value instanceof Date) return formatTime(value);
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function cut(text: string, max: number | undefined): string {
  return max !== undefined && text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** A table of `rows`; with `wide`, the columns marked wide too. */
export function renderTable<T>(rows: readonly T[], columns: readonly Column<T>[], wide: boolean): string {
  if (rows.length === 0) return '(none)\n';
  const shown = columns.filter((c) => wide || !c.wide);
  const cells = rows.map((row) =>
    shown.map((c) => cut(cellText(c.value(row)).replace(/\s*\n\s*/g, ' '), wide ? undefined : c.max)),
  );
  const widths = shown.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  return `${[line(shown.map((c) => c.header)), ...cells.map(line)].join('\n')}\n`;
}

/**
 * Prints `data` as the output format asks: the whole of `data` as JSON, or a table of `rows(data)`.
 */
export function printList<D, T>(
  options: GlobalOptions,
  data: D,
  rows: (data: D) => readonly T[],
  columns: readonly Column<T>[],
): void {
  const format = outputFormat(options);
  if (format === 'json') return printJson(data);
  out(renderTable(rows(data), columns, format === 'wide'));
}

/** `key  value` lines of one record (`keys`: which, in order; with wide, all of them). */
export function renderFields(record: Record<string, unknown>, keys?: readonly string[]): string {
  const entries = (keys ?? Object.keys(record)).filter((k) => k in record).map((k) => [k, record[k]] as const);
  if (entries.length === 0) return '';
  const width = Math.max(...entries.map(([k]) => k.length));
  return entries.map(([key, value]) => `${key.padEnd(width)}  ${cellText(value)}\n`).join('');
}

/** One record: JSON, all its fields (wide), or `keys` (table; all when not given). */
export function printRecord(options: GlobalOptions, record: object, keys?: readonly string[]): void {
  const format = outputFormat(options);
  if (format === 'json') return printJson(record);
  out(renderFields(record as Record<string, unknown>, format === 'wide' ? undefined : keys));
}

export function shortId(id: string | null | undefined): string {
  return id ? id.slice(0, 8) : '-';
}

/** `k=v` pairs from repeated flags. */
export function collectPairs(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const index = value.indexOf('=');
  if (index <= 0) throw new Error(`expected KEY=VALUE, got ${JSON.stringify(value)}`);
  return { ...previous, [value.slice(0, index)]: value.slice(index + 1) };
}

export function labelsText(labels: Record<string, string> | null | undefined): string {
  const entries = Object.entries(labels ?? {});
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(',') : '-';
}
