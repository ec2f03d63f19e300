/** The seed's WorkerStats: a worker row plus usage percentages, uptime and health. */
import { isHealthy, type Worker } from '../../domain/index.ts';
import { formatDuration } from '../../config/duration.ts';

export interface WorkerStats extends Worker {
  cpu_usage_percent: number;
  memory_usage_percent: number;
  disk_usage_percent: number;
  available_vm_slots: number;
  uptime: string;
  is_healthy: boolean;
}

export function percentOf(used: number, total: number): number {
  return total > 0 ? Math.round((used / total) * 10_000) / 100 : 0;
}

export function workerStats(worker: Worker, now: Date): WorkerStats {
  const healthy = isHealthy(worker, now);
  return {
    ...worker,
    cpu_usage_percent: percentOf(worker.used_cpu_cores, worker.cpu_cores),
    memory_usage_percent: percentOf(worker.used_memory_mb, worker.memory_mb),
    disk_usage_percent: percentOf(worker.used_disk_gb, worker.disk_gb),
    available_vm_slots: Math.max(0, worker.max_vms - worker.vm_count),
    uptime: worker.status === 'offline' ? '0s' : formatDuration(now.getTime() - worker.started_at.getTime()),
    is_healthy: healthy,
  };
}
