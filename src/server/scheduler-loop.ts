/**
 * Drives the pure scheduler: takes pending tasks, snapshots the workers, asks `place()` for a
 * decision and commits it through the ledger (the store's conditional UPDATE plus `task.scheduled`).
 * Several replicas can run this loop at once: the compare-and-set on the task and the capacity check
 * on the worker mean one wins and the others move on. It also sends again any scheduled task whose
 * queue message may be lost. The VM row is the one source of a VM's requirements.
 */
import { taskLogFields, withLogContext } from '../observability/trace-context.ts';
import { type CreateTask, errorMessage, placementRecord, type Task, type Vm, type Worker } from '../domain/index.ts';
import { Periodic } from '../lifecycle/periodic.ts';
import type { Logger } from '../ports/logger.ts';
import type { TaskQueue } from '../ports/task-queue.ts';
import {
  ClusterSnapshot,
  place,
  type PlacementRequest,
  type Strategy,
  type WorkerSnapshot,
} from '../scheduler/index.ts';
import type { Ledger } from './ledger/ledger.ts';

export interface SchedulerLoopOptions {
  intervalMs: number;
  batchSize: number;
  strategy: Strategy;
  maxCreatesInFlight: number;
  redeliverAfterMs: number;
}

/** What a create asks of the scheduler: the VM's own requirements, the task's preferences and trail. */
export function requestOf(task: CreateTask, vm: Vm): PlacementRequest {
  return {
    vcpus: vm.vcpus,
    memory_mb: vm.memory_mb,
    disk_gb: vm.disk_gb,
    zone: vm.zone,
    labels: task.payload.worker_labels,
    driver: vm.driver,
    ...(task.payload.strategy ? { strategy: task.payload.strategy } : {}),
    exclude: task.placement?.excluded ?? [],
    seed: task.id,
  };
}

export class SchedulerLoop extends Periodic {
  constructor(
    private readonly ledger: Ledger,
    private readonly queue: TaskQueue,
    private readonly options: SchedulerLoopOptions,
    private readonly log: Logger,
    private readonly onPass: (seconds: number) => void = () => {},
  ) {
    super('scheduler loop', () => this.pass(), {
      intervalMs: options.intervalMs,
      onError: (err) => log.error({ err: errorMessage(err) }, 'scheduler pass failed'),
    });
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
    const started = performance.now();
    await this.placePending();
    await this.redeliver();
    this.onPass((performance.now() - started) / 1000);
  }

  /** The workers as the scheduler sees them now, with the creates in flight on each. */
  async snapshot(): Promise<WorkerSnapshot[]> {
    const store = this.ledger.store;
    const [workers, scheduled, running] = await Promise.all([
      store.listWorkers(),
      store.listTasks({ status: 'scheduled', type: 'vm:create' }),
      store.listTasks({ status: 'running', type: 'vm:create' }),
    ]);
    const inFlight = new Map<string, number>();
    for (const task of [...scheduled, ...running]) {
      if (task.worker_id) inFlight.set(task.worker_id, (inFlight.get(task.worker_id) ?? 0) + 1);
    }
    return workers.map((w: Worker) => ({ ...w, creates_in_flight: inFlight.get(w.id) ?? 0 }));
  }

  private async placePending(): Promise<void> {
    const pending = await this.ledger.store.listPendingTasks(this.options.batchSize);
    if (pending.length === 0) return;
    let cluster = new ClusterSnapshot(await this.snapshot());
    for (const task of pending) {
      if (this.shuttingDown) return;
      if (task.type !== 'vm:create' || !task.vm_id) continue;
      // Its lines name the task and the request that made it, like the API's and the worker's.
      cluster = await withLogContext(taskLogFields(task), () => this.placeOne(task, cluster));
    }
  }

  /** Places one pending create, or records why it waits; answers the snapshot to go on with. */
  private async placeOne(task: CreateTask, given: ClusterSnapshot): Promise<ClusterSnapshot> {
    let cluster = given;
    const vm = task.vm_id ? await this.ledger.store.getVm(task.vm_id) : null;
    if (!vm || vm.deleted_at) {
      await this.ledger.cancelWaiting(task, 'the VM was deleted before it was placed');
      return cluster;
    }
    const request = requestOf(task, vm);
    for (let attempt = 0; attempt < 2; attempt++) {
      const { placement, explanation } = place(cluster, request, this.placementOptions());
      if (!placement) {
        if (task.placement?.reason !== explanation.reason) {
          await this.ledger.explainPending(task, placementRecord(explanation, task.placement, null));
          this.log.info({ vm: vm.name, reason: explanation.reason }, 'task stays pending');
        }
        break;
      }
      const outcome = await this.ledger.place(
        task,
        placement,
        placementRecord(explanation, task.placement, new Date()),
      );
      if (outcome === 'placed') {
        cluster.reserve(placement.worker_id, request);
        this.log.info({ vm: vm.name, worker_id: placement.worker_id }, 'task placed');
        await this.send(task, placement.worker_id);
        break;
      }
      if (outcome === 'task_not_pending') break;
      // Our snapshot was stale (another replica took the room): look again once.
      cluster = new ClusterSnapshot(await this.snapshot());
    }
    return cluster;
  }

  /** Placed is placed: should the queue be down, the redelivery pass sends it later. */
  private async send(task: Task, workerId: string): Promise<void> {
    await this.queue
      .enqueue(workerId, { id: task.id, type: task.type })
      .catch((err) => this.log.warn({ task_id: task.id, err: errorMessage(err) }, 'enqueue failed; will redeliver'));
  }

  private async redeliver(): Promise<void> {
    const store = this.ledger.store;
    const stale = await store.listStaleScheduledTasks(
      new Date(Date.now() - this.options.redeliverAfterMs),
      this.options.batchSize,
    );
    for (const task of stale) {
      if (!task.worker_id) continue;
      const message = { id: task.id, type: task.type, attempt: task.retry_count };
      const sent = await this.queue.enqueue(task.worker_id, message).then(
        () => true,
        () => false, // the queue is down: the next pass tries again
      );
      if (!sent) return;
      // Touch the row so the next pass does not send it again at once.
      await store.updateTask(task.id, {}, ['scheduled']);
    }
  }
}
