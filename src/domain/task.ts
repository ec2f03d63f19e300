/**
 * A task is one unit of work for a worker. The tasks table holds its whole truth: the id the API
 * returns is the id you can look up, and the row carries the final result or error.
 *
 *   pending ──place──► scheduled ──pull──► running ──► completed
 *      │  ▲               │                   │    └──► failed
 *      │  └─ re-place ────┘ (worker died      │
 *      │     or is draining)                  │
 *      └──────────────► cancelled ◄───────────┘
 */
export const TASK_TYPES = ['vm:create', 'vm:start', 'vm:stop', 'vm:delete', 'vm:execute'] as const;
export type TaskType = (typeof TASK_TYPES)[number];

export const TASK_STATUSES = ['pending', 'scheduled', 'running', 'completed', 'failed', 'cancelled'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export const FINAL_TASK_STATUSES: readonly TaskStatus[] = ['completed', 'failed', 'cancelled'];

export function isFinal(status: TaskStatus): boolean {
  return FINAL_TASK_STATUSES.includes(status);
}

export interface ExecPayload {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  timeout_ms?: number;
}

export interface Task {
  id: string;
  type: TaskType;
  status: TaskStatus;
  vm_id: string | null;
  worker_id: string | null;
  payload: Record<string, unknown>;
  result: Record<string, unknown> | null;
  error: string | null;
  /** Why the task is still pending, or how it was placed: the scheduler's explanation. */
  placement: Record<string, unknown> | null;
  retry_count: number;
  max_retries: number;
  created_at: Date;
  updated_at: Date;
  started_at: Date | null;
  completed_at: Date | null;
  /** A cancel asked for while the task ran; the worker holding it aborts it. */
  cancel_requested_at: Date | null;
}

export interface TaskFilter {
  status?: TaskStatus;
  type?: TaskType;
  worker_id?: string;
  vm_id?: string;
  limit?: number;
}
