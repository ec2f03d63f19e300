/** The `workers` and `worker_metrics` tables: row mappers and queries. */
import type {
  Worker,
  WorkerFilter,
  WorkerMetricSample,
  WorkerRegistration,
  WorkerResources,
  WorkerStatus,
} from '../../domain/index.ts';
import type { SqlExecutor } from './sql-client.ts';
import { assignments, date, dateOrNull, json, jsonParam, limitClause, num, where, type Row } from './sql-values.ts';

const WORKER_COLUMNS = `id, hostname, address, status, eligible, last_seen, started_at, zone, labels, capabilities,
  cpu_cores, memory_mb, disk_gb, used_cpu_cores, used_memory_mb, used_disk_gb, vm_count, max_vms, ttl_seconds, metadata,
  drain_started_at, drain_deadline, drain_message, drain_enforced_at, drained_at`;

export function toWorker(row: Row): Worker {
  return {
    id: String(row.id),
    hostname: String(row.hostname),
    address: String(row.address),
    status: row.status as WorkerStatus,
    eligible: Boolean(row.eligible),
    last_seen: date(row.last_seen),
    started_at: date(row.started_at),
    zone: String(row.zone ?? ''),
    labels: json<Record<string, string>>(row.labels, {}),
    capabilities: json<string[]>(row.capabilities, []),
    cpu_cores: num(row.cpu_cores),
    memory_mb: num(row.memory_mb),
    disk_gb: num(row.disk_gb),
    used_cpu_cores: num(row.used_cpu_cores),
    used_memory_mb: num(row.used_memory_mb),
    used_disk_gb: num(row.used_disk_gb),
    vm_count: num(row.vm_count),
    max_vms: num(row.max_vms),
    ttl_seconds: num(row.ttl_seconds),
    metadata: json<Record<string, unknown>>(row.metadata, {}),
    drain: row.drain_started_at
      ? {
          started_at: date(row.drain_started_at),
          deadline: dateOrNull(row.drain_deadline),
          message: row.drain_message === null || row.drain_message === undefined ? null : String(row.drain_message),
          enforced_at: dateOrNull(row.drain_enforced_at),
          drained_at: dateOrNull(row.drained_at),
        }
      : null,
  };
}

function toMetric(row: Row): WorkerMetricSample {
  return {
    worker_id: String(row.worker_id),
    timestamp: date(row.timestamp),
    cpu_usage: num(row.cpu_usage),
    memory_usage: num(row.memory_usage),
    disk_usage: num(row.disk_usage),
    vm_count: num(row.vm_count),
    tasks_processed: num(row.tasks_processed),
    network_in_mb: num(row.network_in_mb),
    network_out_mb: num(row.network_out_mb),
  };
}

const first = (rows: Row[]): Worker | null => (rows[0] ? toWorker(rows[0]) : null);

/**
 * Insert, or refresh what the worker says about itself. Reservations (`used_*`, `vm_count`),
 * `eligible` and a drain survive; an offline worker comes back active. `created` comes from
 * `xmax = 0`, which holds only for a row this statement inserted.
 */
export async function upsertWorker(
  db: SqlExecutor,
  reg: WorkerRegistration,
  now: Date,
): Promise<{ worker: Worker; created: boolean }> {
  const rows = await db.query<Row>(
    `INSERT INTO workers (id, hostname, address, status, eligible, last_seen, started_at, zone, labels, capabilities,
                          cpu_cores, memory_mb, disk_gb, max_vms, ttl_seconds, metadata, created_at, updated_at)
     VALUES ($1, $2, $3, 'active', true, $4, COALESCE($5::timestamptz, $4), $6, $7::jsonb, $8::jsonb,
             $9, $10, $11, $12, $13, $14::jsonb, now(), now())
     ON CONFLICT (id) DO UPDATE SET
       hostname = EXCLUDED.hostname,
       address = EXCLUDED.address,
       status = CASE WHEN workers.status = 'offline' THEN 'active' ELSE workers.status END,
       last_seen = EXCLUDED.last_seen,
       started_at = COALESCE($5::timestamptz, workers.started_at),
       zone = EXCLUDED.zone,
       labels = EXCLUDED.labels,
       capabilities = EXCLUDED.capabilities,
       cpu_cores = EXCLUDED.cpu_cores,
       memory_mb = EXCLUDED.memory_mb,
       disk_gb = EXCLUDED.disk_gb,
       max_vms = EXCLUDED.max_vms,
       ttl_seconds = EXCLUDED.ttl_seconds,
       metadata = EXCLUDED.metadata,
       updated_at = now()
     RETURNING ${WORKER_COLUMNS}, (xmax = 0) AS created`,
    [
      reg.id,
      reg.hostname,
      reg.address,
      now,
      reg.started_at ?? null,
      reg.zone ?? '',
      jsonParam(reg.labels ?? {}),
      jsonParam(reg.capabilities ?? []),
      reg.cpu_cores,
      reg.memory_mb,
      reg.disk_gb,
      reg.max_vms,
      reg.ttl_seconds,
      jsonParam(reg.metadata ?? {}),
    ],
  );
  const row = rows[0];
  if (!row) throw new Error(`upsert of worker ${reg.id} returned no row`);
  return { worker: toWorker(row), created: Boolean(row.created) };
}

