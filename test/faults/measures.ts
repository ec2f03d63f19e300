/**
 * The columns of the fault table, from the runner's times, the load's requests and the tasks.
 *
 * - detected: injection → the fault was noticed (see each Fault's `noticed`).
 * - back: heal → the target was healthy again.
 * - recovered: injection → the load succeeds again: the first request that succeeded after the
 *   last request of the window that failed (0 when none failed).
 * - failed ops: operations of the load started in the window that failed: requests (no answer, a
 *   5xx, an unexpected answer) and boots (a VM that did not reach running), out of all of them.
 * - slowest boot: the longest wait, among creates accepted in the window, until the VM ran.
 * - tasks affected: the load's tasks alive at some point of the window (from injection to the
 *   window's end) that did not simply complete: failed, cancelled, retried, or moved to another
 *   worker.
 */
import type { Attempt } from './load.ts';

export interface FaultTimes {
  fault: string;
  target: string;
  note?: string;
  injectedAt: number;
  noticedAt: number | null;
  healStartedAt: number;
  backAt: number | null;
  /** The window ends when the next fault starts (or the load stops). */
  windowEnd: number;
}

export interface TaskRow {
  id: string;
  type: string;
  status: string;
  vm_id: string | null;
  worker_id: string | null;
  retry_count: number;
  error: string | null;
  moved_from: string[];
  created_at: number;
  completed_at: number | null;
  updated_at: number;
}

export interface FaultMeasures {
  detectedMs: number | null;
  backMs: number | null;
  recoveredMs: number | null;
  failedOps: number;
  ops: number;
  slowestBootMs: number | null;
  tasksAffected: number;
  tasksInWindow: number;
}

export const FINAL_TASK = new Set(['completed', 'failed', 'cancelled']);

export function recoveredAfter(attempts: Attempt[], from: number, to: number): number | null {
  const inWindow = attempts.filter((a) => a.startedAt >= from && a.startedAt < to && a.endedAt > 0);
  const failed = inWindow.filter((a) => !a.ok);
  if (failed.length === 0) return 0;
  const lastFailure = Math.max(...failed.map((a) => a.startedAt));
  const firstSuccess = attempts
    .filter((a) => a.ok && a.startedAt > lastFailure)
    .reduce((min, a) => Math.min(min, a.endedAt), Number.POSITIVE_INFINITY);
  return Number.isFinite(firstSuccess) ? firstSuccess - from : null;
}

export function measure(times: FaultTimes, attempts: Attempt[], tasks: TaskRow[]): FaultMeasures {
  const { injectedAt: from, windowEnd: to } = times;
  const requests = attempts.filter((a) => a.startedAt >= from && a.startedAt < to && a.endedAt > 0);
  const boots = requests.filter((a) => a.kind === 'boot' && a.ok);
  const alive = tasks.filter((t) => t.created_at < to && (t.completed_at ?? Number.POSITIVE_INFINITY) >= from);
  const affected = alive.filter((t) => t.status !== 'completed' || t.retry_count > 0 || t.moved_from.length > 0);
  return {
    detectedMs: times.noticedAt === null ? null : Math.max(0, times.noticedAt - from),
    backMs: times.backAt === null ? null : times.backAt - times.healStartedAt,
    recoveredMs: recoveredAfter(attempts, from, to),
    failedOps: requests.filter((a) => !a.ok).length,
    ops: requests.length,
    slowestBootMs: boots.length ? Math.max(...boots.map((a) => a.endedAt - a.startedAt)) : null,
    tasksAffected: affected.length,
    tasksInWindow: alive.length,
  };
}
