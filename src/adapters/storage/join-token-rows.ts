/**
 * The `join_tokens` and `worker_cert_revocations` tables: how workers are admitted to the agent
 * channel and shut out of it again. Only a token's hash is ever stored, never its secret.
 */
import type { JoinTokenRecord } from '../../domain/index.ts';
import type { SqlExecutor } from './sql-client.ts';
import { date, dateOrNull, num, textOrNull, type Row } from './sql-values.ts';

const JOIN_TOKEN_COLUMNS = `id, secret_hash, description, max_uses, uses, expires_at, created_by, created_at,
  revoked_at, last_used_at, last_worker_id`;

function toJoinToken(row: Row): JoinTokenRecord {
  return {
    id: String(row.id),
    secret_hash: String(row.secret_hash),
    description: String(row.description ?? ''),
    max_uses: num(row.max_uses),
    uses: num(row.uses),
    expires_at: date(row.expires_at),
    created_by: textOrNull(row.created_by),
    created_at: date(row.created_at),
    revoked_at: dateOrNull(row.revoked_at),
    last_used_at: dateOrNull(row.last_used_at),
    last_worker_id: textOrNull(row.last_worker_id),
  };
}

const first = (rows: Row[]): JoinTokenRecord | null => (rows[0] ? toJoinToken(rows[0]) : null);

export async function createJoinToken(db: SqlExecutor, token: JoinTokenRecord): Promise<void> {
  await db.query(
    `INSERT INTO join_tokens (${JOIN_TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
    [
      token.id,
      token.secret_hash,
      token.description,
      token.max_uses,
      token.uses,
      token.expires_at,
      token.created_by,
      token.created_at,
      token.revoked_at,
      token.last_used_at,
      token.last_worker_id,
    ],
  );
}

/** Newest first, every state included: what a token can still do is the caller's to work out. */
export async function listJoinTokens(db: SqlExecutor): Promise<JoinTokenRecord[]> {
  const rows = await db.query<Row>(`SELECT ${JOIN_TOKEN_COLUMNS} FROM join_tokens ORDER BY created_at DESC, id DESC`);
  return rows.map(toJoinToken);
}

export async function getJoinToken(db: SqlExecutor, id: string): Promise<JoinTokenRecord | null> {
  return first(await db.query<Row>(`SELECT ${JOIN_TOKEN_COLUMNS} FROM join_tokens WHERE id = $1`, [id]));
}

/** Compare-and-set: null when the token is unknown or revoked already, so the first revocation's time stays. */
export async function revokeJoinToken(db: SqlExecutor, id: string, at: Date): Promise<JoinTokenRecord | null> {
  const rows = await db.query<Row>(
    `UPDATE join_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING ${JOIN_TOKEN_COLUMNS}`,
    [id, at],
  );
  return first(rows);
}

/**
 * One use of a token, in one statement: the WHERE re-checks uses, expiry and revocation on the row it
 * updates (Postgres re-evaluates it after waiting for a concurrent update of the same row), so of N
 * concurrent joins exactly `max_uses - uses` succeed. Null when the token is unknown or cannot be used.
 */
export async function useJoinToken(
  db: SqlExecutor,
  id: string,
  workerId: string,
  now: Date,
): Promise<JoinTokenRecord | null> {
  const rows = await db.query<Row>(
    `UPDATE join_tokens SET uses = uses + 1, last_used_at = $3, last_worker_id = $2
     WHERE id = $1 AND uses < max_uses AND expires_at > $3 AND revoked_at IS NULL
     RETURNING ${JOIN_TOKEN_COLUMNS}`,
    [id, workerId, now],
  );
  return first(rows);
}

/**
 * Refuses the worker's certificates issued at or before `before`. An upsert that keeps the later
 * cut-off, so a revocation is never undone by an older one (a replica with a slow clock, a retry).
 * Returns the cut-off in force.
 */
export async function revokeWorkerCertificates(
  db: SqlExecutor,
  workerId: string,
  before: Date,
  by: string | null,
): Promise<Date> {
  const rows = await db.query<Row>(
    `INSERT INTO worker_cert_revocations (worker_id, revoked_before, revoked_by, updated_at)
     VALUES ($1, $2, $3, now())
     ON CONFLICT (worker_id) DO UPDATE SET
       revoked_before = GREATEST(worker_cert_revocations.revoked_before, EXCLUDED.revoked_before),
       revoked_by = CASE WHEN EXCLUDED.revoked_before > worker_cert_revocations.revoked_before
                         THEN EXCLUDED.revoked_by ELSE worker_cert_revocations.revoked_by END,
       updated_at = now()
     RETURNING revoked_before`,
    [workerId, before, by],
  );
  const row = rows[0];
  if (!row) throw new Error(`the revocation of worker ${workerId} returned no row`);
  return date(row.revoked_before);
}

/** Every worker's cut-off: the table holds one row per worker ever revoked, so it stays small. */
export async function listWorkerCertificateRevocations(db: SqlExecutor): Promise<Map<string, Date>> {
  const rows = await db.query<Row>('SELECT worker_id, revoked_before FROM worker_cert_revocations');
  return new Map(rows.map((row) => [String(row.worker_id), date(row.revoked_before)]));
}

export async function workerCertificatesRevokedBefore(db: SqlExecutor, workerId: string): Promise<Date | null> {
  const rows = await db.query<Row>('SELECT revoked_before FROM worker_cert_revocations WHERE worker_id = $1', [
    workerId,
  ]);
  return rows[0] ? date(rows[0].revoked_before) : null;
}
