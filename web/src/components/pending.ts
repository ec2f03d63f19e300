import type { Task } from '@aetherium/sdk';

/** Why a task still waits: the scheduler's last word on it, or that it has not looked yet. */
export function pendingReason(task: Task): string {
  if (task.type === 'vm:create' && task.placement?.reason) return task.placement.reason;
  if (task.type === 'vm:create' && task.placement && task.placement.feasible === 0)
    return `no worker fits (${task.placement.workers} looked at)`;
  if (task.status === 'scheduled') return `queued on ${task.worker_id ?? 'its worker'}`;
  return task.type === 'vm:create' ? 'waiting for the scheduler' : 'waiting for its worker';
}
