/**
 * Feasibility is a chain of small checks, one concern each. A check returns the reason it rejects a
 * worker, or null. The reasons are the answer to "why is my VM pending?".
 */
import { isHealthy } from '../domain/index.ts';
import type { LabelConstraint, PlacementRequest, SchedulerOptions, WorkerSnapshot } from './types.ts';

export type Check = (worker: WorkerSnapshot, request: PlacementRequest, options: SchedulerOptions) => string | null;

/** Reasons that mean "full", as opposed to "wrong kind of worker". */
export const CAPACITY_REASONS = new Set(['insufficient cpu', 'insufficient memory', 'insufficient disk', 'no vm slots', 'too many creates in flight']);

export const DRIVER_PREFERENCE = ['firecracker', 'qemu', 'sandbox', 'process'] as const;

export function labelMatches(value: string | undefined, constraint: LabelConstraint): boolean {
  if (value === undefined) return false;
  return typeof constraint === 'string' ? value === constraint : constraint.in.includes(value);
}

export const CHECKS: readonly Check[] = [
  (w, r) => (r.exclude?.includes(w.id) ? 'refused earlier' : null),
  (w) => (w.status === 'active' ? null : `worker ${w.status}`),
  (w) => (w.eligible ? null : 'worker ineligible'),
  (w, _r, o) => (isHealthy(w, o.now) ? null : 'worker unhealthy'),
  (w, r) => (r.zone && w.zone !== r.zone ? 'zone mismatch' : null),
  (w, r) => {
    for (const [key, constraint] of Object.entries(r.labels ?? {})) {
      if (!labelMatches(w.labels[key], constraint)) return 'label mismatch';
    }
    return null;
  },
  (w, r) => (pickDriver(w, r) ? null : r.driver ? `driver ${r.driver} unavailable` : 'no vm driver'),
  (w, r) => (w.used_cpu_cores + r.vcpus <= w.cpu_cores ? null : 'insufficient cpu'),
  (w, r) => (w.used_memory_mb + r.memory_mb <= w.memory_mb ? null : 'insufficient memory'),
  (w, r) => (w.used_disk_gb + r.disk_gb <= w.disk_gb ? null : 'insufficient disk'),
  (w) => (w.vm_count < w.max_vms ? null : 'no vm slots'),
  (w, _r, o) => ((w.creates_in_flight ?? 0) < o.maxCreatesInFlight ? null : 'too many creates in flight'),
];

/** The driver a VM gets on this worker: the one asked for, else the strongest isolation it offers. */
export function pickDriver(worker: Pick<WorkerSnapshot, 'capabilities'>, request: Pick<PlacementRequest, 'driver'>): (typeof DRIVER_PREFERENCE)[number] | null {
  if (request.driver) return worker.capabilities.includes(request.driver) ? request.driver : null;
  return DRIVER_PREFERENCE.find((d) => worker.capabilities.includes(d)) ?? null;
}

export function firstRejection(worker: WorkerSnapshot, request: PlacementRequest, options: SchedulerOptions): string | null {
  for (const check of CHECKS) {
    const reason = check(worker, request, options);
    if (reason) return reason;
  }
  return null;
}
