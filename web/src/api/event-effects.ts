/**
 * What one event changes in the views the UI holds. Two kinds of change: a patch, applied to the
 * cached data at once (a worker's reserved resources, a VM's status: the event carries the new
 * value), and a key made stale, refetched from the REST API by the live layer at most once a second
 * per key (a list that gained a row, a task's full record).
 */
import type { ClusterEvent, VmData, VmStatus, Worker } from '@aetherium/sdk';
import type { QueryClient, QueryKey } from '@tanstack/react-query';
import { keys } from './keys.ts';

export interface Effects {
  patch(client: QueryClient): void;
  stale: QueryKey[];
}

const percent = (used: number, total: number) => (total > 0 ? Math.round((used / total) * 10_000) / 100 : 0);

function patchWorker(client: QueryClient, id: string, update: (w: Worker) => Worker): void {
  client.setQueryData<Worker>(keys.worker(id), (w) => (w ? update(w) : w));
  client.setQueriesData<{ workers: Worker[]; total: number }>({ queryKey: ['workers'] }, (list) => {
    if (!list) return list;
    const at = list.workers.findIndex((w) => w.id === id);
    if (at < 0) return list;
    const workers = list.workers.slice();
    workers[at] = update(workers[at]!);
    return { ...list, workers };
  });
}

function patchVm(client: QueryClient, id: string, status: VmStatus, error: string | null): void {
  const update = (vm: VmData): VmData => ({ ...vm, status, error, updated_at: new Date() });
  client.setQueryData<VmData>(keys.vm(id), (vm) => (vm ? update(vm) : vm));
  client.setQueriesData<{ vms: VmData[]; total: number }>({ queryKey: ['vms'] }, (list) => {
    if (!list) return list;
    const at = list.vms.findIndex((vm) => vm.id === id);
    if (at < 0) return list;
    const vms = list.vms.slice();
    vms[at] = update(vms[at]!);
    return { ...list, vms };
  });
}

const none = () => undefined;

export function effectsOf(event: ClusterEvent): Effects {
  switch (event.type) {
    case 'worker.resources': {
      const d = event.data;
      return {
        patch: (client) =>
          patchWorker(client, d.worker_id, (w) => ({
            ...w,
            vm_count: d.vm_count,
            used_cpu_cores: d.used_cpu_cores,
            used_memory_mb: d.used_memory_mb,
            used_disk_gb: d.used_disk_gb,
            cpu_usage_percent: percent(d.used_cpu_cores, w.cpu_cores),
            memory_usage_percent: percent(d.used_memory_mb, w.memory_mb),
            disk_usage_percent: percent(d.used_disk_gb, w.disk_gb),
            available_vm_slots: Math.max(0, w.max_vms - d.vm_count),
          })),
        stale: [keys.stats, keys.workerVms(d.worker_id)],
      };
    }
    case 'worker.joined':
    case 'worker.left':
    case 'worker.updated':
    case 'worker.draining':
    case 'worker.drained':
    case 'worker.activated':
      return {
        patch: none,
        stale: [['workers'], keys.worker(event.data.worker_id), keys.stats, keys.distribution],
      };
    case 'vm.state_changed': {
      const d = event.data;
      return {
        patch: (client) => patchVm(client, d.vm_id, d.to, d.error),
        stale: [keys.vm(d.vm_id), keys.distribution, ...(d.worker_id ? [keys.workerVms(d.worker_id)] : [])],
      };
    }
    case 'vm.created':
    case 'vm.deleted': {
      const d = event.data;
      return {
        patch: none,
        stale: [
          ['vms'],
          keys.vm(d.vm_id),
          keys.distribution,
          keys.stats,
          ...(d.worker_id ? [keys.workerVms(d.worker_id), keys.worker(d.worker_id)] : []),
        ],
      };
    }
    default: {
      // task.*: its record, the task lists, and the VM it is about (a create places it, an exec adds a run).
      const d = event.data;
      return {
        patch: none,
        stale: [
          ['tasks'],
          keys.task(d.task_id),
          ...(d.vm_id ? [keys.vm(d.vm_id), keys.executions(d.vm_id)] : []),
          ...(event.type === 'task.created' || event.type === 'task.scheduled' ? [['vms']] : []),
        ],
      };
    }
  }
}
