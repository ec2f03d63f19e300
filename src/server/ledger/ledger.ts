/**
 * The ledger: the one owner of task and VM transitions. Each method is one compare-and-set in the
 * store plus the typed event that announces it, so a transition and its event cannot drift apart
 * and a transition that lost its race (another replica, a retry, a late worker) announces nothing.
 * Methods return the row as it is after the transition, or null when the compare-and-set matched
 * nothing. The scheduler loop, the services, the operations, the reaper and the worker link all
 * move tasks and VMs through here.
 */
import {
  evt,
  type CreateTask,
  type PlacementRecord,
  type Placement,
  type Task,
  type TaskStatus,
  type Vm,
  type VmPhases,
  type VmStatus,
} from '../../domain/index.ts';
import type { EventBus } from '../../ports/event-bus.ts';
import type { PlacementOutcome, Store } from '../../ports/store.ts';

/** A placement the scheduler decided, for `placeMany` to commit. */
export interface PlacementDecision {
  task: CreateTask;
  placement: Placement;
  record: PlacementRecord;
}

/**
 * Told of the transitions this replica wrote (never of another replica's): counted here, each is
 * counted once across the cluster, where a count of the events would count it on every replica.
 */
export interface LedgerObserver {
  placed(task: CreateTask, at: Date): void;
  /** The scheduler left a create pending with a new reason. */
  unplaceable(task: CreateTask): void;
  requeued(task: Task): void;
  taskEnded(task: Task): void;
  /** A VM reported running after a create, with its boot phases. */
  vmRunning(vm: Vm): void;
}

export class Ledger {
  constructor(
    readonly store: Store,
    readonly events: EventBus,
    private readonly observer: LedgerObserver | null = null,
  ) {}

  // ── tasks ──────────────────────────────────────────────────────────────────────────────────────

  /**
   * A new VM and its pending create, in one transaction. With `ifAbsent` (ids chosen up front, as an
   * idempotency key records them), a VM whose id exists is left alone: false, and nothing announced.
   */
  async createVm(vm: Vm, task: CreateTask, ifAbsent = false): Promise<boolean> {
    const inserted = await this.store.insertVmWithTask(vm, task, ifAbsent);
    if (inserted) await this.events.publish(evt.taskCreated(task, vm.name));
    return inserted;
  }

  /** Commits a placement: the task is scheduled and the VM's capacity reserved, or nothing happens. */
  async place(task: CreateTask, placement: Placement, record: PlacementRecord): Promise<PlacementOutcome> {
    const vmId = task.vm_id;
    if (!vmId) return 'task_not_pending';
    const outcome = await this.store.placeTask(task.id, vmId, placement.worker_id, placement.driver, record);
    if (outcome === 'placed') {
      const at = new Date();
      const scheduled = { ...task, status: 'scheduled' as const, worker_id: placement.worker_id };
      await this.store.recordVmPhases(vmId, { placed: at });
      await this.events.publish(evt.taskScheduled(scheduled, placement));
      this.observer?.placed(task, at);
    }
    return outcome;
  }

  /**
   * `place` for a batch: one transaction commits them all (those that fit; see `Store.placeTasks`),
   * the placed VMs get their `placed` phase in it, and each placed task is announced. One outcome per
   * decision, in order.
   */
  async placeMany(decisions: readonly PlacementDecision[]): Promise<PlacementOutcome[]> {
    const outcomes: PlacementOutcome[] = decisions.map(() => 'task_not_pending');
    const sent = decisions.flatMap((d, index) => (d.task.vm_id ? [{ ...d, vmId: d.task.vm_id, index }] : []));
    if (sent.length === 0) return outcomes;
    const at = new Date();
    const answers = await this.store.placeTasks(
      sent.map((d) => ({
        task_id: d.task.id,
        vm_id: d.vmId,
        worker_id: d.placement.worker_id,
        driver: d.placement.driver,
        placement: d.record,
      })),
      at,
    );
    for (const [i, d] of sent.entries()) outcomes[d.index] = answers[i] ?? 'task_not_pending';
    const placed = decisions.filter((_, index) => outcomes[index] === 'placed');
    // The bus takes one event per call: all are sent at once, in order (Redis pipelines them).
    const published = await Promise.allSettled(
      placed.map(({ task, placement }) =>
        this.events.publish(
          evt.taskScheduled({ ...task, status: 'scheduled' as const, worker_id: placement.worker_id }, placement),
        ),
      ),
    );
    for (const { task } of placed) this.observer?.placed(task, at);
    // Committed is committed: every placement is counted before a failed announcement is reported.
    const failed = published.find((p): p is PromiseRejectedResult => p.status === 'rejected');
    if (failed) throw failed.reason;
    return outcomes;
  }

  /** Keeps the scheduler's latest explanation on a task that still waits. */
  async explainPending(task: CreateTask, record: PlacementRecord): Promise<Task | null> {
    const kept = await this.store.updateTask(task.id, { placement: record }, ['pending']);
    if (kept) this.observer?.unplaceable(task);
    return kept;
  }

