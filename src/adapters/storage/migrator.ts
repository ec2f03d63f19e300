/**
 * Schema migrations: `migrations/NNNNNN_name.up.sql` and `.down.sql`, applied in version order and
 * recorded in `schema_migrations`.
 *
 * Each migration runs in its own transaction that first takes a transaction-scoped advisory lock
 * (`pg_advisory_xact_lock`) and then re-reads what is applied, so two processes migrating the same
 * database at once apply each version exactly once: the second waits for the first's commit, then
 * sees the version done and skips it. A transaction-scoped lock is used rather than a session lock
 * because a pool gives no guarantee that two calls share a session; it works the same on PGlite.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { packagePath } from '../package-root.ts';
import type { SqlClient, SqlExecutor } from './sql-client.ts';

/** The package's `migrations/` folder (the same from the sources and from the bundle in dist/). */
export const DEFAULT_MIGRATIONS_DIR = packagePath('migrations');

/** Arbitrary, fixed: every Aetherium process migrating a database contends on this key. */
const MIGRATION_LOCK_KEY = 7_265_101_332;

const FILE_NAME = /^(\d{6})_([A-Za-z0-9_]+)\.(up|down)\.sql$/;

export interface Migration {
  version: number;
  name: string;
  up: string;
  down: string | null;
}

export interface MigratorOptions {
  dir?: string;
}

export async function loadMigrations(dir: string = DEFAULT_MIGRATIONS_DIR): Promise<Migration[]> {
  const byVersion = new Map<number, { name: string; up?: string; down?: string }>();
  for (const file of (await readdir(dir)).sort()) {
    const match = FILE_NAME.exec(file);
    if (!match) continue;
    const version = Number(match[1]);
    const name = match[2] as string;
    const direction = match[3] as 'up' | 'down';
    const entry = byVersion.get(version) ?? { name };
    if (entry.name !== name) throw new Error(`migration ${version} has two names: ${entry.name} and ${name}`);
    entry[direction] = await readFile(join(dir, file), 'utf8');
    byVersion.set(version, entry);
  }
  const migrations: Migration[] = [];
  for (const [version, entry] of [...byVersion].sort((a, b) => a[0] - b[0])) {
    if (entry.up === undefined) throw new Error(`migration ${version}_${entry.name} has no .up.sql`);
    migrations.push({ version, name: entry.name, up: entry.up, down: entry.down ?? null });
  }
  return migrations;
}

async function lockAndReadApplied(tx: SqlExecutor): Promise<Set<number>> {
  await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [MIGRATION_LOCK_KEY]);
  const rows = await tx.query<{ version: number }>('SELECT version FROM schema_migrations');
  return new Set(rows.map((r) => Number(r.version)));
}

async function ensureTable(client: SqlClient): Promise<void> {
  await client.transaction(async (tx) => {
    // Under the lock: two concurrent CREATE TABLE IF NOT EXISTS can otherwise still collide.
    await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [MIGRATION_LOCK_KEY]);
    await tx.query(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         version    integer PRIMARY KEY,
         name       text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
  });
}

/** The versions recorded as applied, ascending. */
export async function appliedVersions(client: SqlClient): Promise<number[]> {
  await ensureTable(client);
  const rows = await client.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
  return rows.map((r) => Number(r.version));
}

/** Applies every pending up migration in order; returns the versions this call applied. */
export async function migrate(client: SqlClient, options: MigratorOptions = {}): Promise<number[]> {
  const migrations = await loadMigrations(options.dir);
  await ensureTable(client);
  const applied: number[] = [];
  for (const migration of migrations) {
    const done = await client.transaction(async (tx) => {
      if ((await lockAndReadApplied(tx)).has(migration.version)) return false;
      await tx.exec(migration.up);
      await tx.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())', [
        migration.version,
        migration.name,
      ]);
      return true;
    });
    if (done) applied.push(migration.version);
  }
  return applied;
}

/**
 * Reverts applied migrations, newest first, until only versions <= `targetVersion` remain (0 reverts
 * everything). Returns the versions this call reverted.
 */
export async function migrateDown(
  client: SqlClient,
  targetVersion: number,
  options: MigratorOptions = {},
): Promise<number[]> {
  const migrations = await loadMigrations(options.dir);
  await ensureTable(client);
  const reverted: number[] = [];
  for (const migration of [...migrations].reverse()) {
    if (migration.version <= targetVersion) break;
    const done = await client.transaction(async (tx) => {
      if (!(await lockAndReadApplied(tx)).has(migration.version)) return false;
      if (migration.down === null) throw new Error(`migration ${migration.version}_${migration.name} has no .down.sql`);
      await tx.exec(migration.down);
      await tx.query('DELETE FROM schema_migrations WHERE version = $1', [migration.version]);
      return true;
    });
    if (done) reverted.push(migration.version);
  }
  return reverted;
}
