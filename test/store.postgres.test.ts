import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMigrations } from '../src/adapters/storage/migrator.ts';
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
      expect([...fromA, ...fromB].sort((x, y) => x - y)).toEqual((await loadMigrations()).map((m) => m.version));
      expect(await a.migrate()).toEqual([]);
      expect(await b.listWorkers()).toEqual([]);
    } finally {
      await a.close();
      await b.close();
    }
  }, 60_000);
});

describe('postgres: a server restart in the middle of a transaction', () => {
  it('fails that transaction, keeps the process alive, and the pool works again afterwards', async () => {
    // A server of its own: restarting the shared one would disturb the other tests.
    const own = await startPostgres();
    const client = await openPg(own.url);
    try {
      // The outcome is caught at once: the rejection arrives while the restart is still under way.
      const tx = client
        .transaction(async (t) => t.query('SELECT pg_sleep(5)'))
        .then(
          () => null,
          (err: Error) => err,
        );
      await new Promise((r) => setTimeout(r, 300));
      await own.restart(100);
      // Without an error listener on the checked-out client, this restart would kill the process.
      expect((await tx)?.message).toMatch(/terminat|shutting down|Connection/i);
      let answer: unknown = null;
      for (let i = 0; i < 50 && answer === null; i++) {
        answer = await client.query<{ one: number }>('SELECT 1 AS one').then(
          (rows) => rows[0]?.one ?? null,
          () => null,
        );
        if (answer === null) await new Promise((r) => setTimeout(r, 100));
      }
      expect(answer).toBe(1);
    } finally {
      await client.close();
      await own.stop();
    }
  }, 60_000);
});
