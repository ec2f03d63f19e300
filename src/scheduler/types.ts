/** What the scheduler reads and returns. No I/O anywhere in this folder. */
import type { DriverName, Worker } from '../domain/index.ts';

export const STRATEGIES = ['binpack', 'spread'] as const;
export type Strategy = (typeof STRATEGIES)[number];

/** A label constraint: an exact value, or one of a set. */
export type LabelConstraint = string | { in: string[] };

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
  /** Feasible workers to find before choosing the best; default max(2, log2 N). */
  sampleSize?: number;
}

export interface Placement {
  worker_id: string;
  driver: DriverName;
  score: number;
}

export interface PlacementExplanation {
  /** Workers in the snapshot. */
  workers: number;
  /** Workers looked at (fewer than `workers` when the scan stopped early: `sampled`). */
  evaluated: number;
  sampled: boolean;
  /** Workers that passed every check. */
  feasible: number;
  /** Per reason, how many workers it rejected. */
  rejected: Record<string, number>;
  strategy: Strategy;
  chosen: Placement | null;
  /** Filled when nothing fits: one sentence for a person. */
  reason?: string;
}

export interface PlacementResult {
  placement: Placement | null;
  explanation: PlacementExplanation;
}
