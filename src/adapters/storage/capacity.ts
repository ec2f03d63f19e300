/**
 * Capacity accounting: reserving a VM's requirements on a worker when its task is placed, and giving
 * them back exactly once. `vms.reserved` is true exactly while the VM's requirements are counted in
 * its worker's `used_*` and `vm_count`.
 */
import { conflict, isUuid, notFound, type PlacementRecord, type Task, type Vm } from '../../domain/index.ts';
import type { PlacementOutcome } from '../../ports/store.ts';
import { FOREIGN_KEY_VIOLATION, isSqlError, type SqlClient, type SqlExecutor } from './sql-client.ts';
import { jsonParam, type Row } from './sql-values.ts';
import { insertTask, TASK_COLUMNS, toTask } from './task-rows.ts';
import { toVm, VM_COLUMNS } from './vm-rows.ts';

/** Thrown inside a transaction to roll it back and report an outcome instead of an error. */
class Rollback<T extends string = PlacementOutcome> {
  constructor(readonly outcome: T) {}
}

/**
 * In one transaction: (1) the task goes pending → scheduled on the worker, (2) the VM's requirements,
 * read from the VM row itself (the one place they live), are added to the worker's usage by one
 * conditional UPDATE that only matches an active, eligible worker on which they still fit, (3) the VM
 * gets its worker and driver and is marked reserved. Any step that matches nothing rolls the whole
 * transaction back.
 */
export async function placeTask(
  client: SqlClient,
  taskId: string,
  vmId: string,
  workerId: string,
  driver: string,
  placement: PlacementRecord,
): Promise<PlacementOutcome> {
  if (!isUuid(taskId)) return 'task_not_pending';
  if (!isUuid(vmId)) throw notFound('VM', vmId);
  try {
    return await client.transaction(async (tx) => {
      const tasks = await tx
        .query(
          `UPDATE tasks SET status = 'scheduled', worker_id = $2, placement = $3::jsonb, updated_at = now()
           WHERE id = $1 AND status = 'pending' RETURNING id`,
          [taskId, workerId, jsonParam(placement)],
        )
        .catch((err: unknown) => {
          // No such worker: the task's foreign key refuses it. That worker has no capacity at all.
          if (isSqlError(err, FOREIGN_KEY_VIOLATION) && err.constraint === 'tasks_worker_id_fkey') {
            throw new Rollback('insufficient_capacity');
          }
          throw err;
        });
      if (tasks.length === 0) throw new Rollback('task_not_pending');

      const workers = await tx.query(
        `UPDATE workers w SET
           used_cpu_cores = w.used_cpu_cores + v.vcpus,
           used_memory_mb = w.used_memory_mb + v.memory_mb,
           used_disk_gb = w.used_disk_gb + v.disk_gb,
           vm_count = w.vm_count + 1,
           updated_at = now()
         FROM vms v
         WHERE w.id = $1 AND v.id = $2 AND w.status = 'active' AND w.eligible
           AND w.used_cpu_cores + v.vcpus <= w.cpu_cores
           AND w.used_memory_mb + v.memory_mb <= w.memory_mb
           AND w.used_disk_gb + v.disk_gb <= w.disk_gb
           AND w.vm_count < w.max_vms
         RETURNING w.id`,
        [workerId, vmId],
      );
      if (workers.length === 0) {
        const vm = await tx.query<Row>('SELECT id FROM vms WHERE id = $1', [vmId]);
        if (!vm[0]) throw notFound('VM', vmId);
        throw new Rollback('insufficient_capacity');
      }

      const vms = await tx.query<Row>(
        `UPDATE vms SET worker_id = $2, driver = $3, reserved = true, updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL AND NOT reserved RETURNING id`,
        [vmId, workerId, driver],
      );
      if (vms.length === 0) {
        const existing = await tx.query<Row>('SELECT reserved FROM vms WHERE id = $1 AND deleted_at IS NULL', [vmId]);
        // Reserving twice would leak capacity for good: releaseVm gives back only one reservation.
        if (existing[0]) throw conflict(`VM ${vmId} already holds a reservation`, { vm_id: vmId });
        throw notFound('VM', vmId);
      }
      return 'placed' as const;
    });
  } catch (err) {
    if (err instanceof Rollback) return (err as Rollback).outcome;
    throw err;
  }
}

