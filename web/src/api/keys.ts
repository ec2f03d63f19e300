/** The query keys of every server view the UI holds, so that events know what they make stale. */
export const keys = {
  stats: ['stats'] as const,
  distribution: ['distribution'] as const,
  workers: (filter: object = {}) => ['workers', filter] as const,
  worker: (id: string) => ['worker', id] as const,
  workerVms: (id: string) => ['worker-vms', id] as const,
  workerMetrics: (id: string) => ['worker-metrics', id] as const,
  vms: (filter: object = {}) => ['vms', filter] as const,
  vm: (id: string) => ['vm', id] as const,
  executions: (vmId: string) => ['executions', vmId] as const,
  tasks: (filter: object = {}) => ['tasks', filter] as const,
  task: (id: string) => ['task', id] as const,
};
