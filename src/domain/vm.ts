/**
 * A VM's life, as the API and the database spell it:
 *
 *   created ──► starting ──► running ──► stopping ──► stopped
 *      │            │           ▲                        │
 *      └────────────┴──► failed │◄───────── start ───────┘
 *
 * `deleted` is not a status: a deleted VM keeps its row with `deleted_at` set, so that its tasks
 * and executions stay explainable.
 */
export const VM_STATUSES = ['created', 'starting', 'running', 'stopping', 'stopped', 'failed'] as const;
export type VmStatus = (typeof VM_STATUSES)[number];

export const DRIVER_NAMES = ['firecracker', 'qemu', 'sandbox', 'process'] as const;
export type DriverName = (typeof DRIVER_NAMES)[number];

export interface VmRequirements {
  vcpus: number;
  memory_mb: number;
  disk_gb: number;
}

/** What a VM gets when the request does not say: the one place these defaults live. */
export const VM_DEFAULTS: Readonly<VmRequirements> = { vcpus: 1, memory_mb: 256, disk_gb: 1 };

/**
 * The phases of a VM's start, in order: the create written, a worker chosen, the task claimed by
 * that worker, the VMM launched by its driver, the guest agent answering, the VM reported running.
 */
export const VM_BOOT_PHASES = ['accepted', 'placed', 'delivered', 'driver_started', 'agent_ready', 'running'] as const;
export type VmBootPhase = (typeof VM_BOOT_PHASES)[number];
/** When each phase was reached (a phase reached again keeps its latest time). */
export type VmPhases = Partial<Record<VmBootPhase, Date>>;

/** The seconds spent reaching each phase from the one before it that was recorded. */
export function phaseDurations(phases: VmPhases): { phase: VmBootPhase; seconds: number }[] {
  const out: { phase: VmBootPhase; seconds: number }[] = [];
  let previous: Date | undefined;
  for (const phase of VM_BOOT_PHASES) {
    const at = phases[phase];
    if (!at) continue;
    if (previous) out.push({ phase, seconds: Math.max(0, (at.getTime() - previous.getTime()) / 1000) });
    previous = at;
  }
  return out;
}

export interface Vm extends VmRequirements {
  id: string;
  name: string;
  status: VmStatus;
  driver: DriverName | null;
  worker_id: string | null;
  zone: string | null;
  labels: Record<string, string>;
  image: string | null;
  error: string | null;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
  /** The boot waterfall: when each phase of its start was reached. */
  phases: VmPhases;
}

export interface VmFilter {
  status?: VmStatus;
  worker_id?: string;
  name?: string;
  include_deleted?: boolean;
  limit?: number;
}
