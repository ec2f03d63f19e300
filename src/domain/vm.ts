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
}

export interface VmFilter {
  status?: VmStatus;
  worker_id?: string;
  name?: string;
  include_deleted?: boolean;
  limit?: number;
}