export async function getWorker(db: SqlExecutor, id: string): Promise<Worker | null> {
  return first(await db.query<Row>(`SELECT ${WORKER_COLUMNS} FROM workers WHERE id = $1`, [id]));
}

/** Workers matching every given filter: labels and capabilities by jsonb containment. Ordered by id. */
export async function listWorkers(db: SqlExecutor, filter: WorkerFilter = {}): Promise<Worker[]> {
  const params: unknown[] = [];
  const conditions: string[] = [];
  const add = (sql: (n: string) => string, value: unknown) => {
    params.push(value);
    conditions.push(sql(`$${params.length}`));
  };
  if (filter.status !== undefined) add((p) => `status = ${p}`, filter.status);
  if (filter.zone !== undefined) add((p) => `zone = ${p}`, filter.zone);
  if (filter.labels !== undefined && Object.keys(filter.labels).length > 0)
    add((p) => `labels @> ${p}::jsonb`, jsonParam(filter.labels));
  if (filter.capabilities !== undefined && filter.capabilities.length > 0)
    add((p) => `capabilities @> ${p}::jsonb`, jsonParam(filter.capabilities));
  const rows = await db.query<Row>(`SELECT ${WORKER_COLUMNS} FROM workers ${where(conditions)} ORDER BY id`, params);
  return rows.map(toWorker);
}

/**
 * One statement per heartbeat (it runs for every worker every few seconds): last_seen moves, an
 * offline worker turns active, and the answer says whether it was offline, read from the row as
 * it was locked, so no second round trip is needed to tell.
 */
export async function touchWorker(
  db: SqlExecutor,
  id: string,
  now: Date,
): Promise<(Worker & { was_offline: boolean }) | null> {
  const rows = await db.query<Row>(
    `UPDATE workers SET last_seen = $2,
            status = CASE WHEN workers.status = 'offline' THEN 'active' ELSE workers.status END,
            updated_at = now()
     FROM (SELECT id AS before_id, status AS before_status FROM workers WHERE id = $1 FOR UPDATE) before
     WHERE workers.id = before.before_id
     RETURNING ${WORKER_COLUMNS}, before.before_status = 'offline' AS was_offline`,
    [id, now],
  );
  const row = rows[0];
  return row ? { ...toWorker(row), was_offline: row.was_offline === true } : null;
}

export async function setWorkerStatus(
  db: SqlExecutor,
  id: string,
  status: WorkerStatus,
  eligible?: boolean,
): Promise<Worker | null> {
  return first(
    await db.query<Row>(
      `UPDATE workers SET status = $2, eligible = COALESCE($3::boolean, eligible), updated_at = now()
       WHERE id = $1 RETURNING ${WORKER_COLUMNS}`,
      [id, status, eligible ?? null],
    ),
  );
}

const RESOURCE_COLUMNS = {
  cpu_cores: { column: 'cpu_cores' },
  memory_mb: { column: 'memory_mb' },
  disk_gb: { column: 'disk_gb' },
  max_vms: { column: 'max_vms' },
};

export async function updateWorkerResources(
  db: SqlExecutor,
  id: string,
  resources: Partial<WorkerResources>,
): Promise<Worker | null> {
  const params: unknown[] = [id];
  const sets = assignments(resources, RESOURCE_COLUMNS, params);
  sets.push('updated_at = now()');
  return first(
    await db.query<Row>(`UPDATE workers SET ${sets.join(', ')} WHERE id = $1 RETURNING ${WORKER_COLUMNS}`, params),
  );
}

/** Every not-yet-offline worker whose last heartbeat is at least `ttl_seconds` before `now` goes offline. */
export async function markStaleWorkersOffline(db: SqlExecutor, now: Date): Promise<Worker[]> {
  const rows = await db.query<Row>(
    // The rows are locked in id order first, as a batch of placements locks them, so the two
    // cannot deadlock.
    `UPDATE workers SET status = 'offline', updated_at = now()
     WHERE id IN (
       SELECT id FROM workers
       WHERE status <> 'offline' AND last_seen <= $1::timestamptz - make_interval(secs => ttl_seconds)
       ORDER BY id FOR NO KEY UPDATE)
     AND status <> 'offline' AND last_seen <= $1::timestamptz - make_interval(secs => ttl_seconds)
     RETURNING ${WORKER_COLUMNS}`,
    [now],
  );
  return rows.map(toWorker).sort((a, b) => a.id.localeCompare(b.id));
}

