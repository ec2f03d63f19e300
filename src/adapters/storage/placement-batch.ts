/**
 * Placements committed by the batch: what the scheduler loop reads and writes once per pass instead
 * of once per task. `placeTasks` commits a whole batch in one transaction with set-based statements,
 * under the same rules as `placeTask` (capacity.ts); `getVms` reads the batch's VMs in one query and
 * `countCreatesInFlight` what the snapshot needs of the creates already placed, counted in SQL.
 *
 * How a batch never overbooks. The rows it changes are locked first, each table in id order and in
 * the order every other writer uses (tasks, then workers, then VMs: `placeTask` and
 * `deleteUnplacedVm` take the same), so two batches, or a batch and a single placement or delete,
 * wait for each other instead of deadlocking. Then one statement, which sees the locked rows as they
 * now are and which nobody else can change until the commit, decides and writes everything: per
 * worker, a running sum of the batch's requirements in batch order is compared to the worker's room,
 * and the placements whose sum still fits (a prefix of that worker's, since sums only grow) are
 * committed; the others are answered `insufficient_capacity`.
 */
import { isUuid, type Vm } from '../../domain/index.ts';
import type { BatchPlacement, PlacementOutcome } from '../../ports/store.ts';
import type { SqlClient, SqlExecutor } from './sql-client.ts';
import { jsonParam, type Row } from './sql-values.ts';
import { toVm, VM_COLUMNS } from './vm-rows.ts';

/**
 * The decision and every write, in one statement over the rows this transaction locked: $1..$5 are
 * the entries as parallel arrays (their order is the ordinality), $6 the `placed` phase (or null).
 * Only entries whose task, VM and worker are locked get here, so no row is written without its lock
 * taken in order; the statement checks their states again all the same.
 */
const PLACE_BATCH = `
WITH input AS (
  SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY
         AS i(task_id, vm_id, worker_id, driver, placement, ord)
),
-- Placeable at all: a pending task and a live VM that holds no reservation yet.
ready AS (
  SELECT i.ord, i.task_id, i.vm_id, i.worker_id, i.driver, i.placement, v.vcpus, v.memory_mb, v.disk_gb
  FROM input i
  JOIN tasks t ON t.id = i.task_id AND t.status = 'pending'
  JOIN vms v ON v.id = i.vm_id AND v.deleted_at IS NULL AND NOT v.reserved
),
-- On an active, eligible worker, with the running sums of what the batch puts on it, in batch order.
summed AS (
  SELECT r.*, w.used_cpu_cores, w.cpu_cores, w.used_memory_mb, w.memory_mb AS worker_memory_mb,
         w.used_disk_gb, w.disk_gb AS worker_disk_gb, w.vm_count, w.max_vms,
         sum(r.vcpus) OVER on_worker AS cpu_sum,
         sum(r.memory_mb) OVER on_worker AS memory_sum,
         sum(r.disk_gb) OVER on_worker AS disk_sum,
         count(*) OVER on_worker AS vm_sum
  FROM ready r
  JOIN workers w ON w.id = r.worker_id AND w.status = 'active' AND w.eligible
  WINDOW on_worker AS (PARTITION BY r.worker_id ORDER BY r.ord ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
placed AS (
  SELECT ord, task_id, vm_id, worker_id, driver, placement, vcpus, memory_mb, disk_gb
  FROM summed
  WHERE used_cpu_cores + cpu_sum <= cpu_cores
    AND used_memory_mb + memory_sum <= worker_memory_mb
    AND used_disk_gb + disk_sum <= worker_disk_gb
    AND vm_count + vm_sum <= max_vms
),
tasks_written AS (
  UPDATE tasks t SET status = 'scheduled', worker_id = p.worker_id, placement = p.placement::jsonb, updated_at = now()
  FROM placed p
  WHERE t.id = p.task_id
  RETURNING t.id
),
workers_written AS (
  UPDATE workers w SET
    used_cpu_cores = w.used_cpu_cores + s.cpu,
    used_memory_mb = w.used_memory_mb + s.memory,
    used_disk_gb = w.used_disk_gb + s.disk,
    vm_count = w.vm_count + s.vms,
    updated_at = now()
  FROM (
    SELECT worker_id, sum(vcpus) AS cpu, sum(memory_mb) AS memory, sum(disk_gb) AS disk, count(*) AS vms
    FROM placed GROUP BY worker_id
  ) s
  WHERE w.id = s.worker_id
  RETURNING w.id
),
vms_written AS (
  UPDATE vms v SET worker_id = p.worker_id, driver = p.driver, reserved = true, updated_at = now(),
    phases = CASE WHEN $6::text IS NULL THEN v.phases ELSE v.phases || jsonb_build_object('placed', $6::text) END
  FROM placed p
  WHERE v.id = p.vm_id
  RETURNING v.id
)
SELECT i.ord::int AS ord,
       CASE WHEN p.ord IS NOT NULL THEN 'placed'
            WHEN r.ord IS NULL THEN 'task_not_pending'
            ELSE 'insufficient_capacity' END AS outcome,
       (SELECT count(*) FROM placed)::int AS placed_count,
       (SELECT count(*) FROM tasks_written)::int AS tasks_count,
       (SELECT count(*) FROM vms_written)::int AS vms_count,
       (SELECT count(*) FROM workers_written)::int AS workers_count,
       (SELECT count(DISTINCT worker_id) FROM placed)::int AS placed_workers
FROM input i
LEFT JOIN ready r ON r.ord = i.ord
LEFT JOIN placed p ON p.ord = i.ord
ORDER BY i.ord`;

