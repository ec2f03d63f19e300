/**
 * Runs one queued task on this worker. Every transition is a compare-and-set on the task row, so a
 * duplicate delivery, a retry or a resume after a crash does the work at most once:
 *
 *   scheduled ──CAS──► running ──CAS──► completed | failed | cancelled
 *       ▲                 └──CAS──► scheduled (retry: retry_count + 1, sent again after a backoff;
 *       │                                      or the agent shutting down: sent again as it was)
 *       └── pending (a create handed back: this worker is draining, or its host refused the VM)
 *
 * Each task in hand has its own AbortController: a cancel (from any replica, through the event bus
 * or the row's cancel flag) aborts it, the handler tears down what it started, and the task ends
 * `cancelled`, never retried.
 */
import { AetheriumError, errorMessage, isFinal, isTransientEngineError, PermanentTaskError, retryTransient, type Task, type TaskType, WorkerRefusedError } from '../domain/index.ts';
import { CANCELLED_BY_REQUEST, forgetVm } from '../operations/cancel.ts';
import type { QueuedTask, TaskQueue } from '../ports/task-queue.ts';
import type { WorkerContext } from './context.ts';
import { createVm, createVmFailed } from './handlers/create-vm.ts';
import { deleteVm } from './handlers/delete-vm.ts';
import { executeInVm } from './handlers/execute.ts';
import { startVm, stopVm } from './handlers/power-vm.ts';

type Handler = (ctx: WorkerContext, task: Task, signal: AbortSignal) => Promise<Record<string, unknown>>;

const HANDLERS: Record<TaskType, Handler> = {
  'vm:create': createVm,
  'vm:delete': deleteVm,
  'vm:execute': executeInVm,
  'vm:start': startVm,
  'vm:stop': stopVm,
};

/** Commands have side effects the worker cannot see: one that was cut short is never run again. */
const NOT_RESUMABLE: ReadonlySet<TaskType> = new Set(['vm:execute']);

export function retryDelayMs(retryCount: number): number {
  return Math.min(30_000, 500 * 2 ** retryCount);
}

class CancelRequested extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

export class TaskRunner {
  private readonly inHand = new Map<string, AbortController>();
  private processed = 0;

  constructor(
    private readonly ctx: WorkerContext,
    private readonly queue: TaskQueue,
  ) {}

  get tasksProcessed(): number {
    return this.processed;
  }

  /** Whether this process is working on the task right now. */
  has(taskId: string): boolean {
    return this.inHand.has(taskId);
  }

  /** Aborts a task in hand because someone cancelled it; false when it is not here. */
  cancel(taskId: string, reason = CANCELLED_BY_REQUEST): boolean {
    const controller = this.inHand.get(taskId);
    if (!controller || controller.signal.aborted) return false;
    controller.abort(new CancelRequested(reason));
    return true;
  }

  /** The queue's processor. `resume` is set for tasks this worker had running when it died. */
  async run(queued: QueuedTask, signal: AbortSignal, resume = false): Promise<void> {
    if (this.inHand.has(queued.id)) return;
    const controller = new AbortController();
    this.inHand.set(queued.id, controller);
    try {
      await this.runOnce(queued, signal, controller, resume);
    } finally {
      this.inHand.delete(queued.id);
    }
  }

  private async runOnce(queued: QueuedTask, shutdown: AbortSignal, controller: AbortController, resume: boolean): Promise<void> {
    const { store, events, workerId } = this.ctx;
    const found = await store.getTask(queued.id);
    if (!found || found.worker_id !== workerId || isFinal(found.status)) return;

    if (resume && found.cancel_requested_at) {
      await this.finishCancelled(found, CANCELLED_BY_REQUEST);
      return;
    }
    if (resume && NOT_RESUMABLE.has(found.type)) {
      await this.fail(found, 'the worker restarted while the command ran; it was not run again');
      return;
    }
    if (!resume && found.type === 'vm:create' && (await store.getWorker(workerId))?.status === 'draining') {
      // A draining worker takes no new VM: the scheduler puts it elsewhere.
      if (await store.unplaceTask(found.id, `worker ${workerId} is draining`)) {
        await events.publish({ type: 'task.requeued', data: { ...summary(found), from_worker_id: workerId, reason: 'worker draining' } });
      }
      return;
    }
    const task = await store.updateTask(found.id, { status: 'running', started_at: found.started_at ?? new Date() }, resume ? ['running'] : ['scheduled']);
    if (!task) return;
    await events.publish({ type: 'task.started', data: summary(task) });

    const signal = AbortSignal.any([shutdown, controller.signal]);
    try {
      const result = await HANDLERS[task.type](this.ctx, task, signal);
      // The work is done: recording it must outlast a database restart, or the task would be stuck.
      const done = await retryTransient(() => store.updateTask(task.id, { status: 'completed', result, error: null, completed_at: new Date() }, ['running']));
      this.processed++;
      if (done) await events.publish({ type: 'task.completed', data: { ...summary(done), result: trimmed(result) } });
    } catch (err) {
      await this.afterError(task, err, controller.signal, shutdown);
    }
  }

