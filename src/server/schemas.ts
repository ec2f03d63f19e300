/** Request schemas: every route validates its input with these, and OpenAPI is generated from them. */
import { z } from 'zod';
import {
  DRIVER_NAMES,
  STRATEGIES,
  TASK_STATUSES,
  TASK_TYPES,
  VM_DEFAULTS,
  VM_STATUSES,
  WORKER_STATUSES,
} from '../domain/index.ts';

export const VM_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

const labelKey = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._/-]*$/, 'label keys are letters, digits, ".", "_", "/" and "-"');
const labelValue = z.string().max(255);

export const idParam = z.object({ id: z.string().min(1).max(128) });

export const createVmBody = z
  .object({
    name: z
      .string()
      .regex(VM_NAME, 'a VM name is 1-63 lowercase letters, digits and "-", starting and ending with a letter or digit')
      .optional(),
    vcpus: z.number().int().min(1).max(256).default(VM_DEFAULTS.vcpus),
    memory_mb: z.number().int().min(16).max(1_048_576).default(VM_DEFAULTS.memory_mb),
    disk_gb: z.number().int().min(0).max(65_536).default(VM_DEFAULTS.disk_gb),
    driver: z.enum(DRIVER_NAMES).optional(),
    image: z.string().min(1).max(512).optional(),
    zone: z.string().min(1).max(128).optional(),
    labels: z.record(labelKey, labelValue).optional(),
    worker_labels: z
      .record(labelKey, z.union([labelValue, z.object({ in: z.array(labelValue).min(1) }).strict()]))
      .optional(),
    strategy: z.enum(STRATEGIES).optional(),
  })
  .strict();

/** What a VM asks of its host: the placement part of a create request. */
export const planBody = createVmBody
  .pick({ vcpus: true, memory_mb: true, disk_gb: true, driver: true, zone: true, worker_labels: true, strategy: true })
  .strict();

export const waitQuery = z.object({
  wait: z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .transform((v) => v === 'true' || v === '1'),
  timeout: z.coerce.number().min(0).max(3600).optional(),
});

export const listVmsQuery = z
  .object({
    status: z.enum(VM_STATUSES).optional(),
    worker_id: z.string().min(1).optional(),
    name: z.string().min(1).optional(),
    include_deleted: z
      .enum(['true', 'false'])
      .optional()
      .transform((v) => v === 'true'),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();

export const execBody = z
  .object({
    command: z.string().min(1, 'command must not be empty').max(4096),
    args: z.array(z.string().max(131_072)).max(4096).default([]),
    env: z
      .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'environment names are letters, digits and "_"'), z.string())
      .default({}),
    cwd: z.string().min(1).max(4096).optional(),
    /** Seconds. No timeout means the command may run as long as it needs. */
    timeout: z.number().positive().max(86_400).optional(),
  })
  .strict();

export const listTasksQuery = z
  .object({
    status: z.enum(TASK_STATUSES).optional(),
    type: z.enum(TASK_TYPES).optional(),
    worker_id: z.string().min(1).optional(),
    vm_id: z.string().min(1).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();

export const listWorkersQuery = z
  .object({
    zone: z.string().min(1).optional(),
    status: z.enum(WORKER_STATUSES).optional(),
    capability: z.string().min(1).optional(),
  })
  .strict();

export const metricsQuery = z.object({ limit: z.coerce.number().int().min(1).max(10_000).default(120) }).strict();

export const eligibilityBody = z.object({ eligible: z.boolean() }).strict();

export const cancelQuery = z.object({
  wait: z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .transform((v) => v === 'true' || v === '1'),
  timeout: z.coerce.number().min(0).max(3600).optional(),
});

export const drainBody = z
  .object({
    deadline_seconds: z
      .number()
      .int()
      .min(0)
      .max(7 * 86_400)
      .optional(),
    force: z.boolean().optional(),
    no_deadline: z.boolean().optional(),
    message: z.string().max(1024).optional(),
  })
  .strict()
  .nullish();