  /** A create goes back to the scheduler (worker dead, draining, or refusing the VM). */
  async unplace(task: Task, reason: string, refused = false): Promise<Task | null> {
    const from = task.worker_id;
    const back = await this.store.unplaceTask(task.id, reason, refused);
    if (back && from) {
      await this.events.publish(evt.taskRequeued(back, from, reason));
      this.observer?.requeued(back);
    }
    return back;
  }

  /** A task for an existing VM, written straight to its worker (already `scheduled`). */
  async dispatch(task: Task, ifAbsent = false): Promise<boolean> {
    const inserted = await this.store.insertTask(task, ifAbsent);
    if (inserted) await this.events.publish(evt.taskScheduled(task, null));
    return inserted;
  }

  /** scheduled → running (or running → running when a restarted worker resumes it). */
  async start(task: Task, resume: boolean): Promise<Task | null> {
    const from: TaskStatus[] = resume ? ['running'] : ['scheduled'];
    const started = await this.store.updateTask(
      task.id,
      { status: 'running', started_at: task.started_at ?? new Date() },
      from,
    );
    if (started) {
      // A create claimed by its worker: the `delivered` phase of the VM's boot.
      if (started.type === 'vm:create' && started.vm_id && !resume)
        await this.store.recordVmPhases(started.vm_id, { delivered: new Date() });
      await this.events.publish(evt.taskStarted(started));
    }
    return started;
  }

  async complete(task: Task, result: NonNullable<Task['result']>): Promise<Task | null> {
    const done = await this.store.updateTask(
      task.id,
      { status: 'completed', result, error: null, completed_at: new Date() },
      ['running'],
    );
    if (done) await this.ended(done, evt.taskCompleted(done));
    return done;
  }

  /** running → scheduled with one more retry counted; the caller sends it again after `delayMs`. */
  async retry(task: Task, error: string, delayMs: number): Promise<Task | null> {
    const again = await this.store.updateTask(
      task.id,
      { status: 'scheduled', retry_count: task.retry_count + 1, error },
      ['running'],
    );
    if (again) await this.events.publish(evt.taskRetrying(again, error, delayMs));
    return again;
  }

  /** The worker is shutting down: the task goes back as it was, for the same worker to pick up. */
  interrupted(task: Task): Promise<Task | null> {
    return this.store.updateTask(task.id, { status: 'scheduled', started_at: null }, ['running']);
  }

  async fail(task: Task, error: string, from: readonly TaskStatus[] = ['running', 'scheduled']): Promise<Task | null> {
    const failed = await this.store.updateTask(task.id, { status: 'failed', error, completed_at: new Date() }, from);
    if (failed) await this.ended(failed, evt.taskFailed(failed, error));
    return failed;
  }

  /** A task that has not started (pending or scheduled) is cancelled; it never runs. */
  async cancelWaiting(task: Task, reason: string): Promise<Task | null> {
    const cancelled = await this.store.updateTask(
      task.id,
      { status: 'cancelled', error: reason, completed_at: new Date() },
      ['pending', 'scheduled'],
    );
    if (cancelled) await this.ended(cancelled, evt.taskCancelled(cancelled, reason));
    return cancelled;
  }

  /** A task that has not started is done without running (nothing was left for it to do). */
  async completeWaiting(task: Task, result: NonNullable<Task['result']>): Promise<Task | null> {
    const done = await this.store.updateTask(
      task.id,
      { status: 'completed', result, error: null, completed_at: new Date() },
      ['pending', 'scheduled'],
    );
    if (done) await this.ended(done, evt.taskCompleted(done));
    return done;
  }

  /** A running task is flagged; its worker aborts it. Announced once, however often it is asked. */
  async requestCancel(task: Task, reason: string): Promise<Task | null> {
    const flagged = await this.store.requestCancel(task.id, new Date());
    if (flagged && !task.cancel_requested_at) await this.events.publish(evt.taskCancelRequested(flagged, reason));
    return flagged;
  }

  /** The worker aborted a running task because it was cancelled. */
  async cancelled(task: Task, reason: string): Promise<Task | null> {
    const done = await this.store.updateTask(
      task.id,
      { status: 'cancelled', error: reason, completed_at: new Date() },
      ['running'],
    );
    if (done) await this.ended(done, evt.taskCancelled(done, reason));
    return done;
  }

  private async ended(task: Task, event: Parameters<EventBus['publish']>[0]): Promise<void> {
    await this.events.publish(event);
    this.observer?.taskEnded(task);
  }

  // ── VMs ────────────────────────────────────────────────────────────────────────────────────────

