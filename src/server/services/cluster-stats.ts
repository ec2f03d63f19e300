/** Cluster totals (the seed's ClusterStats). Capacity counts only workers that can take VMs now. */
import type { Worker } from '../../domain/index.ts';
import { percentOf, workerStats } from './worker-view.ts';

export interface ClusterStats {
  total_workers: number;
  active_workers: number;
  draining_workers: number;
  offline_workers: number;
  healthy_workers: number;
  total_cpu_cores: number;
  used_cpu_cores: number;
  available_cpu_cores: number;
  total_memory_mb: number;
  used_memory_mb: number;
  available_memory_mb: number;
  total_disk_gb: number;
  used_disk_gb: number;
  available_disk_gb: number;
  cluster_cpu_usage_percent: number;
  cluster_memory_usage_percent: number;
  total_vms: number;
  max_vms: number;
  available_vm_slots: number;
  zones: Record<string, number>;
}

export function clusterStats(workers: readonly Worker[], now: Date): ClusterStats {
  const stats: ClusterStats = {
    total_workers: workers.length,
    active_workers: 0,
    draining_workers: 0,
    offline_workers: 0,
    healthy_workers: 0,
    total_cpu_cores: 0,
    used_cpu_cores: 0,
    available_cpu_cores: 0,
    total_memory_mb: 0,
    used_memory_mb: 0,
    available_memory_mb: 0,
    total_disk_gb: 0,
    used_disk_gb: 0,
    available_disk_gb: 0,
    cluster_cpu_usage_percent: 0,
    cluster_memory_usage_percent: 0,
    total_vms: 0,
    max_vms: 0,
    available_vm_slots: 0,
    zones: {},
  };
  for (const worker of workers) {
    const view = workerStats(worker, now);
    stats[`${worker.status}_workers`]++;
    stats.total_vms += worker.vm_count;
    if (!view.is_healthy) continue;
    stats.healthy_workers++;
    stats.zones[worker.zone] = (stats.zones[worker.zone] ?? 0) + 1;
    stats.total_cpu_cores += worker.cpu_cores;
    stats.used_cpu_cores += worker.used_cpu_cores;
    stats.total_memory_mb += worker.memory_mb;
    stats.used_memory_mb += worker.used_memory_mb;
    stats.total_disk_gb += worker.disk_gb;
    stats.used_disk_gb += worker.used_disk_gb;
    stats.max_vms += worker.max_vms;
    if (worker.status === 'active' && worker.eligible) stats.available_vm_slots += view.available_vm_slots;
  }
  stats.available_cpu_cores = Math.max(0, stats.total_cpu_cores - stats.used_cpu_cores);
  stats.available_memory_mb = Math.max(0, stats.total_memory_mb - stats.used_memory_mb);
  stats.available_disk_gb = Math.max(0, stats.total_disk_gb - stats.used_disk_gb);
  stats.cluster_cpu_usage_percent = percentOf(stats.used_cpu_cores, stats.total_cpu_cores);
  stats.cluster_memory_usage_percent = percentOf(stats.used_memory_mb, stats.total_memory_mb);
  return stats;
}
