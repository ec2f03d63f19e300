import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPg } from '../src/adapters/storage/pg-client.ts';
import { openStore } from '../src/adapters/storage/open-store.ts';
import { SqlStore } from '../src/adapters/storage/sql-store.ts';
import { storeConformance } from './conformance/store.suite.ts';
import { createDatabase, startPostgres, type PostgresServer } from './harness/postgres.ts';

let server: PostgresServer | undefined;

beforeAll(async () => {
  server = await startPostgres();
}, 60_000);

afterAll(async () => {
  await server?.stop();
}, 60_000);

function serverUrl(): string {
  if (!server) throw new Error('the PostgreSQL server did not start');
  return server.url;
}

// Each call gets a database of its own.
storeConformance('postgres', async () => openStore({ kind: 'postgres', url: await createDatabase(serverUrl()) }));

describe('postgres: migrations from two processes at once', () => {
  it('applies each version exactly once', async () => {
    const url = await createDatabase(serverUrl());
    const a = new SqlStore(await openPg(url));
    const b = new SqlStore(await openPg(url));
    try {
      const [fromA, fromB] = await Promise.all([a.migrate(), b.migrate()]);
      expect([...fromA, ...fromB].sort()).toEqual([1, 2]);
      expect(await a.migrate()).toEqual([]);
      expect(await b.listWorkers()).toEqual([]);
    } finally {
      await a.close();
      await b.close();
    }
  }, 60_000);
});
