import type { Store } from '../../ports/store.ts';
import { explainPgOpenError, openPg } from './pg-client.ts';
import { openPglite } from './pglite-client.ts';
import type { SqlClient } from './sql-client.ts';
import { SqlStore } from './sql-store.ts';

export type StoreOptions = { kind: 'pglite'; dataDir?: string } | { kind: 'postgres'; url: string };

/**
 * Opens the store and applies pending migrations. PGlite keeps its database in `dataDir`, or in
 * memory when none is given; Postgres is reached through a connection pool on `url`, TLS included
 * (`sslmode=verify-full&sslrootcert=…&sslcert=…&sslkey=…`, see pg-client.ts). The migrations make
 * the first connection, so a refused certificate stops the opening, with what to check.
 */
export async function openStore(options: StoreOptions): Promise<Store> {
  const client: SqlClient = options.kind === 'pglite' ? await openPglite(options.dataDir) : await openPg(options.url);
  const store = new SqlStore(client);
  try {
    await store.migrate();
  } catch (err) {
    await client.close().catch(() => {});
    throw options.kind === 'postgres' ? explainPgOpenError(err, options.url) : err;
  }
  return store;
}
