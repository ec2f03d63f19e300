/**
 * Cluster events, in the envelope every subscriber sees: `{ id, type, timestamp, data }`.
 *
 * The catalogue below is the contract: one schema per event type, and every event of a type has
 * that shape wherever it is published. The schemas are zod objects so that the SDK, the docs and
 * the tests can read the catalogue at run time (`EVENT_CATALOGUE`), and the types are inferred
 * from them. Events are built only by the constructors in `event-constructors.ts`.
 */
import * as z from 'zod';
import { TASK_STATUSES, TASK_TYPES } from './task.ts';
import { DRIVER_NAMES, VM_STATUSES } from './vm.ts';
import { WORKER_STATUSES } from './worker.ts';

const isoTime = z.string().describe('ISO 8601 time');

/** Who a worker is, in every worker event that announces it. */
const workerSummary = {
  worker_id: z.string(),
  hostname: z.string().nullable(),
  zone: z.string().nullable(),
  status: z.enum(WORKER_STATUSES).nullable(),
  eligible: z.boolean().nullable(),
  capabilities: z.array(z.string()),
};

/** What every task event says about its task. */
const taskSummary = {
  task_id: z.string(),
  type: z.enum(TASK_TYPES),
  status: z.enum(TASK_STATUSES),
  vm_id: z.string().nullable(),
  worker_id: z.string().nullable(),
  retry_count: z.number().int(),
};

const vmSummary = {
  vm_id: z.string(),
  name: z.string(),
  worker_id: z.string().nullable(),
};

/** A task's result as events carry it: a command's output is fetched from the task, not broadcast. */
const eventResult = z.union([
  z.strictObject({
    execution_id: z.string(),
    exit_code: z.number().int(),
    timed_out: z.boolean(),
    duration_ms: z.number(),
    stdout_bytes: z.number().int(),
    stderr_bytes: z.number().int(),
  }),
  z.strictObject({
    vm_id: z.string(),
    driver: z.string().nullable(),
    boot_ms: z.number().optional(),
    deleted_while_creating: z.boolean().optional(),
  }),
  z.strictObject({ vm_id: z.string(), deleted: z.literal(true) }),
  z.strictObject({ vm_id: z.string(), status: z.enum(['running', 'stopped']) }),
]);

export const EVENT_SCHEMAS = {
  'worker.joined': z.object({ ...workerSummary, registry: z.string() }).describe('a worker registered and is healthy'),
  'worker.left': z
    .object({ worker_id: z.string(), reason: z.string(), last_seen: isoTime.nullable() })
    .describe('a worker deregistered, or missed its heartbeats past its TTL'),
  'worker.updated': z
    .object({ ...workerSummary, change: z.enum(['restarted', 'eligibility']) })
    .describe('a worker restarted with the same id, or its eligibility changed'),
  'worker.draining': z
    .object({ worker_id: z.string(), deadline: isoTime.nullable(), force: z.boolean(), message: z.string().nullable() })
    .describe('a drain started: no new VMs; the VMs left at the deadline are deleted'),
  'worker.drained': z
    .object({ worker_id: z.string(), started_at: isoTime, drained_at: isoTime })
    .describe('the last VM of a draining worker is gone'),
  'worker.activated': z.object({ worker_id: z.string() }).describe('a drain or ineligibility ended'),
  'worker.resources': z
    .object({
      worker_id: z.string(),
      vm_count: z.number().int(),
      used_cpu_cores: z.number(),
      used_memory_mb: z.number(),
      used_disk_gb: z.number(),
    })
    .describe('a worker reported its capacity after its VMs changed, with what is reserved on it'),
  'vm.created': z
    .object({ ...vmSummary, driver: z.enum(DRIVER_NAMES).nullable() })
    .describe('a VM booted and can run commands'),
  'vm.state_changed': z
    .object({ ...vmSummary, from: z.enum(VM_STATUSES), to: z.enum(VM_STATUSES), error: z.string().nullable() })
    .describe("a VM's status changed"),
  'vm.deleted': z.object({ ...vmSummary, reason: z.string() }).describe('a VM is gone and its capacity returned'),
  'task.created': z.object({ ...taskSummary, name: z.string().nullable() }).describe('a task was written, pending'),
  'task.scheduled': z
    .object({ ...taskSummary, driver: z.enum(DRIVER_NAMES).nullable(), score: z.number().nullable() })
    .describe("a task is in its worker's queue"),
  'task.requeued': z
    .object({ ...taskSummary, from_worker_id: z.string(), reason: z.string() })
    .describe('a create was taken back from a worker (dead, draining, refusing) to be placed again'),
  'task.started': z.object(taskSummary).describe('a worker started the task'),
  'task.retrying': z
    .object({ ...taskSummary, error: z.string(), delay_ms: z.number().int() })
    .describe('an attempt failed with a retryable error; the task runs again after the delay'),
  'task.completed': z.object({ ...taskSummary, result: eventResult }).describe('the task succeeded'),
  'task.failed': z.object({ ...taskSummary, error: z.string() }).describe('the task failed for good'),
  'task.cancel_requested': z
    .object({ ...taskSummary, reason: z.string() })
    .describe('a running task is to be aborted by its worker'),
  'task.cancelled': z.object({ ...taskSummary, reason: z.string() }).describe('the task was cancelled'),
} as const;

export type EventType = keyof typeof EVENT_SCHEMAS;
export const EVENT_TYPES = Object.keys(EVENT_SCHEMAS) as EventType[];

export type EventData<T extends EventType> = z.infer<(typeof EVENT_SCHEMAS)[T]>;

/** An event before the bus gives it an id and a time: a union, one member per type. */
export type NewEvent = { [T in EventType]: { type: T; data: EventData<T> } }[EventType];

export type ClusterEvent = NewEvent & {
  /** Monotonically increasing across the cluster; a client resumes after the last id it saw. */
  id: number;
  timestamp: string;
};

export type ClusterEventOf<T extends EventType> = Extract<ClusterEvent, { type: T }>;

export function topicOf(type: EventType): string {
  return type.slice(0, type.indexOf('.'));
}

/** The catalogue for docs and the SDK: each type, what it means, and its data as JSON Schema. */
export function eventCatalogue(): { type: EventType; description: string; data: unknown }[] {
  return EVENT_TYPES.map((type) => ({
    type,
    description: EVENT_SCHEMAS[type].description ?? '',
    data: z.toJSONSchema(EVENT_SCHEMAS[type]),
  }));
}
