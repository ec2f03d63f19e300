/**
 * The WorkerLink served by the control plane's own code: in-process in `aetherium dev`, and behind
 * each agent-channel session in a cluster (src/server/agent), which carries the same calls over
 * mutual TLS. Every decision lives here,
 * on the control-plane side: whether a failed task is retried (the error's `retryable` and the
 * task's retry budget), where a refused create goes, when a drain is complete. Every call is
 * checked against the worker it names, as the agent channel will check it against a certificate.
 */
import {
  AetheriumError,
  type DrainRequest,
  type ErrorCode,
  type Execution,
  type Task,
  type Vm,
  type WorkerMetricSample,
  type WorkerRegistration,
  type WorkerResources,
  taskErrorText,
} from '../../domain/index.ts';
import type { EventBus } from '../../ports/event-bus.ts';
import type { Logger } from '../../ports/logger.ts';
import type { ServiceRegistry } from '../../ports/service-registry.ts';
import type { Store } from '../../ports/store.ts';
import type { ConsumeOptions, QueueConsumer, TaskProcessor, TaskQueue } from '../../ports/task-queue.ts';
import type {
  Assignments,
  Claim,
  DrainProgress,
  HeartbeatAck,
  OutcomeAck,
  TaskOutcome,
  VmReport,
  WorkerLink,
} from '../../ports/worker-link.ts';
import type { Ledger } from '../ledger/ledger.ts';
import type { WorkerLedger } from '../ledger/worker-ledger.ts';
import { toExecutionRow } from '../stored-output.ts';
import { beginDrain } from '../operations/drain.ts';

export interface DirectWorkerLinkDeps {
  ledger: Ledger;
  workers: WorkerLedger;
  queue: TaskQueue;
  registry: ServiceRegistry;
  log: Logger;
}

/** Backoff between attempts of a retried task: 0.5 s, 1 s, 2 s, … up to 30 s. */
export function retryDelayMs(retryCount: number): number {
  return Math.min(30_000, 500 * 2 ** retryCount);
}

export class DirectWorkerLink implements WorkerLink {
  readonly kind = 'direct';
  private readonly store: Store;
  private readonly events: EventBus;
  /** The status last written to an external registry per worker, so drains show there too. */
  private readonly registryStatus = new Map<string, string>();
  /**
   * Tasks being processed per worker (`worker\0task` → deliveries in hand): a worker may claim
   * and report a task delivered to it even after it moved to another worker (it then learns it is
   * stale), but never one it was not given.
   */
  private readonly inHand = new Map<string, number>();
  /** Tasks a worker claimed and has not finished reporting: it may report them after they moved. */
  private readonly claimed = new Set<string>();
  /**
   * Workers that registered again while the record called them offline (an agent channel that
   * reconnected after a partition re-registers first): their next heartbeat here says
   * `was_offline`, so that they reconcile, as one that had only heartbeated would.
   */
  private readonly cameBack = new Set<string>();
  private readonly cancelListeners = new Map<string, Set<(taskId: string, reason: string) => void>>();
  private cancelSubscription: (() => void) | null = null;

  constructor(private readonly deps: DirectWorkerLinkDeps) {
    this.store = deps.ledger.store;
    this.events = deps.ledger.events;
  }

  private get external(): ServiceRegistry | null {
    return this.deps.registry.kind === 'builtin' ? null : this.deps.registry;
  }

  async register(registration: WorkerRegistration, options: { resume?: boolean } = {}): Promise<{ created: boolean }> {
    const before = await this.store.getWorker(registration.id);
    const { worker, created } = await this.store.upsertWorker(registration, new Date());
    // A restart reconciles by itself; a resumed channel learns it from its next heartbeat.
    if (before?.status === 'offline' && options.resume) this.cameBack.add(worker.id);
    await this.external?.register(registration);
    this.registryStatus.delete(worker.id);
    // Joins and leaves are announced from the registry's watch, exactly once; a restart is news too.
    if (!created && !options.resume) await this.deps.workers.restarted(worker);
    // The worker's queue may have lost its messages with it (an embedded queue): send them again.
    for (const task of await this.store.listTasks({ worker_id: worker.id, status: 'scheduled' })) {
      await this.deps.queue.enqueue(worker.id, { id: task.id, type: task.type, attempt: task.retry_count });
    }
    return { created };
  }