/** Within a transaction: clears the VM's reservation and subtracts it from its worker (never below 0). */
async function release(tx: SqlExecutor, vmId: string): Promise<boolean> {
  const rows = await tx.query<Row>(
    `UPDATE vms SET reserved = false, updated_at = now() WHERE id = $1 AND reserved
     RETURNING worker_id, vcpus, memory_mb, disk_gb`,
    [vmId],
  );
  const vm = rows[0];
  if (!vm) return false;
  if (vm.worker_id !== null && vm.worker_id !== undefined) {
    await tx.query(
      `UPDATE workers SET
         used_cpu_cores = GREATEST(used_cpu_cores - $2, 0),
         used_memory_mb = GREATEST(used_memory_mb - $3, 0),
         used_disk_gb = GREATEST(used_disk_gb - $4, 0),
         vm_count = GREATEST(vm_count - 1, 0),
         updated_at = now()
       WHERE id = $1`,
      [vm.worker_id, vm.vcpus, vm.memory_mb, vm.disk_gb],
    );
  }
  return true;
}

export async function releaseVm(client: SqlClient, vmId: string): Promise<boolean> {
  if (!isUuid(vmId)) return false;
  return client.transaction((tx) => release(tx, vmId));
}

/**
 * A `vm:create` task goes back to pending, its VM's reservation is released and the VM loses its
 * worker and driver, so it is placed afresh. Its placement record keeps the trail: the worker joins
 * `moved_from`, and with `refused` also `excluded`, which the scheduler never picks again. A create
 * can go back while it waits in its worker's queue (scheduled: not started, or waiting for a retry
 * after a failed attempt cleaned up after itself), or when its worker refuses it while holding it
 * (`refused`: running, before any VM was made). Returns the task as it is now, or null.
 */
export async function unplaceTask(
  client: SqlClient,
  taskId: string,
  reason: string,
  refused = false,
): Promise<Task | null> {
  if (!isUuid(taskId)) return null;
  return client.transaction(async (tx) => {
    const rows = await tx.query<Row>(
      `UPDATE tasks SET status = 'pending', worker_id = NULL, started_at = NULL,
              placement = COALESCE(placement, '{}'::jsonb) || jsonb_build_object(
                'reason', $2::text,
                'chosen', NULL,
                'placed_at', NULL,
                'moved_from', COALESCE(placement->'moved_from', '[]'::jsonb) || to_jsonb(worker_id),
                'excluded', COALESCE(placement->'excluded', '[]'::jsonb)
                            || CASE WHEN $3::boolean THEN to_jsonb(ARRAY[worker_id]) ELSE '[]'::jsonb END),
              updated_at = now()
       WHERE id = $1 AND type = 'vm:create' AND worker_id IS NOT NULL
         AND (status = 'scheduled' OR ($3::boolean AND status = 'running'))
       RETURNING ${TASK_COLUMNS}`,
      [taskId, reason, refused],
    );
    const row = rows[0];
    if (!row) return null;
    const task = toTask(row);
    if (task.vm_id) {
      await release(tx, task.vm_id);
      await tx.query(
        `UPDATE vms SET worker_id = NULL, driver = NULL, status = 'created', updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL`,
        [task.vm_id],
      );
    }
    return task;
  });
}

/**
 * Deletes a VM that no worker holds, in one transaction with the placement it might race: its
 * pending creates are cancelled first (tasks before VMs, the row order of `placeTask` and of the
 * batches' `placeTasks`, so they wait for each other instead of deadlocking), then the VM is marked
 * deleted only if it is still unplaced. If a placement got there first, nothing changes and the
 * caller deletes it on its worker instead.
 */
export async function deleteUnplacedVm(
  client: SqlClient,
  vmId: string,
  deleteTask: Task,
  reason: string,
): Promise<{ outcome: 'deleted'; vm: Vm; cancelled: Task[] } | { outcome: 'placed' | 'not_found' }> {
  if (!isUuid(vmId)) return { outcome: 'not_found' };
  try {
    return await client.transaction(async (tx) => {
      const cancelled = await tx.query<Row>(
        `UPDATE tasks SET status = 'cancelled', error = $2, completed_at = now(), updated_at = now()
         WHERE vm_id = $1 AND type = 'vm:create' AND status = 'pending' RETURNING ${TASK_COLUMNS}`,
        [vmId, reason],
      );
      const vms = await tx.query<Row>(
        `UPDATE vms SET status = 'stopped', deleted_at = now(), updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL AND worker_id IS NULL AND NOT reserved RETURNING ${VM_COLUMNS}`,
        [vmId],
      );
      const vm = vms[0];
      if (!vm) {
        const live = await tx.query<Row>('SELECT id FROM vms WHERE id = $1 AND deleted_at IS NULL', [vmId]);
        throw new Rollback<'placed' | 'not_found'>(live[0] ? 'placed' : 'not_found');
      }
      await insertTask(tx, deleteTask);
      return { outcome: 'deleted' as const, vm: toVm(vm), cancelled: cancelled.map(toTask) };
    });
  } catch (err) {
    if (err instanceof Rollback) return { outcome: (err as Rollback<'placed' | 'not_found'>).outcome };
    throw err;
  }
}
