/**
 * The scheduler: a pure function from a snapshot of workers and a request to a placement and its
 * explanation. It does no I/O; the control plane commits the placement with a conditional UPDATE,
 * so a stale snapshot can cost a retry but never an overbooked worker.
 *
 * Like Nomad, it does not score every worker: it scans the smallest index list that can hold the
 * request (zone, driver or label), starting at an offset derived from the request, and stops once
 * it has `sampleSize` feasible workers (default max(2, log2 N)); the best of those wins. Only when
 * the scan finds nothing does it look at every worker, so a request stays pending only when no
 * worker could hold it, and the explanation then counts every worker's reason.
 */
import { CAPACITY_REASONS, compileQuery, firstRejection, pickDriver, type Query } from './checks.ts';
import { score } from './rank.ts';
import { hashSeed } from './seed.ts';
import { ClusterSnapshot } from './snapshot.ts';
import type { PlacementExplanation, PlacementRequest, PlacementResult, SchedulerOptions, WorkerSnapshot } from './types.ts';

export function defaultSampleSize(workers: number): number {
  return Math.max(2, Math.ceil(Math.log2(Math.max(workers, 1))));
}

export function place(cluster: ClusterSnapshot | readonly WorkerSnapshot[], request: PlacementRequest, options: SchedulerOptions): PlacementResult {
  const snapshot = cluster instanceof ClusterSnapshot ? cluster : new ClusterSnapshot(cluster);
  const strategy = request.strategy ?? options.strategy;
  const total = snapshot.workers.length;
  const want = options.sampleSize ?? defaultSampleSize(total);
  const query = compileQuery(request, options);
  const candidates = snapshot.candidates(request);
  const rejected: Record<string, number> = {};
  let evaluated = 0;
  let feasible = 0;
  let best: WorkerSnapshot | null = null;
  let bestScore = -Infinity;

  const n = candidates.length;
  const start = n > 0 ? hashSeed(request.seed ?? '') % n : 0;
  for (let i = 0; i < n && feasible < want; i++) {
    const worker = candidates[(start + i) % n]!;
    evaluated++;
    const reason = firstRejection(worker, query);
    if (reason) {
      rejected[reason] = (rejected[reason] ?? 0) + 1;
      continue;
    }
    feasible++;
    const s = score(worker, request, strategy, snapshot.zoneLoad, snapshot.totalVms);
    // Ties go to the smaller id: the answer depends only on the snapshot and the request.
    if (s > bestScore || (s === bestScore && best !== null && worker.id < best.id)) {
      best = worker;
      bestScore = s;
    }
  }

  if (best) {
    const chosen = { worker_id: best.id, driver: pickDriver(best, request)!, score: round(bestScore) };
    const explanation: PlacementExplanation = { evaluated, feasible, rejected, strategy, chosen, workers: total, sampled: evaluated < total };
    return { placement: chosen, explanation };
  }
  return { placement: null, explanation: explainPending(snapshot, query, strategy) };
}

/** Nothing fits: every worker is checked, so the reasons cover the whole cluster. */
function explainPending(snapshot: ClusterSnapshot, query: Query, strategy: PlacementExplanation['strategy']): PlacementExplanation {
  const rejected: Record<string, number> = {};
  for (const worker of snapshot.workers) {
    const reason = firstRejection(worker, query) ?? 'not sampled';
    rejected[reason] = (rejected[reason] ?? 0) + 1;
  }
  const total = snapshot.workers.length;
  return { evaluated: total, feasible: 0, rejected, strategy, chosen: null, workers: total, sampled: false, reason: summarise(total, rejected) };
}

/** One sentence for "why is my VM pending?". */
export function summarise(total: number, rejected: Record<string, number>): string {
  if (total === 0) return 'no workers registered';
  const reasons = Object.entries(rejected).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const allCapacity = reasons.every(([reason]) => CAPACITY_REASONS.has(reason));
  const detail = reasons.map(([reason, count]) => `${count} × ${reason}`).join(', ');
  return `${allCapacity ? 'insufficient capacity' : 'no feasible worker'}: ${detail}`;
}

function round(n: number): number {
  return Math.round(n * 10_000) / 10_000;
}
