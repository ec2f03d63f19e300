/**
 * What a VM asks of its host, and the scheduler's account of where it went and why. The scheduler
 * (src/scheduler) computes these; the task row keeps them, so "why is my VM pending?" and "why did
 * it land there?" always have an answer.
 */
import type { DriverName } from './vm.ts';

export const STRATEGIES = ['binpack', 'spread'] as const;
export type Strategy = (typeof STRATEGIES)[number];

/** A label constraint: an exact value, or one of a set. */
export type LabelConstraint = string | { in: string[] };

/**
 * Why a worker cannot take a VM: one named reason per feasibility check, in the order the checks
 * run. The values are the words the API and the pending explanation show.
 */
export const REJECTION_REASONS = {
  refusedEarlier: 'refused earlier',
  workerDraining: 'worker draining',
  workerOffline: 'worker offline',
  workerIneligible: 'worker ineligible',
  workerUnhealthy: 'worker unhealthy',
  zoneMismatch: 'zone mismatch',
  labelMismatch: 'label mismatch',
  driverUnavailable: 'driver unavailable',
  belowDriverMinimum: 'below driver minimum',
  noVmDriver: 'no vm driver',
  insufficientCpu: 'insufficient cpu',
  insufficientMemory: 'insufficient memory',
  insufficientDisk: 'insufficient disk',
  noVmSlots: 'no vm slots',
  tooManyCreatesInFlight: 'too many creates in flight',
  notSampled: 'not sampled',
} as const;
export type RejectionReason = (typeof REJECTION_REASONS)[keyof typeof REJECTION_REASONS];

/** Reasons that mean "full", as opposed to "wrong kind of worker". */
export const CAPACITY_REASONS: ReadonlySet<RejectionReason> = new Set([
  REJECTION_REASONS.insufficientCpu,
  REJECTION_REASONS.insufficientMemory,
  REJECTION_REASONS.insufficientDisk,
  REJECTION_REASONS.noVmSlots,
  REJECTION_REASONS.tooManyCreatesInFlight,
]);

export interface Placement {
  worker_id: string;
  driver: DriverName;
  score: number;
}

/** One placement decision of the pure scheduler. */
export interface PlacementExplanation {
  /** Workers in the snapshot. */
  workers: number;
  /** Workers looked at (fewer than `workers` when the scan stopped early: `sampled`). */
  evaluated: number;
  sampled: boolean;
  /** Workers that passed every check. */
  feasible: number;
  /** Per named reason, how many workers it rejected. */
  rejected: Partial<Record<RejectionReason, number>>;
  strategy: Strategy;
  chosen: Placement | null;
  /** Filled when nothing fits, or when the task was handed back: one sentence for a person. */
  reason?: string;
}

/**
 * What a `vm:create` task's row keeps: the last explanation, when it was placed, and the trail of
 * workers it was taken away from (dead, draining) or that refused it (never chosen again).
 */
export interface PlacementRecord extends PlacementExplanation {
  placed_at: string | null;
  /** Workers the task was placed on before and taken back from, oldest first. */
  moved_from: string[];
  /** Workers that refused the VM: the scheduler never picks them again for this task. */
  excluded: string[];
}

/** The trail a new explanation inherits from the record before it. */
export function placementRecord(
  explanation: PlacementExplanation,
  previous: PlacementRecord | null,
  placedAt: Date | null,
): PlacementRecord {
  return {
    ...explanation,
    placed_at: placedAt?.toISOString() ?? null,
    moved_from: previous?.moved_from ?? [],
    excluded: previous?.excluded ?? [],
  };
}
