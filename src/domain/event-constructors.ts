/**
 * The one constructor of each event type. They take the domain objects, so an event of a type has
 * the same shape wherever it is published; nothing else in the code spells an event literal.
 * Used as a namespace: `evt.taskStarted(task)`.
 */
import type { EventData, NewEvent } from './events.ts';
import type { Task, TaskStatus } from './task.ts';
import type { DriverName, Vm, VmStatus } from './vm.ts';
import type { Worker } from './worker.ts';

type WorkerLike = Pick<Worker, 'id' | 'zone' | 'capabilities'> &
  Partial<Pick<Worker, 'hostname' | 'status' | 'eligible'>>;
type TaskLike = Pick<Task, 'id' | 'type' | 'status' | 'vm_id' | 'worker_id' | 'retry_count'>;
type VmLike = Pick<Vm, 'id' | 'name' | 'worker_id'>;

function worker(w: WorkerLike) {
  return {
    worker_id: w.id,
    hostname: w.hostname ?? null,
    zone: w.zone ?? null,
    status: w.status ?? null,
    eligible: w.eligible ?? null,
    capabilities: w.capabilities ?? [],
  };
}

function task(t: TaskLike, status: TaskStatus = t.status) {
  return { task_id: t.id, type: t.type, status, vm_id: t.vm_id, worker_id: t.worker_id, retry_count: t.retry_count };
}

function vm(v: VmLike) {
  return { vm_id: v.id, name: v.name, worker_id: v.worker_id };
}

/** Events carry a result, not a command's whole output: clients fetch that from the task. */
function eventResult(result: NonNullable<Task['result']>): EventData<'task.completed'>['result'] {
  if ('execution_id' in result) {
    const { stdout, stderr, stdout_base64, stderr_base64, ...rest } = result;
    // The size of what the command wrote: its exact bytes when the text is only a preview of them.
    const bytes = (text: string, base64: string | undefined) =>
      base64 === undefined ? Buffer.byteLength(text) : Buffer.byteLength(base64, 'base64');
    return { ...rest, stdout_bytes: bytes(stdout, stdout_base64), stderr_bytes: bytes(stderr, stderr_base64) };
  }
  return result;
}

export const workerJoined = (w: WorkerLike, registry: string): NewEvent => ({
  type: 'worker.joined',
  data: { ...worker(w), registry },
});

export const workerLeft = (workerId: string, reason: string, lastSeen: Date | null): NewEvent => ({
  type: 'worker.left',
  data: { worker_id: workerId, reason, last_seen: lastSeen?.toISOString() ?? null },
});

export const workerUpdated = (w: WorkerLike, change: 'restarted' | 'eligibility'): NewEvent => ({
  type: 'worker.updated',
  data: { ...worker(w), change },
});

export const workerDraining = (
  workerId: string,
  drain: { deadline: Date | null; force: boolean; message: string | null },
): NewEvent => ({
  type: 'worker.draining',
  data: {
    worker_id: workerId,
    deadline: drain.deadline?.toISOString() ?? null,
    force: drain.force,
    message: drain.message,
  },
});

export const workerDrained = (workerId: string, startedAt: Date, drainedAt: Date): NewEvent => ({
  type: 'worker.drained',
  data: { worker_id: workerId, started_at: startedAt.toISOString(), drained_at: drainedAt.toISOString() },
});

export const workerActivated = (workerId: string): NewEvent => ({
  type: 'worker.activated',
  data: { worker_id: workerId },
});

export const workerResources = (
  w: Pick<Worker, 'id' | 'vm_count' | 'used_cpu_cores' | 'used_memory_mb' | 'used_disk_gb'>,
): NewEvent => ({
  type: 'worker.resources',
  data: {
    worker_id: w.id,
    vm_count: w.vm_count,
    used_cpu_cores: w.used_cpu_cores,
    used_memory_mb: w.used_memory_mb,
    used_disk_gb: w.used_disk_gb,
  },
});

export const vmCreated = (v: VmLike & { driver: DriverName | null }): NewEvent => ({
  type: 'vm.created',
  data: { ...vm(v), driver: v.driver },
});

export const vmStateChanged = (v: VmLike, from: VmStatus, to: VmStatus, error: string | null): NewEvent => ({
  type: 'vm.state_changed',
  data: { ...vm(v), from, to, error },
});

export const vmDeleted = (v: VmLike, reason: string): NewEvent => ({
  type: 'vm.deleted',
  data: { ...vm(v), reason },
});

export const taskCreated = (t: TaskLike, vmName: string | null): NewEvent => ({
  type: 'task.created',
  data: { ...task(t), name: vmName },
});

export const taskScheduled = (t: TaskLike, placed: { driver: DriverName; score: number } | null): NewEvent => ({
  type: 'task.scheduled',
  data: { ...task(t), driver: placed?.driver ?? null, score: placed?.score ?? null },
});

export const taskRequeued = (t: TaskLike, fromWorkerId: string, reason: string): NewEvent => ({
  type: 'task.requeued',
  data: { ...task(t, 'pending'), worker_id: null, from_worker_id: fromWorkerId, reason },
});

export const taskStarted = (t: TaskLike): NewEvent => ({ type: 'task.started', data: task(t) });

export const taskRetrying = (t: TaskLike, error: string, delayMs: number): NewEvent => ({
  type: 'task.retrying',
  data: { ...task(t), error, delay_ms: delayMs },
});

export const taskCompleted = (t: TaskLike & Pick<Task, 'result'>): NewEvent => {
  if (!t.result) throw new Error(`task ${t.id} completed without a result`);
  return { type: 'task.completed', data: { ...task(t), result: eventResult(t.result) } };
};

export const taskFailed = (t: TaskLike, error: string): NewEvent => ({
  type: 'task.failed',
  data: { ...task(t), error },
});

export const taskCancelRequested = (t: TaskLike, reason: string): NewEvent => ({
  type: 'task.cancel_requested',
  data: { ...task(t), reason },
});

export const taskCancelled = (t: TaskLike, reason: string): NewEvent => ({
  type: 'task.cancelled',
  data: { ...task(t), reason },
});
