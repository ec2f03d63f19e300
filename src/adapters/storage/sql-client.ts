/**
 * The little the store needs from a SQL database, so that the same SQL runs on Postgres (`pg`) and
 * on PGlite. Both clients return `jsonb` as parsed values, `timestamptz` as `Date` and `bigint` as
 * `number`.
 */
export interface SqlExecutor {
  /** One statement, with `$1`-style parameters; returns its rows. */
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /** A script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface SqlClient extends SqlExecutor {
  readonly kind: 'pglite' | 'postgres';
  /** Runs `fn` in one transaction on one connection: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** The fields both `pg` and PGlite put on a server error. */
export interface SqlError extends Error {
  code?: string;
  constraint?: string;
  detail?: string;
}

export function isSqlError(err: unknown, code?: string): err is SqlError {
  if (typeof err !== 'object' || err === null) return false;
  const c = (err as { code?: unknown }).code;
  return typeof c === 'string' && (code === undefined || c === code);
}

export const UNIQUE_VIOLATION = '23505';
export const FOREIGN_KEY_VIOLATION = '23503';
