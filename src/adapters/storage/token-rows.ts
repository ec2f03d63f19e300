/** The `api_keys` table: row mapper and queries. Only a key's hash is ever stored, never its secret. */
import { conflict, type ApiKeyRecord, type Role } from '../../domain/index.ts';
import { isSqlError, UNIQUE_VIOLATION, type SqlExecutor } from './sql-client.ts';
import { date, dateOrNull, num, textOrNull, where, type Row } from './sql-values.ts';

/** The unique index on live key names (migrations/000005). */
export const API_KEY_LIVE_NAME_INDEX = 'idx_api_keys_name_live';

/** touchApiKey writes last_used_at at most this often per key. */
export const TOUCH_INTERVAL_SECONDS = 60;

const API_KEY_COLUMNS = 'id, name, role, hash, created_at, created_by, last_used_at, expires_at, revoked_at';

function toApiKey(row: Row): ApiKeyRecord {
  return {
    id: String(row.id),
    name: String(row.name),
    role: row.role as Role,
    hash: String(row.hash),
    created_at: date(row.created_at),
    created_by: textOrNull(row.created_by),
    last_used_at: dateOrNull(row.last_used_at),
    expires_at: dateOrNull(row.expires_at),
    revoked_at: dateOrNull(row.revoked_at),
  };
}

const first = (rows: Row[]): ApiKeyRecord | null => (rows[0] ? toApiKey(rows[0]) : null);

/** Inserts a key. A duplicate live name becomes a `conflict` AetheriumError. */
export async function insertApiKey(db: SqlExecutor, key: ApiKeyRecord): Promise<void> {
  try {
    await db.query(`INSERT INTO api_keys (${API_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, [
      key.id,
      key.name,
      key.role,
      key.hash,
      key.created_at,
      key.created_by,
      key.last_used_at,
      key.expires_at,
      key.revoked_at,
    ]);
  } catch (err) {
    if (
      isSqlError(err, UNIQUE_VIOLATION) &&
      (err.constraint === API_KEY_LIVE_NAME_INDEX || err.message.includes(API_KEY_LIVE_NAME_INDEX))
    ) {
      throw conflict(`an API key named ${JSON.stringify(key.name)} already exists`, { name: key.name });
    }
    throw err;
  }
}

/** A key by id, revoked or expired ones included. */
export async function getApiKey(db: SqlExecutor, id: string): Promise<ApiKeyRecord | null> {
  return first(await db.query<Row>(`SELECT ${API_KEY_COLUMNS} FROM api_keys WHERE id = $1`, [id]));
}

/** Newest first; revoked keys only with `include_revoked`. Expired keys are listed like any other. */
export async function listApiKeys(
  db: SqlExecutor,
  options: { include_revoked?: boolean } = {},
): Promise<ApiKeyRecord[]> {
  const conditions = options.include_revoked ? [] : ['revoked_at IS NULL'];
  const rows = await db.query<Row>(
    `SELECT ${API_KEY_COLUMNS} FROM api_keys ${where(conditions)} ORDER BY created_at DESC, id DESC`,
  );
  return rows.map(toApiKey);
}

/**
 * Compare-and-set: revokes the live key whose id (preferred) or name is `idOrName`. Null when no live
 * key matched, so that of two concurrent revokes only one gets the key back.
 */
export async function revokeApiKey(db: SqlExecutor, idOrName: string, now: Date): Promise<ApiKeyRecord | null> {
  const rows = await db.query<Row>(
    `UPDATE api_keys SET revoked_at = $2
     WHERE revoked_at IS NULL
       AND id = (SELECT id FROM api_keys WHERE revoked_at IS NULL AND (id = $1 OR name = $1)
                 ORDER BY (id = $1) DESC LIMIT 1)
     RETURNING ${API_KEY_COLUMNS}`,
    [idOrName, now],
  );
  return first(rows);
}

/**
 * Moves last_used_at to `now`, but only when it is older than TOUCH_INTERVAL_SECONDS (or unset): the
 * throttle is in the WHERE, so most calls on a busy key match no row and write nothing.
 */
export async function touchApiKey(db: SqlExecutor, id: string, now: Date): Promise<void> {
  await db.query(
    `UPDATE api_keys SET last_used_at = $2
     WHERE id = $1 AND revoked_at IS NULL
       AND (last_used_at IS NULL OR last_used_at <= $2::timestamptz - make_interval(secs => $3))`,
    [id, now, TOUCH_INTERVAL_SECONDS],
  );
}

/** Keys not revoked (expired ones included: the store does not know the time). */
export async function countApiKeys(db: SqlExecutor): Promise<number> {
  const rows = await db.query<Row>('SELECT count(*)::int AS n FROM api_keys WHERE revoked_at IS NULL');
  return num(rows[0]?.n ?? 0);
}
