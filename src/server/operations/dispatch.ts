/** A task for an existing VM goes straight to the queue of the worker that holds the VM. */
import { currentTaskTrace } from '../../observability/trace-context.ts';
import {
  type NewTaskFields,
  newTask,
  type PayloadOf,
  type Task,
  type Vm,
  type VmTaskType,
} from '../../domain/index.ts';
import type { TaskQueue } from '../../ports/task-queue.ts';
import type { Ledger } from '../ledger/ledger.ts';

export interface DispatchDeps {
  ledger: Ledger;
  queue: TaskQueue;
}

/** A VM that a worker holds. */
export type PlacedVm = Vm & { worker_id: string };

export function placedVm(vm: Vm): PlacedVm | null {
  return vm.worker_id ? { ...vm, worker_id: vm.worker_id } : null;
}

/** The task row for a VM's worker, already `scheduled` there. */
export function taskForVm<T extends VmTaskType>(
  vm: PlacedVm,
  type: T,
  payload: PayloadOf<T>,
  fields: NewTaskFields = {},
) {
  const trace = currentTaskTrace();
  return newTask(type, payload, { vm_id: vm.id, worker_id: vm.worker_id, status: 'scheduled', trace, ...fields });
}

/** Writes the task and queues it; with `ifAbsent`, a task whose id exists is not sent again (false). */
export async function dispatchToVmWorker(
  deps: DispatchDeps,
  vm: PlacedVm,
  task: Task,
  ifAbsent = false,
): Promise<boolean> {
  if (!(await deps.ledger.dispatch(task, ifAbsent))) return false;
  // The row is the truth: if the queue is down, the scheduler loop's redelivery sends it later.
  await deps.queue.enqueue(vm.worker_id, { id: task.id, type: task.type }).catch(() => undefined);
  return true;
}
