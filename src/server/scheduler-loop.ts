/**
 * Drives the pure scheduler: takes pending tasks, snapshots the workers, asks `place()` for a
 * decision and commits it with the store's conditional UPDATE. Several replicas can run this loop
 * at once: the compare-and-set on the task and the capacity check on the worker mean one wins and
 * the others move on. It also sends again any scheduled task whose queue message may be lost.
 */
import { errorMessage, type Task, type Worker } from '../domain/index.ts';
import type { EventBus } from '../ports/event-bus.ts';
import type { Store } from '../ports/store.ts';
import type { TaskQueue } from '../ports/task-queue.ts';
import type { Logger } from '../runtime/logger.ts';
import { ClusterSnapshot, place, type PlacementRequest, type Strategy, type WorkerSnapshot } from '../scheduler/index.ts';

export interface SchedulerLoopOptions {
  intervalMs: number;
  batchSize: number;
  strategy: Strategy;
  maxCreatesInFlight: number;
  redeliverAfterMs: number;
}

export function requestOf(task: Task): PlacementRequest {
  const p = task.payload as Record<string, unknown>;
  return {
    vcpus: Number(p.vcpus ?? 1),
    memory_mb: Number(p.memory_mb ?? 256),
    disk_gb: Number(p.disk_gb ?? 0),
    zone: (p.zone as string | null) ?? null,
    labels: (p.worker_labels as PlacementRequest['labels']) ?? {},
    driver: (p.driver as PlacementRequest['driver']) ?? null,
    ...(p.strategy ? { strategy: p.strategy as Strategy } : {}),
    exclude: (p.exclude as string[] | undefined) ?? [],
  };
}

/** The workers a task was taken away from (dead, draining), kept across placements: it explains delays. */
function trailOf(task: Task): { moved_from?: string[] } {
  const previous = task.placement as { moved_from?: string[]; previous_worker_id?: string } | null;
  const movedFrom = [...(previous?.moved_from ?? []), ...(previous?.previous_worker_id ? [previous.previous_worker_id] : [])];
  return movedFrom.length ? { moved_from: movedFrom } : {};
}

export class SchedulerLoop {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly queue: TaskQueue,
    private readonly events: EventBus,
    private readonly options: SchedulerLoopOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.trigger(), this.options.intervalMs);
    this.timer.unref();
    this.trigger();
  }

  /** Runs a pass soon; calls during a pass fold into one more pass after it. */
  trigger(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch((err) => this.log.error({ err: errorMessage(err) }, 'scheduler pass failed'))
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.trigger();
        }
      });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** A dry run: what would happen to this request now. Reserves nothing. */
  async plan(request: PlacementRequest) {
    return place(new ClusterSnapshot(await this.snapshot()), request, this.placementOptions());
  }

  private placementOptions() {
    return { now: new Date(), strategy: this.options.strategy, maxCreatesInFlight: this.options.maxCreatesInFlight };
  }

  /** One pass: place what is pending, then redeliver what looks lost. Exposed for tests. */
  async pass(): Promise<void> {
    await this.placePending();
    await this.redeliver();
  }

  /** The workers as the scheduler sees them now, with the creates in flight on each. */
  async snapshot(): Promise<WorkerSnapshot[]> {
    const [workers, scheduled, running] = await Promise.all([
      this.store.listWorkers(),
      this.store.listTasks({ status: 'scheduled', type: 'vm:create' }),
      this.store.listTasks({ status: 'running', type: 'vm:create' }),
    ]);
    const inFlight = new Map<string, number>();
    for (const task of [...scheduled, ...running]) {
      if (task.worker_id) inFlight.set(task.worker_id, (inFlight.get(task.worker_id) ?? 0) + 1);
    }
    return workers.map((w: Worker) => ({ ...w, creates_in_flight: inFlight.get(w.id) ?? 0 }));
  }

  private async placePending(): Promise<void> {
    const pending = await this.store.listPendingTasks(this.options.batchSize);
    if (pending.length === 0) return;
    let cluster = new ClusterSnapshot(await this.snapshot());
    for (const task of pending) {
      if (this.stopped) return;
      if (task.type !== 'vm:create' || !task.vm_id) continue;
      const vm = await this.store.getVm(task.vm_id);
      if (!vm || vm.deleted_at) {
        await this.store.updateTask(task.id, { status: 'cancelled', error: 'the VM was deleted before it was placed', completed_at: new Date() }, ['pending']);
        continue;
      }
      const request = { ...requestOf(task), seed: task.id };
      for (let attempt = 0; attempt < 2; attempt++) {
        const { placement, explanation } = place(cluster, request, this.placementOptions());
        if (!placement) {
          if (task.placement?.reason !== explanation.reason) {
            await this.store.updateTask(task.id, { placement: { ...explanation, ...trailOf(task) } }, ['pending']);
            this.log.info({ task_id: task.id, vm: vm.name, reason: explanation.reason }, 'task stays pending');
          }
          break;
        }
        const record = { ...explanation, placed_at: new Date().toISOString(), ...trailOf(task) };
        const outcome = await this.store.placeTask(task.id, vm.id, placement.worker_id, placement.driver, request, record);
        if (outcome === 'placed') {
          cluster.reserve(placement.worker_id, request);
          // Placed is placed: should the queue be down, the redelivery pass sends it later.
          await this.queue.enqueue(placement.worker_id, { id: task.id, type: task.type }).catch((err) => this.log.warn({ task_id: task.id, err: errorMessage(err) }, 'enqueue failed; will redeliver'));
          await this.events.publish({ type: 'task.scheduled', data: { task_id: task.id, type: task.type, vm_id: vm.id, worker_id: placement.worker_id, driver: placement.driver, score: placement.score } });
          break;
        }
        if (outcome === 'task_not_pending') break;
        // Our snapshot was stale (another replica took the room): look again once.
        cluster = new ClusterSnapshot(await this.snapshot());
      }
    }
  }

  private async redeliver(): Promise<void> {
    const stale = await this.store.listStaleScheduledTasks(new Date(Date.now() - this.options.redeliverAfterMs), this.options.batchSize);
    for (const task of stale) {
      if (!task.worker_id) continue;
      const sent = await this.queue.enqueue(task.worker_id, { id: task.id, type: task.type, attempt: task.retry_count }).then(() => true, () => false);
      if (!sent) return;
      // Touch the row so the next pass does not send it again at once.
      await this.store.updateTask(task.id, {}, ['scheduled']);
    }
  }
}