/**
 * Locks the rows a batch may change, in one statement: UNION ALL runs its branches one after the
 * other, so all its pending tasks are locked first, then its workers, then its live unreserved
 * VMs, each table in id order. Answers what it locked.
 */
const LOCK_ROWS = `
WITH t AS MATERIALIZED (
  SELECT id FROM tasks WHERE id = ANY($1::uuid[]) AND status = 'pending' ORDER BY id FOR NO KEY UPDATE
), w AS MATERIALIZED (
  SELECT id FROM workers WHERE id = ANY($2::text[]) ORDER BY id FOR NO KEY UPDATE
), v AS MATERIALIZED (
  SELECT id FROM vms WHERE id = ANY($3::uuid[]) AND deleted_at IS NULL AND NOT reserved ORDER BY id FOR NO KEY UPDATE
)
SELECT 'task' AS kind, id::text AS id FROM t
UNION ALL SELECT 'worker', id FROM w
UNION ALL SELECT 'vm', id::text FROM v`;

type Entry = { entry: BatchPlacement; index: number };

export async function placeTasks(
  client: SqlClient,
  batch: readonly BatchPlacement[],
  placedAt?: Date,
): Promise<PlacementOutcome[]> {
  const outcomes: PlacementOutcome[] = batch.map(() => 'task_not_pending');
  // Ids that are not UUIDs name no task or VM (placeTask answers the same), and the casts need
  // UUIDs. A task or VM named again later in the batch is left out: only its first entry counts.
  const tasks = new Set<string>();
  const vms = new Set<string>();
  const entries: Entry[] = [];
  batch.forEach((entry, index) => {
    if (!isUuid(entry.task_id) || !isUuid(entry.vm_id) || tasks.has(entry.task_id) || vms.has(entry.vm_id)) return;
    tasks.add(entry.task_id);
    vms.add(entry.vm_id);
    entries.push({ entry, index });
  });
  if (entries.length === 0) return outcomes;
  await client.transaction(async (tx) => {
    const locks = await tx.query<Row>(LOCK_ROWS, [
      [...tasks],
      [...new Set(entries.map(({ entry }) => entry.worker_id))],
      [...vms],
    ]);
    const locked = { task: new Set<string>(), worker: new Set<string>(), vm: new Set<string>() };
    for (const row of locks) locked[row.kind as keyof typeof locked].add(String(row.id));
    const sent: Entry[] = [];
    for (const e of entries) {
      // A task not pending, or a VM gone, deleted or reserved already: nothing to place. An unknown
      // worker has no room.
      if (!locked.task.has(e.entry.task_id) || !locked.vm.has(e.entry.vm_id)) continue;
      if (!locked.worker.has(e.entry.worker_id)) outcomes[e.index] = 'insufficient_capacity';
      else sent.push(e);
    }
    if (sent.length === 0) return;
    const rows = await tx.query<Row>(PLACE_BATCH, [
      sent.map(({ entry }) => entry.task_id),
      sent.map(({ entry }) => entry.vm_id),
      sent.map(({ entry }) => entry.worker_id),
      sent.map(({ entry }) => entry.driver),
      sent.map(({ entry }) => jsonParam(entry.placement)),
      placedAt?.toISOString() ?? null,
    ]);
    const counts = rows[0];
    // The statement writes each placed task, VM and worker once; anything else would leak capacity
    // for good, so the whole batch rolls back instead.
    if (
      counts &&
      (counts.tasks_count !== counts.placed_count ||
        counts.vms_count !== counts.placed_count ||
        counts.workers_count !== counts.placed_workers)
    ) {
      throw new Error(
        `placement batch wrote ${counts.tasks_count} tasks, ${counts.vms_count} VMs and ${counts.workers_count} workers` +
          ` for ${counts.placed_count} placements on ${counts.placed_workers} workers`,
      );
    }
    for (const row of rows) {
      const e = sent[Number(row.ord) - 1];
      if (e) outcomes[e.index] = row.outcome as PlacementOutcome;
    }
  });
  return outcomes;
}

/** The VMs of a batch in one query (deleted ones included: the caller cancels their creates). */
export async function getVms(client: SqlExecutor, ids: readonly string[]): Promise<Vm[]> {
  const wanted = [...new Set(ids.filter(isUuid))];
  if (wanted.length === 0) return [];
  const rows = await client.query<Row>(`SELECT ${VM_COLUMNS} FROM vms WHERE id = ANY($1::uuid[])`, [wanted]);
  return rows.map(toVm);
}

/** Per worker, its creates scheduled or running: one grouped count instead of every such task's row. */
export async function countCreatesInFlight(client: SqlExecutor): Promise<Map<string, number>> {
  const rows = await client.query<Row>(
    `SELECT worker_id, count(*)::int AS n FROM tasks
     WHERE status IN ('scheduled', 'running') AND type = 'vm:create' AND worker_id IS NOT NULL
     GROUP BY worker_id`,
  );
  return new Map(rows.map((row) => [String(row.worker_id), Number(row.n)]));
}
