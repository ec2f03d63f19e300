/**
 * A task is one unit of work for a worker. The tasks table holds its whole truth: the id the API
 * returns is the id you can look up, and the row carries the final result or error.
 *
 *   pending ──place──► scheduled ──claim──► running ──► completed
 *      │  ▲               │                   │    └──► failed
 *      │  └─ re-place ────┘ (worker died,     │         (retryable errors go back to scheduled
 *      │     draining or refusing)            │          with retry_count + 1 until max_retries)
 *      └──────────────► cancelled ◄───────────┘
 *
 * `Task` is a union on `type`: each type has its own payload and result. A VM's requirements
 * (vcpus, memory, disk, zone, driver) live on the VM row only; a create's payload holds just the
 * placement preferences that are not part of the VM.
 */
import { newId } from './ids.ts';
import type { LabelConstraint, PlacementRecord, Strategy } from './placement.ts';

export const TASK_TYPES = ['vm:create', 'vm:start', 'vm:stop', 'vm:delete', 'vm:execute'] as const;
export type TaskType = (typeof TASK_TYPES)[number];

export const TASK_STATUSES = ['pending', 'scheduled', 'running', 'completed', 'failed', 'cancelled'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export const FINAL_TASK_STATUSES: readonly TaskStatus[] = ['completed', 'failed', 'cancelled'];

export function isFinal(status: TaskStatus): boolean {
  return FINAL_TASK_STATUSES.includes(status);
}

/** Retries per task type: creates and deletes are idempotent and worth retrying; commands are not. */
export const MAX_RETRIES: Readonly<Record<TaskType, number>> = {
  'vm:create': 3,
  'vm:delete': 5,
  'vm:start': 3,
  'vm:stop': 3,
  'vm:execute': 0,
};

/** Where the VM may go, beyond what the VM row says. */
export interface CreatePayload {
  worker_labels: Record<string, LabelConstraint>;
  strategy: Strategy | null;
}

export interface CreateResult {
  vm_id: string;
  driver: string | null;
  boot_ms?: number;
  /** The VM was deleted while it booted: it was torn down again at once. */
  deleted_while_creating?: boolean;
}

export interface ExecPayload {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  timeout_ms?: number;
  /** Interactive: stdin and output travel over the exec channels while it runs. */
  stream?: boolean;
}

/**
 * A command's result, binary-safe as `ExecResult` (src/domain/execution.ts) says: `stdout` and
 * `stderr` are the text, exact when there is no `stdout_base64` / `stderr_base64`; when the bytes
 * are not valid UTF-8 or contain NUL, the text is a lossy preview and `*_base64` the exact bytes.
 */
export interface ExecTaskResult {
  execution_id: string;
  exit_code: number;
  stdout: string;
  stderr: string;
  stdout_base64?: string;
  stderr_base64?: string;
  timed_out: boolean;
  duration_ms: number;
}

export interface DeletePayload {
  /** Why the VM is deleted, when the system did it (a drain deadline). */
  reason?: string;
}

export interface DeleteResult {
  vm_id: string;
  deleted: true;
}

export type PowerPayload = Record<string, never>;

export interface PowerResult {
  vm_id: string;
  status: 'running' | 'stopped';
}

interface TaskBase {
  id: string;
  status: TaskStatus;
  vm_id: string | null;
  worker_id: string | null;
  error: string | null;
  retry_count: number;
  max_retries: number;
  created_at: Date;
  updated_at: Date;
  started_at: Date | null;
  completed_at: Date | null;
  /** A cancel asked for while the task ran; the worker holding it aborts it. */
  cancel_requested_at: Date | null;
  /** The request that made the task, named on every log line about it (null: made by the system). */
  trace: TaskTrace | null;
}

/** What ties a task to the API call that made it, across processes. */
export interface TaskTrace {
  /** The control plane's id of the request (its `x-request-id` answer header). */
  request_id: string;
  /** The W3C trace context the caller sent, or one the control plane began for the request. */
  traceparent: string | null;
}

export interface CreateTask extends TaskBase {
  type: 'vm:create';
  payload: CreatePayload;
  result: CreateResult | null;
  /** Why the task is still pending, or how it was placed: the scheduler's explanation. */
  placement: PlacementRecord | null;
}

export interface StartTask extends TaskBase {
  type: 'vm:start';
  payload: PowerPayload;
  result: PowerResult | null;
  placement: null;
}

export interface StopTask extends TaskBase {
  type: 'vm:stop';
  payload: PowerPayload;
  result: PowerResult | null;
  placement: null;
}

export interface DeleteTask extends TaskBase {
  type: 'vm:delete';
  payload: DeletePayload;
  result: DeleteResult | null;
  placement: null;
}

export interface ExecuteTask extends TaskBase {
  type: 'vm:execute';
  payload: ExecPayload;
  result: ExecTaskResult | null;
  placement: null;
}

export type Task = CreateTask | StartTask | StopTask | DeleteTask | ExecuteTask;
export type TaskOf<T extends TaskType> = Extract<Task, { type: T }>;
export type PayloadOf<T extends TaskType> = TaskOf<T>['payload'];
export type ResultOf<T extends TaskType> = NonNullable<TaskOf<T>['result']>;
/** Tasks dispatched to the worker that holds their VM (everything but a create). */
export type VmTaskType = Exclude<TaskType, 'vm:create'>;

export interface TaskFilter {
  status?: TaskStatus;
  type?: TaskType;
  worker_id?: string;
  vm_id?: string;
  limit?: number;
}

export interface NewTaskFields {
  id?: string;
  status?: TaskStatus;
  vm_id?: string | null;
  worker_id?: string | null;
  error?: string | null;
  started_at?: Date | null;
  completed_at?: Date | null;
  trace?: TaskTrace | null;
}

/** A fresh task row of one type, with its own payload; the one place task defaults live. */
export function newTask<T extends TaskType>(
  type: T,
  payload: PayloadOf<T>,
  fields?: NewTaskFields & { result?: ResultOf<T> | null },
): TaskOf<T>;
export function newTask(
  type: TaskType,
  payload: Task['payload'],
  fields: NewTaskFields & { result?: Task['result'] } = {},
): Task {
  const now = new Date();
  const { id, result, ...rest } = fields;
  // The overload ties payload and result to the type; the members differ in nothing else.
  return {
    id: id ?? newId(),
    type,
    status: 'pending',
    vm_id: null,
    worker_id: null,
    payload,
    result: result ?? null,
    error: null,
    placement: null,
    retry_count: 0,
    max_retries: MAX_RETRIES[type],
    created_at: now,
    updated_at: now,
    started_at: null,
    completed_at: null,
    cancel_requested_at: null,
    trace: null,
    ...rest,
  } as Task;
}

/** The reason a task records when a person cancelled it. */
export const CANCELLED_BY_REQUEST = 'cancelled by request';
