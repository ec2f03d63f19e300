import pg from 'pg';
import type { SqlClient, SqlExecutor } from './sql-client.ts';

const INT8_OID = 20;

/**
 * `bigint` as a JS number, for this pool only (the global `pg.types` stays untouched). `jsonb` and
 * `timestamptz` already come back parsed (object, Date) with pg's defaults.
 */
const typeParsers: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === INT8_OID && format !== 'binary'
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format as 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

interface Queryable {
  query(text: string, values?: unknown[]): Promise<pg.QueryResult>;
}

function executor(target: Queryable): SqlExecutor {
  return {
    async query<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
      const result = await target.query(sql, params as unknown[]);
      return result.rows as T[];
    },
    async exec(sql: string): Promise<void> {
      // Without parameters pg uses the simple protocol, which runs several statements.
      await target.query(sql);
    },
  };
}

export interface PgClientOptions {
  /** Pool size (default 10). */
  max?: number;
}

/** A connection pool on a real Postgres, from a `postgres://` URL. */
export async function openPg(url: string, options: PgClientOptions = {}): Promise<SqlClient> {
  const pool = new pg.Pool({ connectionString: url, max: options.max ?? 10, types: typeParsers });
  // An idle client losing its connection must not crash the process; the next query reports it.
  pool.on('error', () => {});
  const base = executor(pool);
  let closed = false;
  return {
    kind: 'postgres',
    query: base.query,
    exec: base.exec,
    async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      let broken: Error | undefined;
      // A checked-out client has no error listener (the pool removes its own), and an 'error' event
      // with no listener kills the process: a server restart during a transaction must only fail
      // the transaction. The failed query rejects as well, and release(broken) discards the client.
      const onError = (err: Error) => {
        broken = err;
      };
      client.on('error', onError);
      try {
        await client.query('BEGIN');
      } catch (err) {
        client.release(err as Error);
        throw err;
      }
      try {
        const value = await fn(executor(client));
        await client.query('COMMIT');
        return value;
      } catch (err) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackErr) {
          broken = rollbackErr as Error;
        }
        throw err;
      } finally {
        // A connection whose ROLLBACK failed is in an unknown state: destroy it rather than reuse it.
        // A broken client keeps the listener: it is being destroyed and may still emit.
        if (!broken) client.removeListener('error', onError);
        client.release(broken);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}
