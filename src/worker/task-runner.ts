/**
 * Runs one queued task on this worker. The worker claims it from the control plane (a
 * compare-and-set there), runs its handler, and reports what came of it; the control plane decides
 * what follows (a retry, a failure, a new placement). A duplicate delivery, a retry or a resume
 * after a crash does the work at most once:
 *
 *   scheduled ──claim──► running ──report──► completed | failed | cancelled
 *       ▲                   └──report──► scheduled (a retryable error, while retries last; or the
 *       │                                           agent shutting down: sent again as it was)
 *       └── pending (a create handed back: this worker is draining, or its host refused the VM)
 *
 * Each task in hand has its own AbortController: a cancel (from any replica, through the link or
 * the row's cancel flag) aborts it, the handler tears down what it started, and the task ends
 * `cancelled`, never retried.
 */
import { parseTraceparent, taskLogFields, withLogContext } from '../observability/trace-context.ts';
import { idOnlyTracing, type Tracing } from '../observability/tracing.ts';
import {
  AetheriumError,
  CANCELLED_BY_REQUEST,
  errorMessage,
  isRetryable,
  retryTransient,
  type Task,
  type Vm,
} from '../domain/index.ts';
import type { QueuedTask } from '../ports/task-queue.ts';
import type { Claim, TaskOutcome } from '../ports/worker-link.ts';
import type { WorkerContext } from './context.ts';
import { createVm } from './handlers/create-vm.ts';
import { deleteVm } from './handlers/delete-vm.ts';
import { executeInVm } from './handlers/execute.ts';
import { startVm, stopVm } from './handlers/power-vm.ts';

class CancelRequested extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

/** The handler of each task type; the union narrows the payload and the result for each. */
function runHandler(
  ctx: WorkerContext,
  task: Task,
  vm: Vm | null,
  signal: AbortSignal,
): Promise<NonNullable<Task['result']>> {
  switch (task.type) {
    case 'vm:create':
      return createVm(ctx, task, vm, signal);
    case 'vm:delete':
      return deleteVm(ctx, task, vm);
    case 'vm:execute':
      return executeInVm(ctx, task, vm, signal);
    case 'vm:start':
      return startVm(ctx, task, vm);
    case 'vm:stop':
      return stopVm(ctx, task, vm);
  }
}

export class TaskRunner {
  private readonly inHand = new Map<string, AbortController>();
  private processed = 0;

  constructor(
    private readonly ctx: WorkerContext,
    private readonly onRan: (type: string, outcome: string, seconds: number) => void = () => {},
    private readonly tracing: Tracing = idOnlyTracing,
  ) {}

  get tasksProcessed(): number {
    return this.processed;
  }

  /** Tasks in hand now. */
  get inFlight(): number {
    return this.inHand.size;
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
  async run(queued: QueuedTask, shutdown: AbortSignal, resume = false): Promise<void> {
    if (this.inHand.has(queued.id)) return;
    const controller = new AbortController();
    this.inHand.set(queued.id, controller);
    try {
      await this.runOnce(queued, shutdown, controller, resume);
    } finally {
      this.inHand.delete(queued.id);
    }
  }

  private async runOnce(
    queued: QueuedTask,
    shutdown: AbortSignal,
    own: AbortController,
    resume: boolean,
  ): Promise<void> {
    const { link, workerId } = this.ctx;
    const claim = await link.claimTask(workerId, queued.id, resume);
    if (!claim) return;
    // Every line written while it runs (this runner's, the handler's, the driver's) names the task
    // and the API request that made it; its span joins that request's trace.
    const { task } = claim;
    const span = this.tracing.start(`task ${task.type}`, 'internal', parseTraceparent(task.trace?.traceparent), {
      'aetherium.task_id': task.id,
      'aetherium.task_type': task.type,
      'aetherium.worker_id': workerId,
    });
    const outcome = await withLogContext(taskLogFields(task), () => this.work(claim, shutdown, own, resume));
    span.end({ 'aetherium.outcome': outcome.kind }, outcome.kind === 'failed' ? outcome.error : null);
  }

  private async work(claim: Claim, shutdown: AbortSignal, own: AbortController, resume: boolean): Promise<TaskOutcome> {
    const { link, workerId } = this.ctx;
    const { task, vm } = claim;
    const started = Date.now();
    let outcome: TaskOutcome;
    if (resume && task.cancel_requested_at) {
      await this.tearDown(task, vm);
      outcome = { kind: 'cancelled', reason: CANCELLED_BY_REQUEST };
    } else {
      try {
        const result = await runHandler(this.ctx, task, vm, AbortSignal.any([shutdown, own.signal]));
        outcome = { kind: 'completed', result };
      } catch (err) {
        outcome = await this.outcomeOf(task, vm, err, own.signal, shutdown);
      }
    }
    // The work is done: reporting it must outlast a database restart, or the task would be stuck.
    const ack = await retryTransient(() => link.reportOutcome(workerId, task.id, outcome));
    if (ack === 'final') this.processed++;
    this.onRan(task.type, outcome.kind, (Date.now() - started) / 1000);
    // One line per task: what `aetherium workers logs` shows of the work a worker does.
    this.ctx.log.info(
      {
        task_id: task.id,
        type: task.type,
        vm_id: task.vm_id,
        outcome: outcome.kind,
        ack,
        duration_ms: Date.now() - started,
      },
      'task finished',
    );
    return outcome;
  }

  private async outcomeOf(
    task: Task,
    vm: Vm | null,
    err: unknown,
    own: AbortSignal,
    shutdown: AbortSignal,
  ): Promise<TaskOutcome> {
    const message = errorMessage(err);
    if (own.aborted && own.reason instanceof CancelRequested) {
      await this.tearDown(task, vm);
      return { kind: 'cancelled', reason: own.reason.reason };
    }
    if (shutdown.aborted) return { kind: 'interrupted' };
    if (err instanceof AetheriumError && err.code === 'worker_refused') {
      this.ctx.log.warn({ task_id: task.id, reason: message }, 'refusing a create: handing it back to the scheduler');
      return { kind: 'refused', reason: message };
    }
    this.ctx.log.warn({ task_id: task.id, type: task.type, err: message }, 'task attempt failed');
    const code = err instanceof AetheriumError ? { code: err.code } : {};
    return { kind: 'failed', error: message, retryable: isRetryable(err), ...code };
  }

  /** A cancelled create leaves no VM on this host. */
  private async tearDown(task: Task, vm: Vm | null): Promise<void> {
    if (task.type !== 'vm:create' || !vm?.driver) return;
    await this.ctx.drivers
      .get(vm.driver)
      ?.delete(vm.id)
      .catch((err) =>
        this.ctx.log.warn({ vm_id: vm.id, err: errorMessage(err) }, 'tearing down a cancelled create failed'),
      );
    this.ctx.vmsChanged();
  }
}
