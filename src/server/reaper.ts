/**
 * Marks workers whose heartbeats stopped as offline (the original had no reaper, so dead workers
 * stayed "active" forever), announces it, and settles the work they held:
 * - creates placed there but not started go back to the scheduler and land elsewhere;
 * - tasks it was running fail with the reason. A create that was running fails rather than being
 *   placed again: its VM may be half-booted on that host, and a second boot elsewhere would be a
 *   VM the user did not ask for. The VM is marked failed and its capacity returned, exactly once;
 *   if the worker comes back, its reconcile removes what is left on the host;
 * - a delete that was running completes the user's intent: the VM is closed and its capacity
 *   returned; the returning worker removes the leftovers the same way.
 *
 * Its pass also deletes expired idempotency keys, at most every PRUNE_KEYS_EVERY_MS (a claim
 * replaces an expired key by itself; pruning only keeps the table small).
 */
import { AetheriumError, errorMessage, type Task, type Worker } from '../domain/index.ts';
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
    if (freed > 0) this.onWorkAvailable();
    return gone.map((w) => w.id);
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
