/** A task for an existing VM goes straight to the queue of the worker that holds the VM. */
import { newId, type Task, type TaskType, type Vm } from '../domain/index.ts';
import type { EventBus } from '../ports/event-bus.ts';
import type { Store } from '../ports/store.ts';
import type { TaskQueue } from '../ports/task-queue.ts';

/** Retries per task type: creates and deletes are idempotent and worth retrying; commands are not. */
export const MAX_RETRIES: Record<TaskType, number> = { 'vm:create': 3, 'vm:delete': 5, 'vm:start': 3, 'vm:stop': 3, 'vm:execute': 0 };

export function newTask(type: TaskType, fields: Partial<Task> = {}): Task {
  const now = new Date();
  return {
    id: newId(),
    type,
    status: 'pending',
    vm_id: null,
    worker_id: null,
    payload: {},
    result: null,
    error: null,
    placement: null,
    retry_count: 0,
    max_retries: MAX_RETRIES[type],
    created_at: now,
    updated_at: now,
    started_at: null,
    completed_at: null,
    cancel_requested_at: null,
    ...fields,
  };
}

export async function dispatchToVmWorker(deps: { store: Store; queue: TaskQueue; events: EventBus }, vm: Vm, type: TaskType, payload: Record<string, unknown>, id?: string): Promise<Task> {
  const task = newTask(type, { vm_id: vm.id, worker_id: vm.worker_id, status: 'scheduled', payload, ...(id ? { id } : {}) });
  await deps.store.insertTask(task);
  // The row is the truth: if the queue is down, the scheduler loop redelivers the task later.
  await deps.queue.enqueue(vm.worker_id!, { id: task.id, type }).catch(() => undefined);
  await deps.events.publish({ type: 'task.scheduled', data: { task_id: task.id, type, vm_id: vm.id, worker_id: vm.worker_id } });
  return task;
}
