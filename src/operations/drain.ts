/**
 * Drain, as in Nomad: the worker takes no new VMs; creates waiting in its queue move elsewhere;
 * commands and deletes for its own VMs still run there; at the deadline the VMs still there are
 * deleted; and the drain is complete only when every VM is really gone.
 *
 *   active ──drain──► draining ──deadline──► (deletes issued) ──last VM gone──► drained
 *      ▲                 │                                                       │
 *      └─── activate ────┴───────────────────────────────────────────────────────┘
 *
 * Used by the control plane (API, drain loop) and by a worker draining itself on SIGTERM. Every
 * step is a compare-and-set in the store, so several replicas can drive one drain.
 */
import { errorMessage, notFound, type Worker } from '../domain/index.ts';
import type { EventBus } from '../ports/event-bus.ts';
import type { Store } from '../ports/store.ts';
import type { TaskQueue } from '../ports/task-queue.ts';
import { dispatchToVmWorker } from './dispatch.ts';

export interface DrainRequest {
  deadline_seconds?: number;
  /** Stop everything now: the deadline is the moment of the call. */
  force?: boolean;
  /** Let the VMs run to their end; the drain completes when the last one is deleted. */
  no_deadline?: boolean;
  message?: string;
}

export const DEFAULT_DRAIN_DEADLINE_SECONDS = 3600;

export interface DrainDeps {
  store: Store;
  events: EventBus;
  queue: TaskQueue;
}

export function drainDeadline(request: DrainRequest, now: Date): Date | null {
  if (request.force) return now;
  if (request.no_deadline) return null;
  return new Date(now.getTime() + (request.deadline_seconds ?? DEFAULT_DRAIN_DEADLINE_SECONDS) * 1000);
}

export async function beginDrain(deps: DrainDeps, workerId: string, request: DrainRequest, now = new Date()): Promise<Worker> {
  const deadline = drainDeadline(request, now);
  const worker = await deps.store.startDrain(workerId, { deadline, message: request.message ?? null }, now);
  if (!worker) throw notFound('worker', workerId);
  await deps.events.publish({
    type: 'worker.draining',
    data: { worker_id: workerId, deadline: deadline?.toISOString() ?? null, force: request.force ?? false, message: request.message ?? null },
  });
  await moveQueuedCreates(deps, workerId);
  await progressDrain(deps, worker, now);
  return (await deps.store.getWorker(workerId)) ?? worker;
}

/** Creates placed on the worker but not started go back to the scheduler, which puts them elsewhere. */
export async function moveQueuedCreates(deps: DrainDeps, workerId: string): Promise<number> {
  let moved = 0;
  for (const task of await deps.store.listTasks({ worker_id: workerId, status: 'scheduled', type: 'vm:create', limit: 10_000 })) {
    if (!(await deps.store.unplaceTask(task.id, `worker ${workerId} is draining`))) continue;
    moved++;
    await deps.queue.remove(workerId, task.id).catch(() => false);
    await deps.events.publish({ type: 'task.requeued', data: { task_id: task.id, type: task.type, vm_id: task.vm_id, from_worker_id: workerId, reason: 'worker draining' } });
  }
  return moved;
}

/**
 * One step of a drain: at the deadline, delete the VMs left and cancel what still runs there (once,
 * whoever gets there first); when no VM is left, mark it drained (once) and announce it.
 */
export async function progressDrain(deps: DrainDeps, worker: Worker, now = new Date()): Promise<'draining' | 'drained'> {
  const drain = worker.drain;
  if (!drain) return 'draining';
  if (drain.drained_at) return 'drained';
  if (drain.deadline && drain.deadline <= now && (await deps.store.claimDrainEnforcement(worker.id, now))) {
    const reason = `drain deadline reached on worker ${worker.id}${drain.message ? ` (${drain.message})` : ''}`;
    for (const task of await deps.store.listTasks({ worker_id: worker.id, status: 'running', limit: 10_000 })) {
      if (task.type === 'vm:delete') continue;
      const flagged = await deps.store.requestCancel(task.id, now);
      if (flagged) await deps.events.publish({ type: 'task.cancel_requested', data: { task_id: task.id, worker_id: worker.id, reason } });
    }
    for (const vm of await deps.store.listVms({ worker_id: worker.id, limit: 100_000 })) {
      await dispatchToVmWorker(deps, vm, 'vm:delete', { reason }).catch((err) => {
        // The next pass retries: enforcement is claimed, but deleting again is harmless.
        throw new Error(`could not delete VM ${vm.name} at the drain deadline: ${errorMessage(err)}`);
      });
    }
  }
  if (await deps.store.markDrained(worker.id, now)) {
    await deps.events.publish({ type: 'worker.drained', data: { worker_id: worker.id, started_at: drain.started_at.toISOString(), drained_at: now.toISOString() } });
    return 'drained';
  }
  return 'draining';
}
