/**
 * Cancelling a task, from any replica, whichever worker runs it:
 * - pending or scheduled: the row goes to `cancelled` (compare-and-set), its queue message is
 *   removed, and a create's reservation is returned; it never runs;
 * - running: the row is flagged and `task.cancel_requested` goes out on the bus; the worker holding
 *   the task aborts it through its AbortSignal, tears down what it started, and records `cancelled`;
 * - cancelled already: nothing to do; completed or failed: a conflict.
 * A cancelled task is never retried.
 */
import { CANCELLED_BY_REQUEST, conflict, notFound, type Task } from '../../domain/index.ts';
import type { TaskQueue } from '../../ports/task-queue.ts';
import type { Ledger } from '../ledger/ledger.ts';

export { CANCELLED_BY_REQUEST };

export interface CancelOutcome {
  task: Task;
  /** 'cancelled': done now; 'requested': the worker will abort it; 'already': it was cancelled before. */
  outcome: 'cancelled' | 'requested' | 'already';
}

export async function cancelTask(
  deps: { ledger: Ledger; queue: TaskQueue },
  taskId: string,
  reason = CANCELLED_BY_REQUEST,
): Promise<CancelOutcome> {
  const { ledger, queue } = deps;
  for (let attempt = 0; attempt < 3; attempt++) {
    const task = await ledger.store.getTask(taskId);
    if (!task) throw notFound('task', taskId);
    if (task.status === 'cancelled') return { task, outcome: 'already' };
    if (task.status === 'completed' || task.status === 'failed') {
      throw conflict(
        `task ${taskId} already ${task.status}; only pending, scheduled or running tasks can be cancelled`,
      );
    }
    if (task.status === 'running') {
      const flagged = await ledger.requestCancel(task, reason);
      if (!flagged) continue; // it finished meanwhile: look again
      return { task: flagged, outcome: 'requested' };
    }
    const cancelled = await ledger.cancelWaiting(task, reason);
    if (!cancelled) continue; // a worker took it meanwhile: cancel it as a running task
    // Best effort: a message left behind finds a final task, and the worker's claim drops it.
    if (task.worker_id) await queue.remove(task.worker_id, taskId).catch(() => false);
    if (cancelled.type === 'vm:create') await ledger.forgetVm(cancelled.vm_id, `creation cancelled: ${reason}`);
    return { task: cancelled, outcome: 'cancelled' };
  }
  throw conflict(`task ${taskId} kept changing state; try again`);
}
