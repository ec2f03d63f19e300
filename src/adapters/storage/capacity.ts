/**
 * Capacity accounting: reserving a VM's requirements on a worker when its task is placed, and giving
 * them back exactly once. `vms.reserved` is true exactly while the VM's requirements are counted in
 * its worker's `used_*` and `vm_count`.
 */
import { conflict, isUuid, notFound, type VmRequirements } from '../../domain/index.ts';
import type { PlacementOutcome } from '../../ports/store.ts';
import { FOREIGN_KEY_VIOLATION, isSqlError, type SqlClient, type SqlExecutor } from './sql-client.ts';
import { jsonParam, type Row } from './sql-values.ts';

/** Thrown inside a transaction to roll it back and report an outcome instead of an error. */
class Rollback {
  constructor(readonly outcome: PlacementOutcome) {}
}

/**
 * In one transaction: (1) the task goes pending → scheduled on the worker, (2) the requirements are
 * added to the worker's usage by one conditional UPDATE that only matches an active, eligible worker
 * on which they still fit, (3) the VM gets its worker and driver and is marked reserved. Any step
 * that matches nothing rolls the whole transaction back.
 */
export async function placeTask(
  client: SqlClient,
  taskId: string,
  vmId: string,
  workerId: string,
  driver: string,
  need: VmRequirements,
  placement: Record<string, unknown>,
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
          if (isSqlError(err, FOREIGN_KEY_VIOLATION) && err.constraint === 'tasks_worker_id_fkey') throw new Rollback('insufficient_capacity');
          throw err;
        });
      if (tasks.length === 0) throw new Rollback('task_not_pending');

      const workers = await tx.query(
        `UPDATE workers SET
           used_cpu_cores = used_cpu_cores + $2,
           used_memory_mb = used_memory_mb + $3,
           used_disk_gb = used_disk_gb + $4,
           vm_count = vm_count + 1,
           updated_at = now()
         WHERE id = $1 AND status = 'active' AND eligible
           AND used_cpu_cores + $2 <= cpu_cores
           AND used_memory_mb + $3 <= memory_mb
           AND used_disk_gb + $4 <= disk_gb
           AND vm_count < max_vms
         RETURNING id`,
        [workerId, need.vcpus, need.memory_mb, need.disk_gb],
      );
      if (workers.length === 0) throw new Rollback('insufficient_capacity');

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
    if (err instanceof Rollback) return err.outcome;
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
 * A scheduled `vm:create` task that never started goes back to pending (its placement now says why),
 * its VM's reservation is released and the VM loses its worker and driver, so it is placed afresh.
 */
export async function unplaceTask(client: SqlClient, taskId: string, reason: string): Promise<boolean> {
  if (!isUuid(taskId)) return false;
  return client.transaction(async (tx) => {
    const rows = await tx.query<Row>(
      `UPDATE tasks SET status = 'pending', worker_id = NULL,
              placement = jsonb_build_object('unplaced', true, 'reason', $2::text, 'previous_worker_id', worker_id),
              updated_at = now()
       WHERE id = $1 AND status = 'scheduled' AND type = 'vm:create' AND started_at IS NULL
       RETURNING vm_id`,
      [taskId, reason],
    );
    const task = rows[0];
    if (!task) return false;
    if (task.vm_id !== null && task.vm_id !== undefined) {
      const vmId = String(task.vm_id);
      await release(tx, vmId);
      await tx.query('UPDATE vms SET worker_id = NULL, driver = NULL, updated_at = now() WHERE id = $1 AND deleted_at IS NULL', [vmId]);
    }
    return true;
  });
}
