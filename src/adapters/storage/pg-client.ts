/**
 * The store's Postgres connection pool. TLS is the URL's business, as with libpq: `sslmode=
 * verify-full` checks the server's certificate and that it names the URL's host, `sslrootcert` is
 * the CA to trust, `sslcert` + `sslkey` the client certificate for `clientcert=verify-full` or
 * `cert` in pg_hba. pg reads those files for every new connection (a renewed certificate is picked
 * up without a restart); openPg only checks at open that they can be read, so that a wrong path
 * fails the start with the parameter and the path rather than the first query.
 */
import { accessSync, constants } from 'node:fs';
import pg from 'pg';
import { AetheriumError, errorMessage } from '../../domain/index.ts';
import { tlsFailureHint } from '../tls-errors.ts';
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

/** The URL's query, or null when it does not parse (pg then says so itself, without echoing it). */
function queryOf(url: string): URLSearchParams | null {
  try {
    return new URL(url).searchParams;
  } catch {
    return null;
  }
}

/** The files the URL names must be readable, and a client certificate must come with its key. */
function checkSslFiles(url: string): void {
  const query = queryOf(url);
  if (!query) return;
  for (const name of ['sslrootcert', 'sslcert', 'sslkey']) {
    const file = query.get(name);
    if (file === null) continue;
    try {
      accessSync(file, constants.R_OK);
    } catch (err) {
      throw new AetheriumError(
        'validation_failed',
        `Postgres URL: ${name}=${file} cannot be read: ${errorMessage(err)}`,
      );
    }
  }
  if (query.has('sslcert') !== query.has('sslkey'))
    throw new AetheriumError(
      'validation_failed',
      'Postgres URL: sslcert and sslkey go together (the client certificate and its key)',
    );
}

/**
 * `err` from the first connection, with what to check when TLS is what failed; the server's
 * `host:port` only, never the URL (it may hold a password).
 */
export function explainPgOpenError(err: unknown, url: string): unknown {
  const hint = tlsFailureHint(err, { ca: 'sslrootcert in the URL', cert: 'sslcert and sslkey in the URL' });
  if (!hint) return err;
  let where = 'the server';
  try {
    where = new URL(url).host;
  } catch {
    // keep the generic name
  }
  return new AetheriumError(
    'unavailable',
    `Postgres at ${where} refused the TLS connection: ${errorMessage(err)} (TLS: ${hint})`,
  );
}

/** A connection pool on a real Postgres, from a `postgres://` URL. */
export async function openPg(url: string, options: PgClientOptions = {}): Promise<SqlClient> {
  checkSslFiles(url);
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
