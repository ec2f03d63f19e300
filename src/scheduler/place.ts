/**
 * The scheduler: a pure function from a snapshot of workers and a request to a placement and its
 * explanation. It does no I/O; the control plane commits the placement with a conditional UPDATE,
 * so a stale snapshot can cost a retry but never an overbooked worker.
 */
import { CAPACITY_REASONS, firstRejection, pickDriver } from './checks.ts';
import { score } from './rank.ts';
import type { PlacementRequest, PlacementResult, SchedulerOptions, WorkerSnapshot } from './types.ts';

export function place(workers: readonly WorkerSnapshot[], request: PlacementRequest, options: SchedulerOptions): PlacementResult {
  const strategy = request.strategy ?? options.strategy;
  const rejected: Record<string, number> = {};
  const feasible: WorkerSnapshot[] = [];
  const zoneLoad = new Map<string, number>();

  for (const worker of workers) {
    zoneLoad.set(worker.zone, (zoneLoad.get(worker.zone) ?? 0) + worker.vm_count);
    const reason = firstRejection(worker, request, options);
    if (reason) rejected[reason] = (rejected[reason] ?? 0) + 1;
    else feasible.push(worker);
  }

  let best: WorkerSnapshot | null = null;
  let bestScore = -Infinity;
  for (const worker of feasible) {
    const s = score(worker, request, strategy, zoneLoad);
    // Ties go to the smaller id, so the same snapshot always gives the same answer.
    if (s > bestScore || (s === bestScore && best !== null && worker.id < best.id)) {
      best = worker;
      bestScore = s;
    }
  }

  const chosen = best ? { worker_id: best.id, driver: pickDriver(best, request)!, score: round(bestScore) } : null;
  const explanation = { evaluated: workers.length, feasible: feasible.length, rejected, strategy, chosen };
  if (!chosen) return { placement: null, explanation: { ...explanation, reason: summarise(workers.length, rejected) } };
  return { placement: chosen, explanation };
}

/** One sentence for "why is my VM pending?". */
export function summarise(total: number, rejected: Record<string, number>): string {
  if (total === 0) return 'no workers registered';
  const reasons = Object.entries(rejected).sort((a, b) => b[1] - a[1]);
  const allCapacity = reasons.every(([reason]) => CAPACITY_REASONS.has(reason));
  const detail = reasons.map(([reason, count]) => `${count} × ${reason}`).join(', ');
  return `${allCapacity ? 'insufficient capacity' : 'no feasible worker'}: ${detail}`;
}

function round(n: number): number {
  return Math.round(n * 10_000) / 10_000;
}
