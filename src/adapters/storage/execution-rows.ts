/** The `executions` table: every command run in a VM. */
import { isUuid, type Execution } from '../../domain/index.ts';
import type { SqlExecutor } from './sql-client.ts';
import { date, json, jsonParam, limitClause, num, textOrNull, type Row } from './sql-values.ts';

function toExecution(row: Row): Execution {
  return {
    id: String(row.id),
    vm_id: String(row.vm_id),
    task_id: textOrNull(row.task_id),
    command: String(row.command),
    args: json<string[]>(row.args, []),
    env: json<Record<string, string>>(row.env, {}),
    exit_code: num(row.exit_code),
    stdout: String(row.stdout ?? ''),
    stderr: String(row.stderr ?? ''),
    timed_out: Boolean(row.timed_out),
    started_at: date(row.started_at),
    completed_at: date(row.completed_at),
    duration_ms: num(row.duration_ms),
  };
}

export async function insertExecution(db: SqlExecutor, e: Execution): Promise<void> {
  await db.query(
    `INSERT INTO executions (id, vm_id, task_id, command, args, env, exit_code, stdout, stderr, timed_out,
                             started_at, completed_at, duration_ms)
     VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, $9, $10, $11, $12, $13)`,
    [
      e.id,
      e.vm_id,
      e.task_id,
      e.command,
      jsonParam(e.args ?? []),
      jsonParam(e.env ?? {}),
      e.exit_code,
      e.stdout,
      e.stderr,
      e.timed_out ?? false,
      e.started_at,
      e.completed_at,
      Math.max(0, Math.round(e.duration_ms)),
    ],
  );
}

/** Newest first. */
export async function listExecutions(db: SqlExecutor, vmId: string, limit = 100): Promise<Execution[]> {
  if (!isUuid(vmId)) return [];
  const params: unknown[] = [vmId];
  const rows = await db.query<Row>(
    `SELECT id, vm_id, task_id, command, args, env, exit_code, stdout, stderr, timed_out, started_at, completed_at, duration_ms
     FROM executions WHERE vm_id = $1 ORDER BY started_at DESC, id ${limitClause(limit, params)}`,
    params,
  );
  return rows.map(toExecution);
}
