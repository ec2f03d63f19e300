import { mkdir } from 'node:fs/promises';
import { PGlite, types, type Transaction } from '@electric-sql/pglite';
import type { SqlClient, SqlExecutor } from './sql-client.ts';

/** `bigint` as a JS number (counters and sizes stay far below 2^53). */
const parsers = { [types.INT8]: (value: string) => Number(value) };

function executor(db: PGlite | Transaction): SqlExecutor {
  return {
    async query<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
      const result = await db.query<T>(sql, params as unknown[]);
      return result.rows;
    },
    async exec(sql: string): Promise<void> {
      await db.exec(sql);
    },
  };
}

/**
 * Embedded Postgres (WASM). With `dataDir` the database lives in that folder and survives a restart;
 * without it, it lives in memory. One PGlite serves one connection: it runs queries one at a time
 * and a transaction holds it exclusively, so transactions never interleave.
 */
export async function openPglite(dataDir?: string): Promise<SqlClient> {
  if (dataDir !== undefined) await mkdir(dataDir, { recursive: true });
  const db = await PGlite.create({ ...(dataDir === undefined ? {} : { dataDir }), parsers });
  const base = executor(db);
  return {
    kind: 'pglite',
    query: base.query,
    exec: base.exec,
    transaction: <T>(fn: (tx: SqlExecutor) => Promise<T>) => db.transaction((tx) => fn(executor(tx))),
    async close() {
      if (!db.closed) await db.close();
    },
  };
}
