/** Workers, their metrics, drains, and the cluster views built on them. */
import * as z from 'zod';
import { VM_STATUSES } from '../domain/vm.ts';
import { WORKER_STATUSES } from '../domain/worker.ts';
import { placementExplanation } from './task.ts';
import { labels, nullableTimestamp, timestamp, total } from './wire.ts';
import { vm } from './vm.ts';

export const drainState = z.object({
  started_at: timestamp,
  deadline: nullableTimestamp,
  message: z.string().nullable(),
  enforced_at: nullableTimestamp,
  drained_at: nullableTimestamp,
});

/** A worker row with the seed's WorkerStats: usage percentages, uptime, health. */
export const worker = z
  .object({
    id: z.string(),
    hostname: z.string(),
    address: z.string(),
    status: z.enum(WORKER_STATUSES),
    eligible: z.boolean(),
    last_seen: timestamp,
    started_at: timestamp,
    zone: z.string(),
    labels,
    capabilities: z.array(z.string()),
    ttl_seconds: z.number(),
    metadata: z.record(z.string(), z.unknown()),
    drain: drainState.nullable(),
    cpu_cores: z.number(),
    memory_mb: z.number(),
    disk_gb: z.number(),
    max_vms: z.number().int(),
    used_cpu_cores: z.number(),
    used_memory_mb: z.number(),
    used_disk_gb: z.number(),
    vm_count: z.number().int(),
    cpu_usage_percent: z.number(),
    memory_usage_percent: z.number(),
    disk_usage_percent: z.number(),
    available_vm_slots: z.number().int(),
    uptime: z.string(),
    is_healthy: z.boolean(),
  })
  .meta({ id: 'Worker' });

export const workerList = z.object({ workers: z.array(worker), total });

/** `GET /workers/{id}/vms`, as the seed's API gives it. */
export const workerVms = z.object({ worker_id: z.string(), vms: z.array(vm), total });

/** Drain, activate and eligibility, as the seed's API gives them, with the worker as it is now. */
export const workerControl = z.object({
  worker_id: z.string(),
  status: z.enum(WORKER_STATUSES),
  message: z.string(),
  worker,
});

export const workerRevoked = z.object({ worker_id: z.string(), revoked_before: timestamp, message: z.string() });

export const metricSample = z.object({
  worker_id: z.string(),
  timestamp,
  cpu_usage: z.number(),
  memory_usage: z.number(),
  disk_usage: z.number(),
  /** Whole in a raw sample; the average over the step in a timeline. */
  vm_count: z.number(),
  tasks_processed: z.number().int(),
  network_in_mb: z.number(),
  network_out_mb: z.number(),
});

export const metricList = z.object({
  metrics: z.array(metricSample),
  total,
  /** Set for a timeline (`since` or `step` given): the range and the step it was averaged over. */
  since: timestamp.optional(),
  until: timestamp.optional(),
  step_seconds: z.number().int().optional(),
});

/** One structured log line of a worker (pino's shape: `time`, `level`, `msg` and its fields). */
export const logLine = z.record(z.string(), z.unknown());
export const workerLogs = z.object({ worker_id: z.string(), lines: z.array(logLine), total });

export const clusterStats = z
  .object({
    total_workers: z.number().int(),
    active_workers: z.number().int(),
    draining_workers: z.number().int(),
    offline_workers: z.number().int(),
    healthy_workers: z.number().int(),
    total_cpu_cores: z.number(),
    used_cpu_cores: z.number(),
    available_cpu_cores: z.number(),
    total_memory_mb: z.number(),
    used_memory_mb: z.number(),
    available_memory_mb: z.number(),
    total_disk_gb: z.number(),
    used_disk_gb: z.number(),
    available_disk_gb: z.number(),
    cluster_cpu_usage_percent: z.number(),
    cluster_memory_usage_percent: z.number(),
    total_vms: z.number().int(),
    max_vms: z.number().int(),
    available_vm_slots: z.number().int(),
    zones: z.record(z.string(), z.number().int()),
  })
  .meta({ id: 'ClusterStats' });

export const vmDistribution = z.object({
  worker_id: z.string(),
  hostname: z.string(),
  zone: z.string(),
  status: z.enum(WORKER_STATUSES),
  vm_count: z.number().int(),
  max_vms: z.number().int(),
  vms: z.array(z.object({ id: z.string(), name: z.string(), status: z.enum(VM_STATUSES) })),
});

/** `GET /cluster/distribution`, as the seed's API gives it, with the VM count beside. */
export const clusterDistribution = z.object({
  distribution: z.array(vmDistribution),
  total_workers: z.number().int(),
  total_vms: z.number().int(),
});

export const schedulePlan = z.object({
  placement: z.object({ worker_id: z.string(), driver: z.string(), score: z.number() }).nullable(),
  explanation: placementExplanation,
});
