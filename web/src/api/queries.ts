/**
 * Every server view as a query over the SDK. None polls: the live layer (live.tsx) patches or
 * invalidates them as events announce changes. The one exception is a worker's metrics history,
 * which no event announces (samples arrive with heartbeats): it is refetched on an interval while
 * its page is open.
 */
import type { TaskListFilter, VmStatus } from '@aetherium/sdk';
import { useQuery } from '@tanstack/react-query';
import { keys } from './keys.ts';
import { useSession } from './session.tsx';

export const METRICS_REFRESH_MS = 15_000;

export function useStats() {
  const { client } = useSession();
  return useQuery({ queryKey: keys.stats, queryFn: ({ signal }) => client.cluster.stats({ signal }) });
}

export function useDistribution() {
  const { client } = useSession();
  return useQuery({ queryKey: keys.distribution, queryFn: ({ signal }) => client.cluster.distribution({ signal }) });
}

/** Every worker; pages filter them in the browser (search, labels) so a filter answers at once. */
export function useWorkers() {
  const { client } = useSession();
  return useQuery({
    queryKey: keys.workers(),
    queryFn: ({ signal }) => client.call('listWorkers', { query: {} }, { signal }),
  });
}

export function useWorker(id: string) {
  const { client } = useSession();
  return useQuery({ queryKey: keys.worker(id), queryFn: ({ signal }) => client.workers.get(id, { signal }) });
}

export function useWorkerVms(id: string) {
  const { client } = useSession();
  return useQuery({ queryKey: keys.workerVms(id), queryFn: ({ signal }) => client.workers.vms(id, { signal }) });
}

export function useWorkerMetrics(id: string, limit = 240) {
  const { client } = useSession();
  return useQuery({
    queryKey: keys.workerMetrics(id),
    queryFn: ({ signal }) => client.workers.metrics(id, { limit }, { signal }),
    refetchInterval: METRICS_REFRESH_MS,
    staleTime: 0,
  });
}

export function useVms(filter: { status?: VmStatus } = {}) {
  const { client } = useSession();
  return useQuery({
    queryKey: keys.vms(filter),
    queryFn: ({ signal }) => client.call('listVms', { query: { limit: 1000, ...filter } }, { signal }),
  });
}

export function useVm(id: string) {
  const { client } = useSession();
  return useQuery({ queryKey: keys.vm(id), queryFn: ({ signal }) => client.vms.fetch(id, { signal }) });
}

export function useExecutions(vmId: string) {
  const { client } = useSession();
  return useQuery({
    queryKey: keys.executions(vmId),
    queryFn: ({ signal }) => client.call('listExecutions', { params: { id: vmId } }, { signal }),
  });
}

export function useTasks(filter: TaskListFilter = {}) {
  const { client } = useSession();
  return useQuery({
    queryKey: keys.tasks(filter),
    queryFn: ({ signal }) => client.call('listTasks', { query: { limit: 500, ...filter } }, { signal }),
  });
}

export function useTask(id: string) {
  const { client } = useSession();
  return useQuery({ queryKey: keys.task(id), queryFn: ({ signal }) => client.tasks.get(id, { signal }) });
}
