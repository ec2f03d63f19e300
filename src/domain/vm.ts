/**
 * A VM's life, as the API and the database spell it:
 *
 *   created ──► starting ──► running ──► stopping ──► stopped
 *      │            │         ▲  │  ▲                    │
 *      └────────────┴──► failed  │  └──────── start ─────┘
 *                                ▼
 *                   unknown ──► lost
 *
 * `failed`: the create failed (capacity returned), or the VM died by itself on its host (its init
 * or VMM exited, or it ran out of memory): then it keeps its reservation until it is deleted, since
 * its directory and disk are still on that host.
 * `unknown`: its worker stopped answering (offline); it goes back to `running` if the worker returns
 * and finds it, or becomes `lost` after `worker.lost_after`: its capacity is returned, and should
 * the worker come back with it, the worker stops it.
 *
 * `deleted` is not a status: a deleted VM keeps its row with `deleted_at` set, so that its tasks
 * and executions stay explainable.
 */
export const VM_STATUSES = [
  'created',
  'starting',
  'running',
  'stopping',
  'stopped',
  'failed',
  'unknown',
  'lost',
] as const;
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

/** One reached phase of a boot: when, how long after the first phase, how long after the one before. */
export interface WaterfallStep {
  phase: VmBootPhase;
  at: Date;
  since_start_ms: number;
  step_ms: number;
}

/**
 * The phases reached, in boot order, with their offsets: what `aetherium vm get` and the web UI
 * draw. Takes the API's strings as well as Dates. A phase skipped (not recorded) is left out.
 */
export function bootWaterfall(phases: Partial<Record<VmBootPhase, Date | string>>): WaterfallStep[] {
  const out: WaterfallStep[] = [];
  let first: number | undefined;
  let previous: number | undefined;
  for (const phase of VM_BOOT_PHASES) {
    const given = phases[phase];
    if (!given) continue;
    const at = new Date(given);
    const ms = at.getTime();
    if (Number.isNaN(ms)) continue;
    first ??= ms;
    out.push({ phase, at, since_start_ms: Math.max(0, ms - first), step_ms: Math.max(0, ms - (previous ?? ms)) });
    previous = ms;
  }
  return out;
}

/** The seconds spent reaching each phase from the one before it that was recorded. */
export function phaseDurations(phases: VmPhases): { phase: VmBootPhase; seconds: number }[] {
  return bootWaterfall(phases)
    .slice(1)
    .map((step) => ({ phase: step.phase, seconds: step.step_ms / 1000 }));
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

/** The least memory and CPU a VM must ask for to boot and run a command on a driver. */
export interface DriverMinimum {
  memory_mb: number;
  vcpus: number;
}

/**
 * Per driver, what a VM needs at least. qemu was measured with the guest image of image/build.sh
 * (Debian cloud kernel): 84 MB boots with 8 MB to spare, 80 MB panics out of memory while its
 * drivers load, 32 MB never starts the kernel and 16 MB spins a host core without printing a line;
 * 96 MB leaves room for more vCPUs. Firecracker boots the operator's own kernel, which cannot be
 * measured here: 128 MB is a cautious floor for a small Linux guest and its agent. A sandbox boots
 * and runs a shell in 4 MB of its memory cgroup; the process driver limits nothing. vCPUs: the VMMs need a whole one, the cgroup CPU
 * quota goes down to a hundredth of a core.
 */
export const DRIVER_MINIMUMS: Readonly<Record<DriverName, Readonly<DriverMinimum>>> = {
  firecracker: { memory_mb: 128, vcpus: 1 },
  qemu: { memory_mb: 96, vcpus: 1 },
  sandbox: { memory_mb: 8, vcpus: 0.01 },
  process: { memory_mb: 4, vcpus: 0.01 },
};

/** Why `vm` is too small for `driver` (one sentence), or null when it meets the driver's minimum. */
export function belowDriverMinimum(driver: DriverName, vm: Pick<VmRequirements, 'memory_mb' | 'vcpus'>): string | null {
  const min = DRIVER_MINIMUMS[driver];
  if (vm.memory_mb < min.memory_mb)
    return `the ${driver} driver needs at least ${min.memory_mb} MB of memory to boot a VM; ${vm.memory_mb} MB was asked for`;
  if (vm.vcpus < min.vcpus)
    return `the ${driver} driver needs at least ${min.vcpus} vCPU${min.vcpus === 1 ? '' : 's'}; ${vm.vcpus} was asked for`;
  return null;
}
