/** VMs, their commands and the answers of the VM routes. */
import * as z from 'zod';
import { TASK_STATUSES } from '../domain/task.ts';
import { DRIVER_NAMES, VM_BOOT_PHASES, VM_STATUSES, type VmBootPhase } from '../domain/vm.ts';
import { task } from './task.ts';
import { labels, nullableTimestamp, timestamp, total } from './wire.ts';

/** The boot waterfall: when each phase of the VM's start was reached (a phase not reached is absent). */
export const vmPhases = z
  .object(
    Object.fromEntries(VM_BOOT_PHASES.map((phase) => [phase, timestamp.optional()])) as Record<
      VmBootPhase,
      z.ZodOptional<typeof timestamp>
    >,
  )
  .meta({
    id: 'VmPhases',
    description:
      'accepted (the create written), placed (a worker chosen), delivered (claimed by that worker), driver_started (the VMM launched), agent_ready (the guest agent answering), running (reported running)',
  });

export const vm = z
  .object({
    id: z.string(),
    name: z.string(),
    status: z.enum(VM_STATUSES),
    vcpus: z.number().int(),
    memory_mb: z.number().int(),
    disk_gb: z.number().int(),
    driver: z.enum(DRIVER_NAMES).nullable(),
    worker_id: z.string().nullable(),
    zone: z.string().nullable(),
    labels,
    image: z.string().nullable(),
    error: z.string().nullable(),
    created_at: timestamp,
    updated_at: timestamp,
    deleted_at: nullableTimestamp,
    phases: vmPhases,
  })
  .meta({ id: 'Vm' });

/** A VM as `GET /vms/{id}` shows it: with why it still waits for a host, when it does. */
export const vmDetail = vm.extend({ pending_reason: z.string().nullable() }).meta({ id: 'VmDetail' });

export const vmList = z.object({ vms: z.array(vm), total });

/** `POST /vms`: the VM and its create task; with `?wait=true`, the finished task too. */
export const vmCreated = z.object({
  vm,
  task_id: z.string(),
  task: task.optional(),
  pending_reason: z.string().nullable().optional(),
});

/** Delete, start and stop: the task that does it, and how far it got. */
export const vmTaskAccepted = z.object({
  task_id: z.string(),
  vm_id: z.string().nullable(),
  status: z.enum(TASK_STATUSES),
  error: z.string().nullable(),
});

const outputFields = {
  exit_code: z.number().int(),
  stdout: z.string(),
  stderr: z.string(),
  /** The exact bytes, only when they are not valid UTF-8 or contain NUL (see ExecResult). */
  stdout_base64: z.string().optional(),
  stderr_base64: z.string().optional(),
};

export const execResult = z
  .object({
    execution_id: z.string(),
    ...outputFields,
    timed_out: z.boolean(),
    duration_ms: z.number(),
  })
  .meta({ id: 'ExecResult' });

/** `POST /vms/{id}/exec`, finished: the command's result. */
export const execDone = execResult.extend({ task_id: z.string() });

/** `POST /vms/{id}/exec`, still running after the wait: follow the task. */
export const execPending = z.object({
  task_id: z.string(),
  status: z.enum(TASK_STATUSES),
  message: z.string(),
});

export const execution = z
  .object({
    id: z.string(),
    vm_id: z.string(),
    task_id: z.string().nullable(),
    command: z.string(),
    args: z.array(z.string()),
    env: z.record(z.string(), z.string()),
    ...outputFields,
    timed_out: z.boolean().optional(),
    started_at: timestamp,
    completed_at: timestamp,
    duration_ms: z.number(),
  })
  .meta({ id: 'Execution' });

export const executionList = z.object({ executions: z.array(execution), total });
