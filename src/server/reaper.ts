/**
 * Marks workers whose heartbeats stopped as offline (the original had no reaper, so dead workers
 * stayed "active" forever), announces it, and settles the work they held:
 * - creates placed there but not started go back to the scheduler and land elsewhere;
 * - tasks it was running fail with the reason. A create that was running fails rather than being
 *   placed again: its VM may be half-booted on that host, and a second boot elsewhere would be a
 *   VM the user did not ask for. The VM is marked failed and its capacity returned, exactly once;
 *   if the worker comes back, its reconcile removes what is left on the host;
 * - a delete that was running completes the user's intent: the VM is closed and its capacity
 *   returned; the returning worker removes the leftovers the same way;
 * - its running VMs turn `unknown` (like Nomad's allocations of a disconnected client): they may
 *   well still run, so they keep their capacity, and a worker that returns with them reports them
 *   `running` again (its reconcile). Once the worker has been silent for `worker.lost_after`,
 *   they are `lost`: capacity returned, the reason on the VM, tasks waiting for them settled. A
 *   worker that shows up later with a lost VM stops it, so it is never counted twice.
 *
 * Its pass also deletes expired idempotency keys, at most every PRUNE_KEYS_EVERY_MS (a claim
 * replaces an expired key by itself; pruning only keeps the table small).
 */
import { AetheriumError, errorMessage, type Task, type Vm, type Worker } from '../domain/index.ts';
import { Periodic } from '../lifecycle/periodic.ts';
import type { Logger } from '../ports/logger.ts';
import type { Ledger } from './ledger/ledger.ts';
import type { WorkerLedger } from './ledger/worker-ledger.ts';

/** How often a replica deletes expired idempotency keys: one indexed DELETE, harmless when raced. */
export const PRUNE_KEYS_EVERY_MS = 10 * 60_000;

export class Reaper extends Periodic {
  private lastPrune = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly ledger: Ledger,
    private readonly workers: WorkerLedger,
    intervalMs: number,
    private readonly onWorkAvailable: () => void,
    private readonly log: Logger,
    /** How long a silent worker's VMs stay `unknown` before they are `lost` (`worker.lost_after`). */
    private readonly lostAfterMs: number = 5 * 60_000,
  ) {
    super(
      'reaper',
      async () => {
        await this.sweep();
        await this.pruneIdempotencyKeys();
      },
      {
        intervalMs,
        runOnStart: false,
        onError: (err) => log.warn({ err: errorMessage(err) }, 'reaper sweep failed'),
      },
    );
  }

  /** Deletes idempotency keys expired at `now`, unless this replica did so less than PRUNE_KEYS_EVERY_MS ago. */
  async pruneIdempotencyKeys(now = new Date()): Promise<number> {
    if (now.getTime() - this.lastPrune < PRUNE_KEYS_EVERY_MS) return 0;
    this.lastPrune = now.getTime();
    const pruned = await this.ledger.store.pruneIdempotencyKeys(now);
    if (pruned > 0) this.log.info({ pruned }, 'expired idempotency keys deleted');
    return pruned;
  }

  async sweep(now = new Date()): Promise<string[]> {
    const gone = await this.ledger.store.markStaleWorkersOffline(now);
    let freed = 0;
    for (const worker of gone) {
      this.log.warn(
        { worker_id: worker.id, last_seen: worker.last_seen },
        'worker missed its heartbeats: marked offline',
      );
      await this.workers.left(worker.id, 'heartbeat ttl expired', worker.last_seen);
      freed += await this.settle(worker);
    }
    freed += await this.loseUnreachable(now);
    if (freed > 0) this.onWorkAvailable();
    return gone.map((w) => w.id);
  }

  /**
   * VMs `unknown` for longer than `lost_after` since their worker's last heartbeat become `lost`.
   * Every replica may run it: each step is a compare-and-set, and the capacity is released once.
   */
  async loseUnreachable(now = new Date()): Promise<number> {
    const store = this.ledger.store;
    const unknown = await store.listVms({ status: 'unknown', limit: 100_000 });
    if (unknown.length === 0) return 0;
    const offline = new Map((await store.listWorkers({ status: 'offline' })).map((w) => [w.id, w]));
    let lost = 0;
    for (const vm of unknown) {
      const worker = vm.worker_id ? offline.get(vm.worker_id) : undefined;
      // Its worker is back (its reconcile will tell), or still within lost_after: keep waiting.
      if (vm.worker_id && !worker) continue;
      if (worker && now.getTime() - worker.last_seen.getTime() < this.lostAfterMs) continue;
      const reason = worker
        ? `lost: its worker ${worker.id} has been unreachable since ${worker.last_seen.toISOString()}, longer than worker.lost_after`
        : 'lost: its worker is no longer known';
      const done = await this.ledger.vmLost(vm, reason);
      if (!done) continue;
      lost++;
      this.log.warn({ vm_id: vm.id, worker_id: vm.worker_id }, 'VM lost with its worker: capacity returned');
      await this.settleWaiting(done, reason);
    }
    return lost;
  }

  /** Tasks still queued for a lost VM's worker: a delete is done (nothing is left to run), others fail. */
  private async settleWaiting(vm: Vm, reason: string): Promise<void> {
    for (const task of await this.ledger.store.listTasks({ vm_id: vm.id, status: 'scheduled' })) {
      if (task.type === 'vm:delete') {
        await this.ledger.vmDeleted(vm, 'deleted while its worker was lost');
        await this.ledger.completeWaiting(task, { vm_id: vm.id, deleted: true });
      } else {
        await this.ledger.fail(task, `the VM was lost before the task could run (${reason})`, ['scheduled']);
      }
    }
  }

  /** The work a dead worker held; returns how many tasks or VMs it freed. */
  private async settle(worker: Worker): Promise<number> {
    const store = this.ledger.store;
    let freed = 0;
    for (const task of await store.listTasks({ worker_id: worker.id, status: 'scheduled', type: 'vm:create' })) {
      if (await this.ledger.unplace(task, `worker ${worker.id} went offline before starting it`)) freed++;
    }
    for (const task of await store.listTasks({ worker_id: worker.id, status: 'running' })) {
      if (await this.abandon(task, worker)) freed++;
    }
    const reason = `its worker ${worker.id} is unreachable (no heartbeat since ${worker.last_seen.toISOString()})`;
    for (const vm of await store.listVms({ worker_id: worker.id, limit: 100_000 })) {
      if (vm.status === 'running' || vm.status === 'stopping') await this.ledger.vmUnreachable(vm, reason);
    }
    return freed;
  }

  private async abandon(task: Task, worker: Worker): Promise<boolean> {
    const lost = new AetheriumError('worker_lost', `worker ${worker.id} went offline while the task ran`);
    const failed = await this.ledger.fail(task, lost.message, ['running']);
    if (!failed || !task.vm_id) return failed !== null;
    const vm = await this.ledger.store.getVm(task.vm_id);
    if (!vm || vm.deleted_at) return true;
    if (task.type === 'vm:create') await this.ledger.vmFailed(vm, lost.message);
    else if (task.type === 'vm:delete')
      await this.ledger.vmDeleted(vm, `deleted while its worker ${worker.id} went offline`);
    return true;
  }
}
