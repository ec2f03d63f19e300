/**
 * The scheduler: a pure function from a snapshot of workers and a request to a placement and its
 * explanation. It does no I/O; the control plane commits the placement with a conditional UPDATE,
 * so a stale snapshot can cost a retry but never an overbooked worker.
 *
 * It scans the smallest index list that can hold the request (zone, driver or label), starting at
 * an offset derived from the request, and ranks the feasible workers it finds; the best one wins.
 * How many it looks for depends on the size of that list:
 *
 * - Up to FULL_SCAN_LIMIT candidates it ranks every one of them, so both strategies are exact
 *   there. On a small cluster a sample is most of the cluster anyway, but the worker it leaves out
 *   is often the very one wanted: with a sample of 2 out of 3 workers in three zones, five spread
 *   VMs landed 3/2/0 instead of 2/2/1, depending on where each task id made the scan start.
 *   Ranking 64 workers costs a few microseconds, so there is no reason to guess.
 * - Beyond it, like Nomad, it stops once it has `sampleSize` feasible workers (default
 *   max(2, log2 N)): the best of a few random choices balances nearly as well as the best of all,
 *   at a cost that hardly grows with the cluster. Spread then picks the least loaded zone among
 *   those sampled. That keeps zones of similar size close to even, but a zone holding a small
 *   share of the workers is rarely sampled and gets fewer VMs than an exact spread would give it.
 *
 * Only when the scan finds nothing does it look at every worker, so a request stays pending only
 * when no worker could hold it, and the explanation then counts every worker's reason.
 */
import { REJECTION_REASONS, type RejectionReason } from '../domain/placement.ts';
import { compileQuery, firstRejection, pickDriver, type Query } from './checks.ts';
import { score } from './rank.ts';
import { hashSeed } from './seed.ts';
import { ClusterSnapshot } from './snapshot.ts';
import {
  CAPACITY_REASONS,
  type PlacementExplanation,
  type PlacementRequest,
  type PlacementResult,
  type SchedulerOptions,
  type Strategy,
  type WorkerSnapshot,
} from './types.ts';

/** Up to this many candidates, every one is ranked: spread on a small cluster must be exact. */
export const FULL_SCAN_LIMIT = 64;

type Rejections = Partial<Record<RejectionReason, number>>;

/** Feasible workers to find before choosing, for a scan over `candidates` of the cluster's `workers`. */
export function defaultSampleSize(workers: number, candidates = workers): number {
  if (candidates <= FULL_SCAN_LIMIT) return candidates;
  return Math.max(2, Math.ceil(Math.log2(Math.max(workers, 1))));
}

interface Scan {
  evaluated: number;
  feasible: number;
  rejected: Rejections;
  best: WorkerSnapshot | null;
  bestScore: number;
}

export function place(
  cluster: ClusterSnapshot | readonly WorkerSnapshot[],
  request: PlacementRequest,
  options: SchedulerOptions,
): PlacementResult {
  const snapshot = cluster instanceof ClusterSnapshot ? cluster : new ClusterSnapshot(cluster);
  const strategy = request.strategy ?? options.strategy;
  const query = compileQuery(request, options);
  const { best, bestScore, evaluated, feasible, rejected } = scan(snapshot, query, strategy, options.sampleSize);
  if (!best) return { placement: null, explanation: explainPending(snapshot, query, strategy) };

  const total = snapshot.workers.length;
  const chosen = { worker_id: best.id, driver: pickDriver(best, request)!, score: round(bestScore) };
  const sampled = evaluated < total;
  const explanation: PlacementExplanation = {
    evaluated,
    feasible,
    rejected,
    strategy,
    chosen,
    workers: total,
    sampled,
  };
  return { placement: chosen, explanation };
}

/** Walks the candidate list from the request's offset, ranking feasible workers until it has enough. */
function scan(snapshot: ClusterSnapshot, query: Query, strategy: Strategy, sampleSize: number | undefined): Scan {
  const candidates = snapshot.candidates(query.request);
  const n = candidates.length;
  const want = sampleSize ?? defaultSampleSize(snapshot.workers.length, n);
  const start = n > 0 ? hashSeed(query.request.seed ?? '') % n : 0;
  const result: Scan = { evaluated: 0, feasible: 0, rejected: {}, best: null, bestScore: -Infinity };
  for (let i = 0; i < n && result.feasible < want; i++) {
    const worker = candidates[(start + i) % n]!;
    result.evaluated++;
    const reason = firstRejection(worker, query);
    if (reason) {
      tally(result.rejected, reason);
      continue;
    }
    result.feasible++;
    const s = score(worker, query.request, strategy, snapshot.zoneLoad, snapshot.totalVms);
    if (outranks(s, worker, result)) {
      result.best = worker;
      result.bestScore = s;
    }
  }
  return result;
}

/** Ties go to the smaller id: the answer depends only on the snapshot and the request. */
function outranks(s: number, worker: WorkerSnapshot, current: Scan): boolean {
  if (current.best === null || s > current.bestScore) return true;
  return s === current.bestScore && worker.id < current.best.id;
}

/** Nothing fits: every worker is checked, so the reasons cover the whole cluster. */
function explainPending(snapshot: ClusterSnapshot, query: Query, strategy: Strategy): PlacementExplanation {
  const rejected: Rejections = {};
  for (const worker of snapshot.workers) tally(rejected, firstRejection(worker, query) ?? REJECTION_REASONS.notSampled);
  const total = snapshot.workers.length;
  const reason = summarise(total, rejected);
  return { evaluated: total, feasible: 0, rejected, strategy, chosen: null, workers: total, sampled: false, reason };
}

function tally(rejected: Rejections, reason: RejectionReason): void {
  rejected[reason] = (rejected[reason] ?? 0) + 1;
}

/** Every named reason, for walking a tally without casting its keys. */
const ALL_REASONS: readonly RejectionReason[] = Object.values(REJECTION_REASONS);

/** One sentence for "why is my VM pending?": the reasons, most frequent first. */
export function summarise(total: number, rejected: Rejections): string {
  if (total === 0) return 'no workers registered';
  const counts = ALL_REASONS.flatMap((reason) => {
    const count = rejected[reason];
    return count ? [{ reason, count }] : [];
  });
  counts.sort((a, b) => b.count - a.count || (a.reason < b.reason ? -1 : 1));
  const allCapacity = counts.every(({ reason }) => CAPACITY_REASONS.has(reason));
  const detail = counts.map(({ reason, count }) => `${count} × ${reason}`).join(', ');
  return `${allCapacity ? 'insufficient capacity' : 'no feasible worker'}: ${detail}`;
}

function round(n: number): number {
  return Math.round(n * 10_000) / 10_000;
}