  async heartbeat(workerId: string): Promise<HeartbeatAck | null> {
    const worker = await this.store.touchWorker(workerId, new Date());
    if (!worker) return null;
    const external = this.external;
    if (external) {
      await external.heartbeat(workerId);
      if (this.registryStatus.get(workerId) !== worker.status) {
        await external.updateStatus(workerId, worker.status);
        this.registryStatus.set(workerId, worker.status);
      }
    }
    const cameBack = this.cameBack.delete(workerId);
    return { status: worker.status, was_offline: worker.was_offline || cameBack };
  }

  async deregister(workerId: string): Promise<void> {
    await this.store.setWorkerStatus(workerId, 'offline');
    await this.external?.deregister(workerId);
    await this.deps.workers.left(workerId, 'deregistered', null);
  }

  async reportResources(workerId: string, resources: WorkerResources): Promise<void> {
    const worker = await this.store.updateWorkerResources(workerId, resources);
    await this.external?.updateResources(workerId, resources);
    if (worker) await this.deps.workers.resources(worker);
  }

  recordMetrics(sample: WorkerMetricSample): Promise<void> {
    return this.store.recordWorkerMetrics(sample);
  }

  consume(workerId: string, processor: TaskProcessor, options: ConsumeOptions): QueueConsumer {
    return this.deps.queue.consume(
      workerId,
      async (task, signal) => {
        const key = `${workerId}\0${task.id}`;
        this.inHand.set(key, (this.inHand.get(key) ?? 0) + 1);
        try {
          await processor(task, signal);
        } finally {
          const left = (this.inHand.get(key) ?? 1) - 1;
          if (left > 0) this.inHand.set(key, left);
          else this.inHand.delete(key);
        }
      },
      options,
    );
  }

  /** Node restriction: a task queued for another worker, and not in this one's hands, is refused. */
  private checkTask(workerId: string, task: Task | null): void {
    const key = `${workerId}\0${task?.id}`;
    if (!task || task.worker_id === workerId || this.inHand.has(key) || this.claimed.has(key)) return;
    throw new AetheriumError('forbidden', `task ${task.id} is not queued for worker ${workerId}`);
  }

  async assignments(workerId: string): Promise<Assignments> {
    const [vms, running, scheduled] = await Promise.all([
      this.store.listVms({ worker_id: workerId }),
      this.store.listTasks({ worker_id: workerId, status: 'running' }),
      this.store.listTasks({ worker_id: workerId, status: 'scheduled' }),
    ]);
    return { vms, running, scheduled };
  }

  async claimTask(workerId: string, taskId: string, resume: boolean): Promise<Claim | null> {
    const { ledger } = this.deps;
    const task = await this.store.getTask(taskId);
    this.checkTask(workerId, task);
    if (!task || task.worker_id !== workerId || task.status === 'completed' || task.status === 'failed') return null;
    if (task.status === 'cancelled' || task.status === 'pending') return null;
    const vm = task.vm_id ? await this.store.getVm(task.vm_id) : null;
    // Cancelled while the worker was away: it gets the task only to clean up and report it.
    if (resume && task.cancel_requested_at) return { task, vm };
    if (resume && task.type === 'vm:execute') {
      // A command has side effects the worker cannot see: one that was cut short never runs again.
      await ledger.fail(task, 'the worker restarted while the command ran; it was not run again');
      return null;
    }
    if (!resume && task.type === 'vm:create' && (await this.store.getWorker(workerId))?.status === 'draining') {
      // A draining worker takes no new VM: the scheduler puts it elsewhere.
      await ledger.unplace(task, `worker ${workerId} is draining`);
      return null;
    }
    const started = await ledger.start(task, resume);
    if (started) this.claimed.add(`${workerId}\0${task.id}`);
    return started ? { task: started, vm } : null;
  }

  async reportOutcome(workerId: string, taskId: string, outcome: TaskOutcome): Promise<OutcomeAck> {
    const ack = await this.outcome(workerId, taskId, outcome);
    if (ack !== 'retrying') this.claimed.delete(`${workerId}\0${taskId}`);
    return ack;
  }

  private async outcome(workerId: string, taskId: string, outcome: TaskOutcome): Promise<OutcomeAck> {
    const task = await this.store.getTask(taskId);
    this.checkTask(workerId, task);
    if (!task || task.worker_id !== workerId) return 'stale';
    switch (outcome.kind) {
      case 'completed':
        return (await this.deps.ledger.complete(task, outcome.result)) ? 'final' : 'stale';
      case 'failed':
        return this.failed(workerId, task, outcome.error, outcome.retryable, outcome.code);
      case 'cancelled': {
        const done = await this.deps.ledger.cancelled(task, outcome.reason);
        if (done?.type === 'vm:create')
          await this.deps.ledger.forgetVm(done.vm_id, `creation cancelled: ${outcome.reason}`);
        return done ? 'final' : 'stale';
      }
      case 'refused':
        if (task.type !== 'vm:create') return this.failed(workerId, task, outcome.reason, false);
        this.deps.log.warn(
          { task_id: task.id, worker_id: workerId, reason: outcome.reason },
          'a worker refused a create',
        );
        return (await this.deps.ledger.unplace(task, `worker ${workerId} refused: ${outcome.reason}`, true))
          ? 'final'
          : 'stale';
      case 'interrupted':
        return (await this.deps.ledger.interrupted(task)) ? 'retrying' : 'stale';
    }
  }