  private async afterError(task: Task, err: unknown, own: AbortSignal, shutdown: AbortSignal): Promise<void> {
    const { store, log, workerId } = this.ctx;
    const message = errorMessage(err);
    if (own.aborted && own.reason instanceof CancelRequested) {
      await this.finishCancelled(task, own.reason.reason);
      return;
    }
    if (shutdown.aborted) {
      // The agent is stopping: the task is put back as it was, for this worker to pick up again.
      await retryTransient(() => store.updateTask(task.id, { status: 'scheduled', started_at: null }, ['running']));
      return;
    }
    if (err instanceof WorkerRefusedError && task.type === 'vm:create') {
      await this.handBack(task, message);
      return;
    }
    const permanent = err instanceof PermanentTaskError || (err instanceof AetheriumError && !isTransientEngineError(err)) || task.type === 'vm:execute';
    if (!permanent && task.retry_count < task.max_retries) {
      const delay = retryDelayMs(task.retry_count);
      log.warn({ task_id: task.id, type: task.type, attempt: task.retry_count + 1, delay_ms: delay, err: message }, 'task failed; retrying');
      const again = await retryTransient(() => store.updateTask(task.id, { status: 'scheduled', retry_count: task.retry_count + 1, error: message }, ['running']));
      // A delayed message; should it be lost, the control plane redelivers stale scheduled tasks.
      if (again) await this.queue.enqueue(workerId, { id: task.id, type: task.type, attempt: again.retry_count }, { delayMs: delay });
      return;
    }
    this.processed++;
    await this.fail(task, message);
  }

  /** Cancelled while running: what the handler started is already torn down; close the records. */
  private async finishCancelled(task: Task, reason: string): Promise<void> {
    const { store, events } = this.ctx;
    const cancelled = await retryTransient(() => store.updateTask(task.id, { status: 'cancelled', error: reason, completed_at: new Date() }, ['running']));
    if (!cancelled) return;
    this.processed++;
    if (task.type === 'vm:create') {
      const vm = task.vm_id ? await store.getVm(task.vm_id) : null;
      if (vm?.driver) await this.ctx.drivers.get(vm.driver)?.delete(vm.id).catch(() => undefined);
      await retryTransient(() => forgetVm(this.ctx, task, reason));
      this.ctx.vmsChanged();
    }
    await events.publish({ type: 'task.cancelled', data: { ...summary(cancelled), reason } });
  }

  /** The host cannot take the VM: back to the scheduler, never to this worker again. */
  private async handBack(task: Task, reason: string): Promise<void> {
    const { store, events, log, workerId } = this.ctx;
    log.warn({ task_id: task.id, reason }, 'refusing a create: handing it back to the scheduler');
    const exclude = [...new Set([...((task.payload.exclude as string[] | undefined) ?? []), workerId])];
    const back = await retryTransient(() => store.updateTask(task.id, { status: 'scheduled', started_at: null, payload: { ...task.payload, exclude } }, ['running']));
    if (back && (await retryTransient(() => store.unplaceTask(task.id, `worker ${workerId} refused: ${reason}`)))) {
      await store.updateVm(task.vm_id!, { status: 'created' });
      await events.publish({ type: 'task.requeued', data: { ...summary(task), from_worker_id: workerId, reason } });
    }
  }

  private async fail(task: Task, message: string): Promise<void> {
    const { store, events, log } = this.ctx;
    log.warn({ task_id: task.id, type: task.type, err: message }, 'task failed');
    if (task.type === 'vm:create') await retryTransient(() => createVmFailed(this.ctx, task, message));
    const failed = await retryTransient(() => store.updateTask(task.id, { status: 'failed', error: message, completed_at: new Date() }, ['running', 'scheduled']));
    if (failed) await events.publish({ type: 'task.failed', data: { ...summary(failed), error: message } });
  }
}

function summary(task: Task): Record<string, unknown> {
  return { task_id: task.id, type: task.type, status: task.status, vm_id: task.vm_id, worker_id: task.worker_id, retry_count: task.retry_count };
}

/** Events carry a result, not a command's whole output: clients fetch that from the task. */
function trimmed(result: Record<string, unknown>): Record<string, unknown> {
  const { stdout, stderr, ...rest } = result;
  return { ...rest, ...(typeof stdout === 'string' ? { stdout_bytes: stdout.length } : {}), ...(typeof stderr === 'string' ? { stderr_bytes: stderr.length } : {}) };
}
