/** The `tasks` table: row mapper and queries. */
import {
  isUuid,
  type PlacementRecord,
  type TaskTrace,
  TASK_STATUSES,
  type Task,
  type TaskFilter,
  type TaskStatus,
  type TaskType,
} from '../../domain/index.ts';
import type { TaskPatch } from '../../ports/store.ts';
import type { SqlExecutor } from './sql-client.ts';
import {
  date,
  dateOrNull,
  json,
  jsonOrNull,
  jsonParam,
  limitClause,
  num,
  textOrNull,
  updateWhereStatus,
  where,
  type Row,
} from './sql-values.ts';

export const TASK_COLUMNS = `id, type, status, vm_id, worker_id, payload, result, error, placement, retry_count, max_retries,
  created_at, updated_at, started_at, completed_at, cancel_requested_at, trace`;

/** The row as the union it stores: the type column decides the shape of payload and result. */
export function toTask(row: Row): Task {
  const task = {
    id: String(row.id),
    type: row.type as TaskType,
    status: row.status as TaskStatus,
    vm_id: textOrNull(row.vm_id),
    worker_id: textOrNull(row.worker_id),
    payload: json<Task['payload']>(row.payload, {}),
    result: jsonOrNull<NonNullable<Task['result']>>(row.result),
    error: textOrNull(row.error),
    placement: jsonOrNull<PlacementRecord>(row.placement),
    retry_count: num(row.retry_count),
    max_retries: num(row.max_retries),
    created_at: date(row.created_at),
    updated_at: date(row.updated_at),
    started_at: dateOrNull(row.started_at),
    completed_at: dateOrNull(row.completed_at),
    cancel_requested_at: dateOrNull(row.cancel_requested_at),
    trace: jsonOrNull<TaskTrace>(row.trace),
  };
  // Every row was written from a Task of its type; the columns are read back as they went in.
  return task as Task;
}

const first = (rows: Row[]): Task | null => (rows[0] ? toTask(rows[0]) : null);

/** Inserts a task; with `ifAbsent`, a task whose id exists already is left alone (returns false). */
export async function insertTask(db: SqlExecutor, task: Task, ifAbsent = false): Promise<boolean> {
  const rows = await db.query(
    `INSERT INTO tasks (id, type, status, vm_id, worker_id, payload, result, error, placement, retry_count, max_retries,
                        created_at, updated_at, started_at, completed_at, trace)
     VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9::jsonb, $10, $11, $12, $13, $14, $15, $16::jsonb)
     ${ifAbsent ? 'ON CONFLICT (id) DO NOTHING' : ''} RETURNING id`,
    [
      task.id,
      task.type,
      task.status,
      task.vm_id,
      task.worker_id,
      jsonParam(task.payload ?? {}),
      jsonParam(task.result),
      task.error,
      jsonParam(task.placement),
      task.retry_count,
      task.max_retries,
      task.created_at,
      task.updated_at,
      task.started_at,
      task.completed_at,
      jsonParam(task.trace ?? null),
    ],
  );
  return rows.length > 0;
}

export async function getTask(db: SqlExecutor, id: string): Promise<Task | null> {
  if (!isUuid(id)) return null;
  return first(await db.query<Row>(`SELECT ${TASK_COLUMNS} FROM tasks WHERE id = $1`, [id]));
}

/** Newest first. */
export async function listTasks(db: SqlExecutor, filter: TaskFilter = {}): Promise<Task[]> {
  const params: unknown[] = [];
  const conditions: string[] = [];
  const add = (column: string, value: unknown) => {
    params.push(value);
    conditions.push(`${column} = $${params.length}`);
  };
  if (filter.status !== undefined) add('status', filter.status);
  if (filter.type !== undefined) add('type', filter.type);
  if (filter.worker_id !== undefined) add('worker_id', filter.worker_id);
  if (filter.vm_id !== undefined) {
    if (!isUuid(filter.vm_id)) return [];
    add('vm_id', filter.vm_id);
  }
  const rows = await db.query<Row>(
    `SELECT ${TASK_COLUMNS} FROM tasks ${where(conditions)} ORDER BY created_at DESC, id ${limitClause(filter.limit, params)}`,
    params,
  );
  return rows.map(toTask);
}

const TASK_PATCH_COLUMNS = {
  status: { column: 'status' },
  worker_id: { column: 'worker_id' },
  result: { column: 'result', jsonb: true },
  error: { column: 'error' },
  placement: { column: 'placement', jsonb: true },
  retry_count: { column: 'retry_count' },
  started_at: { column: 'started_at' },
  completed_at: { column: 'completed_at' },
};

/** Compare-and-set: applies `patch` only while the status is one of `from` (when given). */
export async function updateTask(
  db: SqlExecutor,
  id: string,
  patch: TaskPatch,
  from?: readonly TaskStatus[],
): Promise<Task | null> {
  if (!isUuid(id)) return null;
  const row = await updateWhereStatus(db, 'tasks', TASK_COLUMNS, id, patch, TASK_PATCH_COLUMNS, from);
  return row ? toTask(row) : null;
}

export async function listPendingTasks(db: SqlExecutor, limit: number): Promise<Task[]> {
  const params: unknown[] = [];
  const rows = await db.query<Row>(
    `SELECT ${TASK_COLUMNS} FROM tasks WHERE status = 'pending' ORDER BY created_at, id ${limitClause(limit, params)}`,
    params,
  );
  return rows.map(toTask);
}

/** Scheduled tasks whose row was last updated before `before`, least recently updated first. */
export async function listStaleScheduledTasks(db: SqlExecutor, before: Date, limit: number): Promise<Task[]> {
  const params: unknown[] = [before];
  const rows = await db.query<Row>(
    `SELECT ${TASK_COLUMNS} FROM tasks WHERE status = 'scheduled' AND updated_at < $1
     ORDER BY updated_at, id ${limitClause(limit, params)}`,
    params,
  );
  return rows.map(toTask);
}

export async function countTasksByStatus(db: SqlExecutor): Promise<Record<TaskStatus, number>> {
  const counts = Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Record<TaskStatus, number>;
  const rows = await db.query<{ status: TaskStatus; n: number }>(
    'SELECT status, count(*) AS n FROM tasks GROUP BY status',
  );
  for (const row of rows) counts[row.status] = num(row.n);
  return counts;
}

/** Flags a running task for cancellation; null when it is not running (any more). */
export async function requestCancel(db: SqlExecutor, id: string, now: Date): Promise<Task | null> {
  if (!isUuid(id)) return null;
  return first(
    await db.query<Row>(
      `UPDATE tasks SET cancel_requested_at = COALESCE(cancel_requested_at, $2), updated_at = now()
       WHERE id = $1 AND status = 'running' RETURNING ${TASK_COLUMNS}`,
      [id, now],
    ),
  );
}
