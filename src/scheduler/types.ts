/**
 * What the scheduler reads and returns. No I/O anywhere in this folder.
 *
 * The placement vocabulary (strategies, label constraints, rejection reasons, the explanation) is the
 * domain's, because the task row keeps it; it is re-exported here so importers of the scheduler
 * need not know where it lives.
 */
import type { DriverName, Worker } from '../domain/index.ts';
import type { LabelConstraint, Placement, PlacementExplanation, Strategy } from '../domain/placement.ts';

export { CAPACITY_REASONS, REJECTION_REASONS, STRATEGIES } from '../domain/placement.ts';
export type {
  LabelConstraint,
  Placement,
  PlacementExplanation,
  RejectionReason,
  Strategy,
} from '../domain/placement.ts';

export interface PlacementRequest {
  vcpus: number;
  memory_mb: number;
  disk_gb: number;
  zone?: string | null;
  labels?: Record<string, LabelConstraint>;
  driver?: DriverName | null;
  strategy?: Strategy;
  /** Workers already tried and found wanting (they refused the create): never chosen again. */
  exclude?: string[];
  /** Where the scan starts is derived from this (the task id): same seed, same answer. */
  seed?: string;
}

/** The part of a worker the scheduler looks at, plus the creates already under way there. */
export type WorkerSnapshot = Pick<
  Worker,
  | 'id'
  | 'status'
  | 'eligible'
  | 'last_seen'
  | 'ttl_seconds'
  | 'zone'
  | 'labels'
  | 'capabilities'
  | 'cpu_cores'
  | 'memory_mb'
  | 'disk_gb'
  | 'max_vms'
  | 'used_cpu_cores'
  | 'used_memory_mb'
  | 'used_disk_gb'
  | 'vm_count'
> & { creates_in_flight?: number };

export interface SchedulerOptions {
  now: Date;
  strategy: Strategy;
  maxCreatesInFlight: number;
  /**
   * Feasible workers to find before choosing the best; default every candidate up to
   * FULL_SCAN_LIMIT of them, else max(2, log2 N) (see place.ts).
   */
  sampleSize?: number;
}

export interface PlacementResult {
  placement: Placement | null;
  explanation: PlacementExplanation;
}
