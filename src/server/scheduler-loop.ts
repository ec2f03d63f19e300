/**
 * Drives the pure scheduler: takes a batch of pending tasks, snapshots the workers, asks `place()`
 * for a decision on each (in memory, against the snapshot) and commits the whole batch through the
 * ledger in one transaction (the store's conditional, set-based UPDATEs plus `task.scheduled`).
 * Several replicas can run this loop at once: the compare-and-set on the tasks and the capacity
 * check on the workers mean one wins each race and the others move on. It also sends again any
 * scheduled task whose queue message may be lost. The VM row is the one source of a VM's
 * requirements.
 */
import { taskLogFields, withLogContext } from '../observability/trace-context.ts';
import {
  type CreateTask,
  errorMessage,
  type Placement,
  type PlacementExplanation,
  type PlacementRecord,
  placementRecord,
  type Task,
  type Vm,
  type Worker,
} from '../domain/index.ts';
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

/** A pending create whose VM is live, with what it asks of the scheduler. */
interface Candidate {
  task: CreateTask;
  vm: Vm;
  request: PlacementRequest;
}

/** A candidate the scheduler found a place for, with the record of why. */
interface Decided extends Candidate {
  placement: Placement;
  record: PlacementRecord;
}

/** Its lines name the task and the request that made it, like the API's and the worker's. */
function inContext<T>(task: Task, fn: () => T): T {
  return withLogContext(taskLogFields(task), fn);
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

  /**
   * A stop was asked for while a pass runs: the pass ends early. (A loop never started is not
   * stopping: its `pass()` runs in full, as tests and benchmarks call it.)
   */
  private get stopRequested(): boolean {
    return this.state === 'stopping';
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
    const [workers, inFlight] = await Promise.all([store.listWorkers(), store.countCreatesInFlight()]);
    return workers.map((w: Worker) => ({ ...w, creates_in_flight: inFlight.get(w.id) ?? 0 }));
  }

  /**
   * Places the pending batch: each task against the snapshot in memory (which records each
   * placement, so later ones see the room earlier ones took), then all of them in one transaction.
   * Those that lost their race (another replica took the room first) are placed once more, against
   * a fresh snapshot.
   */
  private async placePending(): Promise<void> {
    const store = this.ledger.store;
    const pending = (await store.listPendingTasks(this.options.batchSize)).filter(
      (task): task is CreateTask & { vm_id: string } => task.type === 'vm:create' && task.vm_id !== null,
    );
    if (pending.length === 0) return;
    // The VMs hold the requirements: one query for the whole batch.
    const [vms, workers] = await Promise.all([store.getVms(pending.map((task) => task.vm_id)), this.snapshot()]);
    const byId = new Map(vms.map((vm) => [vm.id, vm]));
    let candidates: Candidate[] = [];
    for (const task of pending) {
      const vm = byId.get(task.vm_id);
      if (vm && !vm.deleted_at) {
        candidates.push({ task, vm, request: requestOf(task, vm) });
        continue;
      }
      if (this.stopRequested) return;
      await inContext(task, () => this.ledger.cancelWaiting(task, 'the VM was deleted before it was placed'));
    }
    let cluster = new ClusterSnapshot(workers);
    for (let attempt = 0; attempt < 2 && candidates.length > 0; attempt++) {
      if (this.stopRequested) return;
      // Our snapshot was stale for these (another replica took the room): look again once.
      if (attempt > 0) cluster = new ClusterSnapshot(await this.snapshot());
      candidates = await this.placeBatch(candidates, cluster);
    }
  }

  /** Decides in memory, commits in one go, sends the placed; answers those that lost their race. */
  private async placeBatch(candidates: readonly Candidate[], cluster: ClusterSnapshot): Promise<Candidate[]> {
    const options = this.placementOptions();
    const decided: Decided[] = [];
    const waiting: { candidate: Candidate; explanation: PlacementExplanation }[] = [];
    for (const candidate of candidates) {
      const { placement, explanation } = place(cluster, candidate.request, options);
      if (!placement) {
        waiting.push({ candidate, explanation });
        continue;
      }
      cluster.reserve(placement.worker_id, candidate.request);
      decided.push({
        ...candidate,
        placement,
        record: placementRecord(explanation, candidate.task.placement, new Date()),
      });
    }
    if (this.stopRequested) return [];
    const outcomes = decided.length > 0 ? await this.ledger.placeMany(decided) : [];
    const placed: Decided[] = [];
    const lost: Candidate[] = [];
    outcomes.forEach((outcome, i) => {
      const d = decided[i]!;
      if (outcome === 'placed') placed.push(d);
      else if (outcome === 'insufficient_capacity') lost.push({ task: d.task, vm: d.vm, request: d.request });
    });
    for (const d of placed)
      inContext(d.task, () => this.log.info({ vm: d.vm.name, worker_id: d.placement.worker_id }, 'task placed'));
    await this.send(placed);
    for (const { candidate, explanation } of waiting) {
      const { task, vm } = candidate;
      if (task.placement?.reason === explanation.reason) continue;
      await inContext(task, async () => {
        await this.ledger.explainPending(task, placementRecord(explanation, task.placement, null));
        this.log.info({ vm: vm.name, reason: explanation.reason }, 'task stays pending');
      });
    }
    return lost;
  }

  /** Placed is placed: should the queue be down, the redelivery pass sends them later. */
  private async send(placed: readonly Decided[]): Promise<void> {
    if (placed.length === 0) return;
    const messages = placed.map(({ task, placement }) => ({
      workerId: placement.worker_id,
      task: { id: task.id, type: task.type },
    }));
    await this.queue.enqueueMany(messages).catch((err) => {
      const message = errorMessage(err);
      for (const { task } of placed)
        inContext(task, () => this.log.warn({ task_id: task.id, err: message }, 'enqueue failed; will redeliver'));
    });
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
