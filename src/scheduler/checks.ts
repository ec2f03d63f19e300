/**
 * Feasibility is a chain of small named checks, one concern each, like Nomad's feasibility
 * checkers. A check returns the named reason it rejects a worker (a `REJECTION_REASONS` constant,
 * never free text, so the pending explanation can count by it), or null.
 *
 * Checks read a `Query`: the request compiled once per placement (label constraints as a list, the
 * exclusions as a set, the clock as a number), so that checking a worker allocates nothing.
 */
import type { WorkerStatus } from '../domain/index.ts';
import { DRIVER_MINIMUMS, type DriverName } from '../domain/vm.ts';
import { type LabelConstraint, REJECTION_REASONS, type RejectionReason } from '../domain/placement.ts';
import type { PlacementRequest, SchedulerOptions, WorkerSnapshot } from './types.ts';

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

export type Check = (worker: WorkerSnapshot, query: Query) => RejectionReason | null;

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

/**
 * Why a worker with the right drivers still cannot take the VM: it asks for less memory or CPU than
 * every usable driver needs to boot (DRIVER_MINIMUMS).
 */
export const BELOW_DRIVER_MINIMUM: RejectionReason = REJECTION_REASONS.belowDriverMinimum;

/** The VM is at least as big as the driver needs (a request that says nothing of its size is taken as fitting). */
export function meetsDriverMinimum(
  driver: DriverName,
  request: Partial<Pick<PlacementRequest, 'memory_mb' | 'vcpus'>>,
): boolean {
  const min = DRIVER_MINIMUMS[driver];
  return (request.memory_mb ?? Infinity) >= min.memory_mb && (request.vcpus ?? Infinity) >= min.vcpus;
}

/**
 * The driver a VM gets on this worker: the one asked for, else the strongest isolation it offers
 * among the drivers the VM is big enough for (a 32 MB VM goes to the sandbox, not to qemu, whose
 * guest does not boot in that).
 */
export function pickDriver(
  worker: Pick<WorkerSnapshot, 'capabilities'>,
  request: Pick<PlacementRequest, 'driver'> & Partial<Pick<PlacementRequest, 'memory_mb' | 'vcpus'>>,
): (typeof DRIVER_PREFERENCE)[number] | null {
  if (request.driver)
    return worker.capabilities.includes(request.driver) && meetsDriverMinimum(request.driver, request)
      ? request.driver
      : null;
  for (const driver of DRIVER_PREFERENCE)
    if (worker.capabilities.includes(driver) && meetsDriverMinimum(driver, request)) return driver;
  return null;
}

/** A worker that refused this VM once is not asked again (it would refuse again). */
export function notExcluded(worker: WorkerSnapshot, query: Query): RejectionReason | null {
  return query.exclude?.has(worker.id) ? REJECTION_REASONS.refusedEarlier : null;
}

/** Typed by status, so a new worker status does not compile until it has a reason. */
const NOT_ACTIVE: Readonly<Record<Exclude<WorkerStatus, 'active'>, RejectionReason>> = {
  draining: REJECTION_REASONS.workerDraining,
  offline: REJECTION_REASONS.workerOffline,
};

export function workerActive(worker: WorkerSnapshot): RejectionReason | null {
  return worker.status === 'active' ? null : NOT_ACTIVE[worker.status];
}

export function workerEligible(worker: WorkerSnapshot): RejectionReason | null {
  return worker.eligible ? null : REJECTION_REASONS.workerIneligible;
}

/** Still marked active, but its heartbeat is older than its TTL: the reaper has not caught up yet. */
export function workerHealthy(worker: WorkerSnapshot, query: Query): RejectionReason | null {
  const fresh = query.nowMs - worker.last_seen.getTime() < worker.ttl_seconds * 1000;
  return fresh ? null : REJECTION_REASONS.workerUnhealthy;
}

export function zoneMatches(worker: WorkerSnapshot, query: Query): RejectionReason | null {
  const zone = query.request.zone;
  return zone && worker.zone !== zone ? REJECTION_REASONS.zoneMismatch : null;
}

export function labelsMatch(worker: WorkerSnapshot, query: Query): RejectionReason | null {
  for (const [key, constraint] of query.labels) {
    if (!labelMatches(worker.labels[key], constraint)) return REJECTION_REASONS.labelMismatch;
  }
  return null;
}

/**
 * Asked for a driver the worker lacks, or asked for none and the worker offers no VM driver at all;
 * or the worker has the driver(s) but the VM is smaller than they can boot.
 */
export function driverAvailable(worker: WorkerSnapshot, query: Query): RejectionReason | null {
  if (pickDriver(worker, query.request)) return null;
  const { driver } = query.request;
  if (driver) return worker.capabilities.includes(driver) ? BELOW_DRIVER_MINIMUM : REJECTION_REASONS.driverUnavailable;
  const hasAny = DRIVER_PREFERENCE.some((d) => worker.capabilities.includes(d));
  return hasAny ? BELOW_DRIVER_MINIMUM : REJECTION_REASONS.noVmDriver;
}

export function cpuFits(worker: WorkerSnapshot, query: Query): RejectionReason | null {
  return worker.used_cpu_cores + query.request.vcpus <= worker.cpu_cores ? null : REJECTION_REASONS.insufficientCpu;
}

export function memoryFits(worker: WorkerSnapshot, query: Query): RejectionReason | null {
  const fits = worker.used_memory_mb + query.request.memory_mb <= worker.memory_mb;
  return fits ? null : REJECTION_REASONS.insufficientMemory;
}

export function diskFits(worker: WorkerSnapshot, query: Query): RejectionReason | null {
  return worker.used_disk_gb + query.request.disk_gb <= worker.disk_gb ? null : REJECTION_REASONS.insufficientDisk;
}

export function vmSlotFree(worker: WorkerSnapshot): RejectionReason | null {
  return worker.vm_count < worker.max_vms ? null : REJECTION_REASONS.noVmSlots;
}

/** Boots are heavy (image copy, VM start): a worker takes only so many at once. */
export function createsInFlightBelowLimit(worker: WorkerSnapshot, query: Query): RejectionReason | null {
  const below = (worker.creates_in_flight ?? 0) < query.maxCreatesInFlight;
  return below ? null : REJECTION_REASONS.tooManyCreatesInFlight;
}

/**
 * The chain, in order: a worker is rejected for the first check it fails. Who the worker is and
 * its state come first, then the request's constraints, then room: so "full" is only said of a
 * worker that could otherwise hold the VM, and `insufficient capacity` means exactly that.
 */
export const CHECKS: readonly Check[] = [
  notExcluded,
  workerActive,
  workerEligible,
  workerHealthy,
  zoneMatches,
  labelsMatch,
  driverAvailable,
  cpuFits,
  memoryFits,
  diskFits,
  vmSlotFree,
  createsInFlightBelowLimit,
];

export function firstRejection(worker: WorkerSnapshot, query: Query): RejectionReason | null {
  for (const check of CHECKS) {
    const reason = check(worker, query);
    if (reason) return reason;
  }
  return null;
}