export async function deleteWorker(db: SqlExecutor, id: string): Promise<boolean> {
  const rows = await db.query<Row>('DELETE FROM workers WHERE id = $1 RETURNING id', [id]);
  return rows.length > 0;
}

export async function recordWorkerMetrics(db: SqlExecutor, s: WorkerMetricSample): Promise<void> {
  await db.query(
    `INSERT INTO worker_metrics (worker_id, timestamp, cpu_usage, memory_usage, disk_usage, vm_count, tasks_processed,
                                 network_in_mb, network_out_mb)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [
      s.worker_id,
      s.timestamp,
      s.cpu_usage,
      s.memory_usage,
      s.disk_usage,
      s.vm_count,
      s.tasks_processed,
      s.network_in_mb,
      s.network_out_mb,
    ],
  );
}

/** Newest sample first. */
export async function listWorkerMetrics(db: SqlExecutor, workerId: string, limit = 100): Promise<WorkerMetricSample[]> {
  const params: unknown[] = [workerId];
  const rows = await db.query<Row>(
    `SELECT worker_id, timestamp, cpu_usage, memory_usage, disk_usage, vm_count, tasks_processed, network_in_mb, network_out_mb
     FROM worker_metrics WHERE worker_id = $1 ORDER BY timestamp DESC, id DESC ${limitClause(limit, params)}`,
    params,
  );
  return rows.map(toMetric);
}

/** Starts (or restarts) a drain: no new placements from this statement on. */
export async function startDrain(
  db: SqlExecutor,
  id: string,
  drain: { deadline: Date | null; message: string | null },
  now: Date,
): Promise<Worker | null> {
  return first(
    await db.query<Row>(
      `UPDATE workers SET status = CASE WHEN status = 'offline' THEN 'offline' ELSE 'draining' END, eligible = false,
              drain_started_at = $2, drain_deadline = $3, drain_message = $4, drain_enforced_at = NULL, drained_at = NULL,
              updated_at = now()
       WHERE id = $1 RETURNING ${WORKER_COLUMNS}`,
      [id, now, drain.deadline, drain.message],
    ),
  );
}

/** Ends any drain and lets the worker take placements again (an offline worker stays offline). */
export async function activateWorker(db: SqlExecutor, id: string): Promise<Worker | null> {
  return first(
    await db.query<Row>(
      `UPDATE workers SET status = CASE WHEN status = 'offline' THEN 'offline' ELSE 'active' END, eligible = true,
              drain_started_at = NULL, drain_deadline = NULL, drain_message = NULL, drain_enforced_at = NULL, drained_at = NULL,
              updated_at = now()
       WHERE id = $1 RETURNING ${WORKER_COLUMNS}`,
      [id],
    ),
  );
}

export async function setWorkerEligibility(db: SqlExecutor, id: string, eligible: boolean): Promise<Worker | null> {
  return first(
    await db.query<Row>(
      `UPDATE workers SET eligible = $2, updated_at = now() WHERE id = $1 RETURNING ${WORKER_COLUMNS}`,
      [id, eligible],
    ),
  );
}

/** True for exactly one caller: the one that enforces the deadline of this drain. */
export async function claimDrainEnforcement(db: SqlExecutor, id: string, now: Date): Promise<boolean> {
  const rows = await db.query<Row>(
    `UPDATE workers SET drain_enforced_at = $2, updated_at = now()
     WHERE id = $1 AND status = 'draining' AND drain_deadline IS NOT NULL AND drain_deadline <= $2 AND drain_enforced_at IS NULL
     RETURNING id`,
    [id, now],
  );
  return rows.length > 0;
}

/** True for exactly one caller, once no live VM is left on the draining worker. */
export async function markDrained(db: SqlExecutor, id: string, now: Date): Promise<boolean> {
  const rows = await db.query<Row>(
    `UPDATE workers SET drained_at = $2, updated_at = now()
     WHERE id = $1 AND drain_started_at IS NOT NULL AND drained_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM vms WHERE vms.worker_id = workers.id AND vms.deleted_at IS NULL)
     RETURNING id`,
    [id, now],
  );
  return rows.length > 0;
}

/** True for exactly one caller per change: the one that announces the worker joined (or left). */
export async function announceWorker(db: SqlExecutor, id: string, change: 'joined' | 'left'): Promise<boolean> {
  const rows = await db.query<Row>(
    `UPDATE workers SET announced = $2, updated_at = now() WHERE id = $1 AND announced IS DISTINCT FROM $2 RETURNING id`,
    [id, change],
  );
  return rows.length > 0;
}
