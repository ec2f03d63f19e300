/**
 * Cancelling a task, from any replica, whichever worker runs it:
 * - pending or scheduled: the row goes to `cancelled` (compare-and-set), its queue message is
 *   removed, and a create's reservation is returned; it never runs;
 * - running: the row is flagged and `task.cancel_requested` goes out on the bus; the worker holding
 *   the task aborts it through its AbortSignal, tears down what it started, and records `cancelled`;
 * - cancelled already: nothing to do; completed or failed: a conflict.
 * A cancelled task is never retried.
 */
import { conflict, notFound, type Task } from '../domain/index.ts';
import type { EventBus } from '../ports/event-bus.ts';
import type { Store } from '../ports/store.ts';
import type { TaskQueue } from '../ports/task-queue.ts';

export interface CancelOutcome {
  task: Task;
  /** 'cancelled': done now; 'requested': the worker will abort it; 'already': it was cancelled before. */
  outcome: 'cancelled' | 'requested' | 'already';
}

export const CANCELLED_BY_REQUEST = 'cancelled by request';

export async function cancelTask(deps: { store: Store; events: EventBus; queue: TaskQueue }, taskId: string, reason = CANCELLED_BY_REQUEST): Promise<CancelOutcome> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const task = await deps.store.getTask(taskId);
    if (!task) throw notFound('task', taskId);
    if (task.status === 'cancelled') return { task, outcome: 'already' };
    if (task.status === 'completed' || task.status === 'failed') {
      throw conflict(`task ${taskId} already ${task.status}; only pending, scheduled or running tasks can be cancelled`);
    }
    if (task.status === 'running') {
      const flagged = await deps.store.requestCancel(taskId, new Date());
      if (!flagged) continue; // it finished meanwhile: look again
      await deps.events.publish({ type: 'task.cancel_requested', data: { task_id: taskId, worker_id: task.worker_id, reason } });
      return { task: flagged, outcome: 'requested' };
    }
    const cancelled = await deps.store.updateTask(taskId, { status: 'cancelled', error: reason, completed_at: new Date() }, ['pending', 'scheduled']);
    if (!cancelled) continue; // a worker took it meanwhile: cancel it as a running task
    if (task.worker_id) await deps.queue.remove(task.worker_id, taskId).catch(() => false);
    if (cancelled.type === 'vm:create') await forgetVm(deps, cancelled, reason);
    await deps.events.publish({ type: 'task.cancelled', data: { task_id: taskId, type: cancelled.type, vm_id: cancelled.vm_id, worker_id: cancelled.worker_id, reason } });
    return { task: cancelled, outcome: 'cancelled' };
  }
  throw conflict(`task ${taskId} kept changing state; try again`);
}

/** A create that never ran leaves no VM: its capacity goes back and the record is closed. */
export async function forgetVm(deps: { store: Store; events: EventBus }, task: Task, reason: string): Promise<void> {
  if (!task.vm_id) return;
  await deps.store.releaseVm(task.vm_id);
  const vm = await deps.store.updateVm(task.vm_id, { status: 'failed', error: `creation cancelled: ${reason}`, deleted_at: new Date() });
  if (vm) await deps.events.publish({ type: 'vm.deleted', data: { vm_id: vm.id, name: vm.name, worker_id: vm.worker_id, reason: 'creation cancelled' } });
}
