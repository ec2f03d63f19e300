/**
 * Feasibility is a chain of small checks, one concern each. A check returns the reason it rejects a
 * worker, or null. The reasons are the answer to "why is my VM pending?".
 *
 * Checks read a `Query`: the request compiled once per placement (label constraints as a list, the
 * exclusions as a set, the clock as a number), so that checking a worker allocates nothing.
 */
import type { LabelConstraint, PlacementRequest, SchedulerOptions, WorkerSnapshot } from './types.ts';

export interface Query {
  request: PlacementRequest;
  labels: [string, LabelConstraint][];
  exclude: ReadonlySet<string> | null;
  nowMs: number;
  maxCreatesInFlight: number;
}

export function compileQuery(request: PlacementRequest, options: SchedulerOptions): Query {
  return {
    request,
    labels: Object.entries(request.labels ?? {}),
    exclude: request.exclude?.length ? new Set(request.exclude) : null,
    nowMs: options.now.getTime(),
    maxCreatesInFlight: options.maxCreatesInFlight,
  };
}

export type Check = (worker: WorkerSnapshot, query: Query) => string | null;

/** Reasons that mean "full", as opposed to "wrong kind of worker". */
export const CAPACITY_REASONS = new Set(['insufficient cpu', 'insufficient memory', 'insufficient disk', 'no vm slots', 'too many creates in flight']);

/**
 * The driver a VM gets when it asks for none. Firecracker is the production microVM; qemu comes
 * after the sandbox because without KVM it runs under software emulation (seconds to boot, ~240 MB
 * each), so it is used when asked for (`driver: qemu`) or when nothing else is there.
 */
export const DRIVER_PREFERENCE = ['firecracker', 'sandbox', 'qemu', 'process'] as const;

export function labelMatches(value: string | undefined, constraint: LabelConstraint): boolean {
  if (value === undefined) return false;
  return typeof constraint === 'string' ? value === constraint : constraint.in.includes(value);
}

export const CHECKS: readonly Check[] = [
  (w, q) => (q.exclude?.has(w.id) ? 'refused earlier' : null),
  (w) => (w.status === 'active' ? null : `worker ${w.status}`),
  (w) => (w.eligible ? null : 'worker ineligible'),
  (w, q) => (q.nowMs - w.last_seen.getTime() < w.ttl_seconds * 1000 ? null : 'worker unhealthy'),
  (w, q) => (q.request.zone && w.zone !== q.request.zone ? 'zone mismatch' : null),
  (w, q) => {
    for (const [key, constraint] of q.labels) if (!labelMatches(w.labels[key], constraint)) return 'label mismatch';
    return null;
  },
  (w, q) => (pickDriver(w, q.request) ? null : q.request.driver ? `driver ${q.request.driver} unavailable` : 'no vm driver'),
  (w, q) => (w.used_cpu_cores + q.request.vcpus <= w.cpu_cores ? null : 'insufficient cpu'),
  (w, q) => (w.used_memory_mb + q.request.memory_mb <= w.memory_mb ? null : 'insufficient memory'),
  (w, q) => (w.used_disk_gb + q.request.disk_gb <= w.disk_gb ? null : 'insufficient disk'),
  (w) => (w.vm_count < w.max_vms ? null : 'no vm slots'),
  (w, q) => ((w.creates_in_flight ?? 0) < q.maxCreatesInFlight ? null : 'too many creates in flight'),
];

/** The driver a VM gets on this worker: the one asked for, else the strongest isolation it offers. */
export function pickDriver(worker: Pick<WorkerSnapshot, 'capabilities'>, request: Pick<PlacementRequest, 'driver'>): (typeof DRIVER_PREFERENCE)[number] | null {
  if (request.driver) return worker.capabilities.includes(request.driver) ? request.driver : null;
  for (const driver of DRIVER_PREFERENCE) if (worker.capabilities.includes(driver)) return driver;
  return null;
}

export function firstRejection(worker: WorkerSnapshot, query: Query): string | null {
  for (const check of CHECKS) {
    const reason = check(worker, query);
    if (reason) return reason;
  }
  return null;
}
