/** The `audit_log` table: one row per audited request, append-only. */
import type { AuditEntry, AuditFilter, Role } from '../../domain/index.ts';
import type { SqlExecutor } from './sql-client.ts';
import { date, json, jsonParam, limitClause, num, textOrNull, where, type Row } from './sql-values.ts';

export const AUDIT_DEFAULT_LIMIT = 100;
export const AUDIT_MAX_LIMIT = 1000;

const AUDIT_COLUMNS = 'id, at, actor, actor_kind, role, action, route, target, source, outcome, status, details';

function toAuditEntry(row: Row): AuditEntry {
  return {
    id: num(row.id),
    at: date(row.at),
    actor: String(row.actor),
    actor_kind: row.actor_kind as AuditEntry['actor_kind'],
    role: textOrNull(row.role) as Role | null,
    action: String(row.action),
    route: String(row.route),
    target: textOrNull(row.target),
    source: textOrNull(row.source),
    outcome: row.outcome as AuditEntry['outcome'],
    status: num(row.status),
    details: json<AuditEntry['details']>(row.details, {}),
  };
}

/** Appends an entry; `at` defaults to the database's now(). */
export async function insertAudit(
  db: SqlExecutor,
  entry: Omit<AuditEntry, 'id' | 'at'> & { at?: Date },
): Promise<void> {
  await db.query(
    `INSERT INTO audit_log (at, actor, actor_kind, role, action, route, target, source, outcome, status, details)
     VALUES (COALESCE($1::timestamptz, now()), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb)`,
    [
      entry.at ?? null,
      entry.actor,
      entry.actor_kind,
      entry.role,
      entry.action,
      entry.route,
      entry.target,
      entry.source,
      entry.outcome,
      entry.status,
      jsonParam(entry.details ?? {}),
    ],
  );
}

/** The limit actually used: AUDIT_DEFAULT_LIMIT when none (or not a number), else clamped to 1..AUDIT_MAX_LIMIT. */
export function auditLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return AUDIT_DEFAULT_LIMIT;
  return Math.max(1, Math.min(AUDIT_MAX_LIMIT, Math.floor(limit)));
}

/**
 * Newest first, by id (the insertion order), so that `before_id` pages without gaps or repeats: pass
 * the last id of one page to get the next.
 */
export async function listAudit(db: SqlExecutor, filter: AuditFilter = {}): Promise<AuditEntry[]> {
  const params: unknown[] = [];
  const conditions: string[] = [];
  const add = (condition: string, value: unknown) => {
    params.push(value);
    conditions.push(condition.replace('?', `$${params.length}`));
  };
  if (filter.actor !== undefined) add('actor = ?', filter.actor);
  if (filter.action !== undefined) add('action = ?', filter.action);
  if (filter.outcome !== undefined) add('outcome = ?', filter.outcome);
  if (filter.since !== undefined) add('at >= ?::timestamptz', filter.since);
  if (filter.before_id !== undefined && Number.isFinite(filter.before_id))
    add('id < ?::bigint', Math.floor(filter.before_id));
  const rows = await db.query<Row>(
    `SELECT ${AUDIT_COLUMNS} FROM audit_log ${where(conditions)}
     ORDER BY id DESC ${limitClause(auditLimit(filter.limit), params)}`,
    params,
  );
  return rows.map(toAuditEntry);
}
