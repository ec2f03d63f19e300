/**
 * The `idempotency_keys` table: one row per (scope, key), holding the ids its request chose before it
 * created anything. A claim is one statement, so of N concurrent claims of one key exactly one writes.
 */
import type { IdempotencyClaim, IdempotencyRecord } from '../../domain/index.ts';
import type { SqlExecutor } from './sql-client.ts';
import { date, num, type Row } from './sql-values.ts';

const COLUMNS = 'scope, key, fingerprint, vm_id, task_id, created_at, expires_at';

function toRecord(row: Row): IdempotencyRecord {
  return {
    scope: String(row.scope),
    key: String(row.key),
    fingerprint: String(row.fingerprint),
    vm_id: String(row.vm_id),
    task_id: String(row.task_id),
    created_at: date(row.created_at),
    expires_at: date(row.expires_at),
  };
}

/**
 * Inserts the claim's record, or replaces one that expired at `now`; otherwise leaves the live record
 * alone and returns it. On Postgres the upsert locks the conflicting row and re-checks the WHERE on
 * its latest version, so two claims racing (even over an expired record) write once: the loser's
 * upsert returns nothing and it reads the winner's record.
 */
export async function claimIdempotencyKey(
  db: SqlExecutor,
  claim: IdempotencyClaim,
): Promise<{ record: IdempotencyRecord; created: boolean }> {
  const expiresAt = new Date(claim.now.getTime() + claim.ttl_ms);
  // A replica with a later clock may prune the record between the two statements: claim again.
  for (let attempt = 0; attempt < 3; attempt++) {
    const written = await db.query<Row>(
      `INSERT INTO idempotency_keys (${COLUMNS}) VALUES ($1, $2, $3, $4::uuid, $5::uuid, $6, $7)
       ON CONFLICT (scope, key) DO UPDATE SET
         fingerprint = EXCLUDED.fingerprint, vm_id = EXCLUDED.vm_id, task_id = EXCLUDED.task_id,
         created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
       WHERE idempotency_keys.expires_at <= EXCLUDED.created_at
       RETURNING ${COLUMNS}`,
      [claim.scope, claim.key, claim.fingerprint, claim.vm_id, claim.task_id, claim.now, expiresAt],
    );
    if (written[0]) return { record: toRecord(written[0]), created: true };
    const live = await db.query<Row>(`SELECT ${COLUMNS} FROM idempotency_keys WHERE scope = $1 AND key = $2`, [
      claim.scope,
      claim.key,
    ]);
    if (live[0]) return { record: toRecord(live[0]), created: false };
  }
  throw new Error(`the idempotency key ${JSON.stringify(claim.key)} could neither be claimed nor read`);
}

/** Deletes up to `limit` records that expired at `now`; returns how many. */
export async function pruneIdempotencyKeys(db: SqlExecutor, now: Date, limit: number): Promise<number> {
  const rows = await db.query<Row>(
    `WITH gone AS (
       DELETE FROM idempotency_keys WHERE (scope, key) IN (
         SELECT scope, key FROM idempotency_keys WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)
       RETURNING 1)
     SELECT count(*) AS n FROM gone`,
    [now, Math.max(1, Math.floor(limit))],
  );
  return num(rows[0]?.n ?? 0);
}
