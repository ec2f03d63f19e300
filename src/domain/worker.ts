/**
 * A worker is one host running the agent. Its capacity and the capacity the scheduler has promised
 * away (`used_*`, `vm_count`) live on the same row so that a reservation is one conditional UPDATE.
 *
 *            register            drain                 activate
 *   (new) ───────────► active ─────────► draining ───────────► active
 *                        │  ▲                │
 *       heartbeats stop  │  │ heartbeat      │ heartbeats stop
 *                        ▼  │ resumes        ▼
 *                       offline ◄────────────┘
 */
export const WORKER_STATUSES = ['active', 'draining', 'offline'] as const;
export type WorkerStatus = (typeof WORKER_STATUSES)[number];

export interface WorkerResources {
  cpu_cores: number;
  memory_mb: number;
  disk_gb: number;
  max_vms: number;
}

/** What the scheduler has reserved on a worker: the sum of the VMs placed there. */
export interface WorkerUsage {
  used_cpu_cores: number;
  used_memory_mb: number;
  used_disk_gb: number;
  vm_count: number;
}

/** A drain in progress (or finished): what the operator asked and how far it got. */
export interface DrainState {
  started_at: Date;
  /** null: no deadline, the VMs may run to their end. */
  deadline: Date | null;
  message: string | null;
  /** When the VMs still there at the deadline were told to stop. */
  enforced_at: Date | null;
  /** When the last VM was gone: only then is the drain complete. */
  drained_at: Date | null;
}

export interface Worker extends WorkerResources, WorkerUsage {
  id: string;
  hostname: string;
  address: string;
  status: WorkerStatus;
  /** False while the operator has switched off new placements (drain turns it off too). */
  eligible: boolean;
  last_seen: Date;
  started_at: Date;
  zone: string;
  labels: Record<string, string>;
  capabilities: string[];
  /** Seconds after the last heartbeat at which the worker stops being healthy. */
  ttl_seconds: number;
  metadata: Record<string, unknown>;
  /** Set from a drain call until the worker is activated again. */
  drain: DrainState | null;
}

/** What a worker says about itself when it registers. */
export type WorkerRegistration = Omit<
  Worker,
  keyof WorkerUsage | 'status' | 'eligible' | 'last_seen' | 'started_at' | 'drain'
> & {
  started_at?: Date;
};

export interface WorkerFilter {
  status?: WorkerStatus;
  zone?: string;
  labels?: Record<string, string>;
  capabilities?: string[];
}

/** One sample of what the host really uses, kept as history in `worker_metrics`. */
export interface WorkerMetricSample {
  worker_id: string;
  timestamp: Date;
  cpu_usage: number;
  memory_usage: number;
  disk_usage: number;
  vm_count: number;
  tasks_processed: number;
  network_in_mb: number;
  network_out_mb: number;
}

export function isHealthy(worker: Pick<Worker, 'last_seen' | 'ttl_seconds' | 'status'>, now: Date): boolean {
  if (worker.status === 'offline') return false;
  return now.getTime() - worker.last_seen.getTime() < worker.ttl_seconds * 1000;
}

/** What an operator (or a worker shutting down) asks of a drain. */
export interface DrainRequest {
  deadline_seconds?: number;
  /** Stop everything now: the deadline is the moment of the call. */
  force?: boolean;
  /** Let the VMs run to their end; the drain completes when the last one is deleted. */
  no_deadline?: boolean;
  message?: string;
}
