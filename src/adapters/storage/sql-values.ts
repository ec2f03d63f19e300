/** Conversions between JS values and SQL parameters/rows, shared by the row modules. */
import type { SqlExecutor } from './sql-client.ts';

export type Row = Record<string, unknown>;

export function num(value: unknown): number {
  return typeof value === 'number' ? value : Number(value);
}

export function date(value: unknown): Date {
  return value instanceof Date ? value : new Date(value as string);
}

export function dateOrNull(value: unknown): Date | null {
  return value === null || value === undefined ? null : date(value);
}

export function textOrNull(value: unknown): string | null {
  return value === null || value === undefined ? null : String(value);
}

/** A jsonb column's value: already parsed by the clients, parsed here if a driver ever hands back text. */
export function json<T>(value: unknown, fallback: T): T {
  if (value === null || value === undefined) return fallback;
  return (typeof value === 'string' ? JSON.parse(value) : value) as T;
}

export function jsonOrNull<T>(value: unknown): T | null {
  return value === null || value === undefined ? null : json<T>(value, null as T);
}

/**
 * A jsonb parameter: always sent as JSON text (pg would otherwise send a JS array as a Postgres
 * array). SQL NULL for null/undefined; use with `$n::jsonb`.
 */
export function jsonParam(value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value);
}

/** How one patchable field is written: its column and, for jsonb, the cast and encoding. */
export interface ColumnSpec {
  column: string;
  jsonb?: boolean;
}

/**
 * Builds `col = $n` assignments for the defined keys of `patch` (undefined keys are skipped), numbering
 * parameters after `params`, which it extends.
 */
export function assignments(
  patch: Record<string, unknown>,
  spec: Record<string, ColumnSpec>,
  params: unknown[],
): string[] {
  const sets: string[] = [];
  for (const [key, value] of Object.entries(patch)) {
    const column = spec[key];
    if (column === undefined || value === undefined) continue;
    params.push(column.jsonb ? jsonParam(value) : value);
    sets.push(`${column.column} = $${params.length}${column.jsonb ? '::jsonb' : ''}`);
  }
  return sets;
}

/** `WHERE a AND b` from the conditions given, or '' when there are none. */
export function where(conditions: string[]): string {
  return conditions.length === 0 ? '' : `WHERE ${conditions.join(' AND ')}`;
}

/** A LIMIT clause for a positive integer limit (clamped to 10 000), or '' when none is given. */
export function limitClause(limit: number | undefined, params: unknown[]): string {
  if (limit === undefined) return '';
  const n = Math.max(0, Math.min(10_000, Math.floor(limit)));
  params.push(n);
  return `LIMIT $${params.length}`;
}

/**
 * The compare-and-set every row kind uses: `UPDATE table SET <patch>, updated_at = now() WHERE id =
 * $1 [AND status = ANY(from)] RETURNING columns`. An empty `from` matches nothing, by definition.
 */
export async function updateWhereStatus(
  db: SqlExecutor,
  table: 'tasks' | 'vms',
  columns: string,
  id: string,
  patch: Record<string, unknown>,
  spec: Record<string, ColumnSpec>,
  from?: readonly string[],
): Promise<Row | null> {
  if (from !== undefined && from.length === 0) return null;
  const params: unknown[] = [id];
  const sets = [...assignments(patch, spec, params), 'updated_at = now()'];
  const conditions = ['id = $1'];
  if (from !== undefined) {
    params.push([...from]);
    conditions.push(`status = ANY($${params.length}::text[])`);
  }
  const rows = await db.query<Row>(
    `UPDATE ${table} SET ${sets.join(', ')} ${where(conditions)} RETURNING ${columns}`,
    params,
  );
  return rows[0] ?? null;
}
