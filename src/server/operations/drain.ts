/**
 * Drain, as in Nomad: the worker takes no new VMs; creates waiting in its queue move elsewhere;
 * commands and deletes for its own VMs still run there; at the deadline the VMs still there are
 * deleted; and the drain is complete only when every VM is really gone.
 *
 *   active ──drain──► draining ──deadline──► (deletes issued, every pass) ──last VM gone──► drained
 *      ▲                 │                                                                   │
 *      └─── activate ────┴───────────────────────────────────────────────────────────────────┘
 *
 * Only the control plane drives a drain (the API and its drain loop); a worker that is shutting
 * down asks for its own drain and waits. Every pass after the deadline issues a delete for each VM
 * that has none under way, so a pass that failed halfway is finished by the next one; the delete
 * tasks' ids derive from the drain and the VM, so replicas racing on a pass write each delete once.
 */
import { type DrainRequest, errorMessage, idFromName, notFound, type Worker } from '../../domain/index.ts';
import type { Logger } from '../../ports/logger.ts';
import type { TaskQueue } from '../../ports/task-queue.ts';
import type { Ledger } from '../ledger/ledger.ts';
import type { WorkerLedger } from '../ledger/worker-ledger.ts';
import { dispatchToVmWorker, placedVm, taskForVm } from './dispatch.ts';

export type { DrainRequest };

export const DEFAULT_DRAIN_DEADLINE_SECONDS = 3600;

/** A VM whose deletes keep failing gets this many before the drain stops trying (and says so). */
const MAX_DELETES_PER_VM = 5;

export interface DrainDeps {
  ledger: Ledger;
  workers: WorkerLedger;
  queue: TaskQueue;
  log?: Logger;
}

export function drainDeadline(request: DrainRequest, now: Date): Date | null {
  if (request.force) return now;
  if (request.no_deadline) return null;
  return new Date(now.getTime() + (request.deadline_seconds ?? DEFAULT_DRAIN_DEADLINE_SECONDS) * 1000);
}

export async function beginDrain(
  deps: DrainDeps,
  workerId: string,
  request: DrainRequest,
  now = new Date(),
): Promise<Worker> {
  const drain = {
    deadline: drainDeadline(request, now),
    force: request.force ?? false,
    message: request.message ?? null,
  };
  const worker = await deps.workers.drainStarted(workerId, drain, now);
  if (!worker) throw notFound('worker', workerId);
  await moveQueuedCreates(deps, workerId);
  await progressDrain(deps, worker, now);
  return (await deps.ledger.store.getWorker(workerId)) ?? worker;
}

/** Creates placed on the worker but not started go back to the scheduler, which puts them elsewhere. */
export async function moveQueuedCreates(deps: DrainDeps, workerId: string): Promise<number> {
  const { ledger, queue } = deps;
  let moved = 0;
  for (const task of await ledger.store.listTasks({
    worker_id: workerId,
    status: 'scheduled',
    type: 'vm:create',
    limit: 10_000,
  })) {
    if (!(await ledger.unplace(task, `worker ${workerId} is draining`))) continue;
    moved++;
    await queue.remove(workerId, task.id).catch(() => false); // a stale message finds the task pending and is dropped
  }
  return moved;
}

/**
 * One step of a drain: past the deadline, cancel what still runs there and make sure every VM left
 * has a delete under way; when no VM is left, mark it drained (once) and announce it.
 */
export async function progressDrain(
  deps: DrainDeps,
  worker: Worker,
  now = new Date(),
): Promise<'draining' | 'drained'> {
  const drain = worker.drain;
  if (!drain) return 'draining';
  if (drain.drained_at) return 'drained';
  if (drain.deadline && drain.deadline <= now) {
    if (await deps.ledger.store.claimDrainEnforcement(worker.id, now)) {
      deps.log?.info({ worker_id: worker.id }, 'drain deadline reached: deleting the VMs left');
    }
    await enforceDeadline(deps, worker);
  }
  if (await deps.workers.drained(worker, now)) return 'drained';
  return 'draining';
}

async function enforceDeadline(deps: DrainDeps, worker: Worker): Promise<void> {
  const { ledger } = deps;
  const drain = worker.drain!;
  const reason = `drain deadline reached on worker ${worker.id}${drain.message ? ` (${drain.message})` : ''}`;
  for (const task of await ledger.store.listTasks({ worker_id: worker.id, status: 'running', limit: 10_000 })) {
    if (task.type !== 'vm:delete' && !task.cancel_requested_at) await ledger.requestCancel(task, reason);
  }
  const failures: string[] = [];
  for (const vm of await ledger.store.listVms({ worker_id: worker.id, limit: 100_000 })) {
    const target = placedVm(vm);
    if (!target) continue;
    try {
      const deletes = await ledger.store.listTasks({ vm_id: vm.id, type: 'vm:delete' });
      if (deletes.some((d) => d.status !== 'failed' && d.status !== 'cancelled')) continue; // one is under way
      if (deletes.length >= MAX_DELETES_PER_VM) {
        failures.push(`${vm.name}: ${deletes.length} deletes failed, the last with ${deletes[0]?.error ?? 'no error'}`);
        continue;
      }
      // One id per drain, VM and attempt: every replica that gets here writes the same row.
      const id = idFromName(`drain:${worker.id}:${drain.started_at.toISOString()}:${vm.id}:${deletes.length}`);
      await dispatchToVmWorker(deps, target, taskForVm(target, 'vm:delete', { reason }, { id }), true);
    } catch (err) {
      // The next pass tries this VM again; the others still get their deletes now.
      failures.push(`${vm.name}: ${errorMessage(err)}`);
    }
  }
  if (failures.length) deps.log?.warn({ worker_id: worker.id, failures }, 'drain: some VMs could not be deleted yet');
}
