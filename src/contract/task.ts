/** Tasks: one schema per task type (its payload and result), and the placement explanation. */
import * as z from 'zod';
import { REJECTION_REASONS, STRATEGIES } from '../domain/placement.ts';
import { TASK_STATUSES } from '../domain/task.ts';
import { DRIVER_NAMES } from '../domain/vm.ts';
import { nullableTimestamp, timestamp, total } from './wire.ts';

const REASONS = Object.values(REJECTION_REASONS) as [string, ...string[]];
const labelConstraint = z.union([z.string(), z.object({ in: z.array(z.string()) })]);

export const placement = z.object({ worker_id: z.string(), driver: z.enum(DRIVER_NAMES), score: z.number() });

export const placementExplanation = z.object({
  workers: z.number().int(),
  evaluated: z.number().int(),
  sampled: z.boolean(),
  feasible: z.number().int(),
  /** Per named reason, how many workers it rejected. */
  rejected: z.partialRecord(z.enum(REASONS), z.number().int()),
  strategy: z.enum(STRATEGIES),
  chosen: placement.nullable(),
  reason: z.string().optional(),
});

export const placementRecord = placementExplanation
  .extend({
    placed_at: z.string().nullable(),
    moved_from: z.array(z.string()),
    excluded: z.array(z.string()),
  })
  .meta({ id: 'PlacementRecord' });

const base = {
  id: z.string(),
  status: z.enum(TASK_STATUSES),
  vm_id: z.string().nullable(),
  worker_id: z.string().nullable(),
  error: z.string().nullable(),
  retry_count: z.number().int(),
  max_retries: z.number().int(),
  created_at: timestamp,
  updated_at: timestamp,
  started_at: nullableTimestamp,
  completed_at: nullableTimestamp,
  cancel_requested_at: nullableTimestamp,
  /** The API request that made it (null: made by the system): grep the logs of any process for these. */
  trace: z
    .object({
      request_id: z.string(),
      /** W3C trace context of the request's span, whose trace the task's work joins. */
      traceparent: z.string().nullable(),
    })
    .nullable()
    .meta({ id: 'TaskTrace' }),
};

const createTask = z.object({
  ...base,
  type: z.literal('vm:create'),
  payload: z.object({ worker_labels: z.record(z.string(), labelConstraint), strategy: z.enum(STRATEGIES).nullable() }),
  result: z
    .object({
      vm_id: z.string(),
      driver: z.string().nullable(),
      boot_ms: z.number().optional(),
      deleted_while_creating: z.boolean().optional(),
    })
    .nullable(),
  placement: placementRecord.nullable(),
});

const powerResult = z.object({ vm_id: z.string(), status: z.enum(['running', 'stopped']) }).nullable();
const powerPayload = z.record(z.string(), z.never());
const startTask = z.object({
  ...base,
  type: z.literal('vm:start'),
  payload: powerPayload,
  result: powerResult,
  placement: z.null(),
});
const stopTask = z.object({
  ...base,
  type: z.literal('vm:stop'),
  payload: powerPayload,
  result: powerResult,
  placement: z.null(),
});
const deleteTask = z.object({
  ...base,
  type: z.literal('vm:delete'),
  payload: z.object({ reason: z.string().optional() }),
  result: z.object({ vm_id: z.string(), deleted: z.literal(true) }).nullable(),
  placement: z.null(),
});
const executeTask = z.object({
  ...base,
  type: z.literal('vm:execute'),
  payload: z.object({
    command: z.string(),
    args: z.array(z.string()),
    env: z.record(z.string(), z.string()),
    cwd: z.string().optional(),
    timeout_ms: z.number().optional(),
    stream: z.boolean().optional(),
  }),
  result: z
    .object({
      execution_id: z.string(),
      exit_code: z.number().int(),
      stdout: z.string(),
      stderr: z.string(),
      stdout_base64: z.string().optional(),
      stderr_base64: z.string().optional(),
      timed_out: z.boolean(),
      duration_ms: z.number(),
    })
    .nullable(),
  placement: z.null(),
});

export const task = z
  .discriminatedUnion('type', [createTask, startTask, stopTask, deleteTask, executeTask])
  .meta({ id: 'Task' });

export const taskList = z.object({ tasks: z.array(task), total });

export const taskCancelled = z.object({
  task_id: z.string(),
  status: z.enum(TASK_STATUSES),
  /** `cancelled`: done now; `requested`: its worker aborts it; `already`: it was cancelled before. */
  outcome: z.enum(['cancelled', 'requested', 'already']),
  error: z.string().nullable().optional(),
});