  /** A status change, as a compare-and-set when `from` is given. */
  async vmStatus(vm: Vm, to: VmStatus, options: { from?: readonly VmStatus[]; error?: string | null } = {}) {
    const patch = { status: to, ...(options.error === undefined ? {} : { error: options.error }) };
    const updated = await this.store.updateVm(vm.id, patch, options.from);
    if (updated && vm.status !== to) {
      await this.events.publish(evt.vmStateChanged(updated, vm.status, to, options.error ?? null));
    }
    return updated;
  }

  /**
   * The VM booted: starting → running, and `vm.created` (a resumed create that finds it running
   * already announces nothing). Null when the VM was deleted or failed meanwhile: tear it down.
   */
  async vmBooted(vm: Vm, workerPhases: VmPhases = {}): Promise<Vm | null> {
    const running = await this.store.updateVm(vm.id, { status: 'running', error: null }, ['starting', 'running']);
    if (!running || running.deleted_at) return null;
    if (vm.status === 'running') return running;
    const phases = { ...running.phases, ...workerPhases, running: new Date() };
    await this.store.recordVmPhases(vm.id, { ...workerPhases, running: phases.running });
    const booted = { ...running, phases };
    await this.events.publish(evt.vmStateChanged(booted, vm.status, 'running', null));
    await this.events.publish(evt.vmCreated(booted));
    this.observer?.vmRunning(booted);
    return booted;
  }

  /** The VM failed for good: its capacity goes back (once, whoever calls it). */
  async vmFailed(vm: Vm, error: string): Promise<Vm | null> {
    const failed = await this.vmStatus(vm, 'failed', { error });
    await this.store.releaseVm(vm.id);
    return failed;
  }

  /**
   * The VM died by itself on its host (its init or VMM exited, it ran out of memory): failed, with
   * the reason. Its reservation stays until it is deleted: its directory and disk are still on that
   * host, kept for a post-mortem, and a slot released now would be handed to a new VM while the old
   * one's files still fill the disk. The delete returns it, exactly once, like any other.
   */
  vmDied(vm: Vm, reason: string): Promise<Vm | null> {
    return this.vmStatus(vm, 'failed', { from: ['running', 'stopping'], error: reason });
  }

  /** Its worker stopped answering: the VM's state is unknown until the worker returns or it is lost. */
  vmUnreachable(vm: Vm, reason: string): Promise<Vm | null> {
    return this.vmStatus(vm, 'unknown', { from: ['running', 'stopping'], error: reason });
  }

  /** Its worker came back and found it running. */
  vmReturned(vm: Vm): Promise<Vm | null> {
    return this.vmStatus(vm, 'running', { from: ['unknown'], error: null });
  }

  /**
   * Lost for good (its worker stayed away past `worker.lost_after`, or came back without it): the
   * capacity is returned, exactly once; a worker that later shows up with it stops it.
   */
  async vmLost(vm: Vm, reason: string): Promise<Vm | null> {
    const lost = await this.vmStatus(vm, 'lost', {
      from: ['created', 'starting', 'running', 'stopping', 'stopped', 'unknown', 'failed'],
      error: reason,
    });
    await this.store.releaseVm(vm.id);
    return lost;
  }

  /** The VM is gone from its host: the row is closed and its capacity returned, exactly once. */
  async vmDeleted(vm: Vm, reason: string): Promise<Vm | null> {
    // Released first, and also for a VM already closed: a replica that died between the two
    // writes left it closed but still reserved, and the retry must not stop at the closed row.
    await this.store.releaseVm(vm.id);
    if (vm.deleted_at) return vm;
    const deleted = await this.store.updateVm(vm.id, { status: 'stopped', deleted_at: new Date() });
    if (deleted) await this.events.publish(evt.vmDeleted(deleted, reason));
    return deleted;
  }

  /** A create that never made a VM (cancelled, or its worker died first): no VM is left behind. */
  async forgetVm(vmId: string | null, reason: string): Promise<void> {
    const before = vmId ? await this.store.getVm(vmId) : null;
    if (!before || before.deleted_at) return;
    await this.store.releaseVm(before.id);
    const vm = await this.store.updateVm(before.id, { status: 'failed', error: reason, deleted_at: new Date() });
    if (!vm) return;
    if (before.status !== 'failed') await this.events.publish(evt.vmStateChanged(vm, before.status, 'failed', reason));
    await this.events.publish(evt.vmDeleted(vm, reason));
  }

  /**
   * Deletes a VM no worker holds, racing nothing: one transaction with the placement it might race.
   * Returns the completed delete task, or null when a placement won (delete it on its worker).
   */
  async deleteUnplaced(vm: Vm, deleteTask: Task): Promise<Task | null> {
    const reason = 'the VM was deleted before it was placed';
    const outcome = await this.store.deleteUnplacedVm(vm.id, deleteTask, reason);
    if (outcome.outcome !== 'deleted') return null;
    for (const create of outcome.cancelled) await this.ended(create, evt.taskCancelled(create, reason));
    await this.events.publish(evt.vmDeleted(outcome.vm, 'deleted before it was placed'));
    return deleteTask;
  }
}