  /** Retry while the error allows it and the budget lasts; otherwise the task, and a create's VM, fail. */
  private async failed(
    workerId: string,
    task: Task,
    message: string,
    retryable: boolean,
    code?: ErrorCode,
  ): Promise<OutcomeAck> {
    const { ledger, queue, log } = this.deps;
    // The task's error keeps the code (`conflict: …`), so the API answers for it with its status.
    const error = taskErrorText(code, message);
    if (retryable && task.retry_count < task.max_retries) {
      const delayMs = retryDelayMs(task.retry_count);
      const again = await ledger.retry(task, error, delayMs);
      if (!again) return 'stale';
      log.warn(
        { task_id: task.id, type: task.type, attempt: again.retry_count, delay_ms: delayMs, err: error },
        'task failed; retrying',
      );
      // A delayed message; should it be lost, the redelivery pass sends stale scheduled tasks again.
      await queue.enqueue(workerId, { id: task.id, type: task.type, attempt: again.retry_count }, { delayMs });
      return 'retrying';
    }
    if (task.type === 'vm:create' && task.vm_id) {
      const vm = await this.store.getVm(task.vm_id);
      if (vm) await ledger.vmFailed(vm, message);
    }
    return (await ledger.fail(task, error)) ? 'final' : 'stale';
  }

  async reportVm(workerId: string, vmId: string, report: VmReport): Promise<Vm | null> {
    const { ledger } = this.deps;
    const vm = await this.store.getVm(vmId);
    if (!vm) return null;
    if (vm.worker_id !== workerId) {
      throw new AetheriumError('forbidden', `VM ${vm.name} is not held by worker ${workerId}`);
    }
    switch (report.kind) {
      case 'status':
        return ledger.vmStatus(vm, report.to, {
          ...(report.from ? { from: report.from } : {}),
          ...(report.error === undefined ? {} : { error: report.error }),
        });
      case 'booted':
        return ledger.vmBooted(vm, report.phases);
      case 'deleted':
        return ledger.vmDeleted(vm, report.reason);
      case 'lost':
        return ledger.vmLost(vm, report.error);
      case 'died':
        return ledger.vmDied(vm, report.reason);
    }
  }

  async recordExecution(workerId: string, execution: Execution): Promise<void> {
    const vm = await this.store.getVm(execution.vm_id);
    if (vm && vm.worker_id !== workerId)
      throw new AetheriumError('forbidden', `VM ${vm.name} is not held by worker ${workerId}`);
    await this.store.insertExecution(toExecutionRow(execution));
  }

  async requestDrain(workerId: string, request: DrainRequest): Promise<DrainProgress> {
    const { ledger, workers, queue, log } = this.deps;
    return progressOf(await beginDrain({ ledger, workers, queue, log }, workerId, request));
  }

  async drainProgress(workerId: string): Promise<DrainProgress | null> {
    const worker = await this.store.getWorker(workerId);
    return worker ? progressOf(worker) : null;
  }

  /**
   * One bus subscription for every worker connected here, each cancel handed to its worker's
   * listeners by id: with 10,000 agent sessions on a replica, an event costs one map lookup, not
   * 10,000 listener calls.
   */
  onCancel(workerId: string, listener: (taskId: string, reason: string) => void): () => void {
    this.cancelSubscription ??= this.events.subscribe((event) => {
      if (event.type !== 'task.cancel_requested' || !event.data.worker_id) return;
      for (const l of this.cancelListeners.get(event.data.worker_id) ?? []) l(event.data.task_id, event.data.reason);
    });
    const listeners = this.cancelListeners.get(workerId) ?? new Set();
    listeners.add(listener);
    this.cancelListeners.set(workerId, listeners);
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0 && this.cancelListeners.get(workerId) === listeners)
        this.cancelListeners.delete(workerId);
    };
  }
}

function progressOf(worker: { status: DrainProgress['status']; drain: DrainProgress['drain']; vm_count: number }) {
  return { status: worker.status, drain: worker.drain, vm_count: worker.vm_count };
}
