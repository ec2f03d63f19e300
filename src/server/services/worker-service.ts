/** The seed's WorkerService: worker queries, cluster statistics, VM distribution, drain and activate. */
import { notFound, type Vm, type Worker, type WorkerFilter } from '../../domain/index.ts';
import type { EventBus } from '../../ports/event-bus.ts';
import type { Store } from '../../ports/store.ts';
import { clusterStats, type ClusterStats } from './cluster-stats.ts';
import { workerStats, type WorkerStats } from './worker-view.ts';

export interface VmDistribution {
  worker_id: string;
  hostname: string;
  zone: string;
  status: string;
  vm_count: number;
  max_vms: number;
  vms: Pick<Vm, 'id' | 'name' | 'status'>[];
}

export class WorkerService {
  constructor(
    private readonly store: Store,
    private readonly events: EventBus,
    private readonly onCapacityChange: () => void,
  ) {}

  async listWorkers(filter: WorkerFilter = {}): Promise<WorkerStats[]> {
    const now = new Date();
    return (await this.store.listWorkers(filter)).map((w) => workerStats(w, now));
  }

  async getWorker(id: string): Promise<WorkerStats> {
    return workerStats(await this.require(id), new Date());
  }

  async getWorkerVms(id: string): Promise<Vm[]> {
    await this.require(id);
    return this.store.listVms({ worker_id: id });
  }

  async getClusterStats(): Promise<ClusterStats> {
    return clusterStats(await this.store.listWorkers(), new Date());
  }

  async getVmDistribution(): Promise<VmDistribution[]> {
    const [workers, vms] = await Promise.all([this.store.listWorkers(), this.store.listVms({ limit: 100_000 })]);
    const byWorker = new Map<string, Vm[]>();
    for (const vm of vms) if (vm.worker_id) byWorker.set(vm.worker_id, [...(byWorker.get(vm.worker_id) ?? []), vm]);
    return workers.map((w) => ({
      worker_id: w.id,
      hostname: w.hostname,
      zone: w.zone,
      status: w.status,
      vm_count: w.vm_count,
      max_vms: w.max_vms,
      vms: (byWorker.get(w.id) ?? []).map((vm) => ({ id: vm.id, name: vm.name, status: vm.status })),
    }));
  }

  /** Stops new placements on the worker. */
  async drainWorker(id: string, details: Record<string, unknown> = {}): Promise<WorkerStats> {
    const worker = await this.require(id);
    const updated = (await this.store.setWorkerStatus(id, 'draining', false)) ?? worker;
    await this.events.publish({ type: 'worker.draining', data: { worker_id: id, ...details } });
    return workerStats(updated, new Date());
  }

  async activateWorker(id: string): Promise<WorkerStats> {
    const worker = await this.require(id);
    const status = worker.status === 'offline' ? 'offline' : 'active';
    const updated = (await this.store.setWorkerStatus(id, status, true)) ?? worker;
    await this.events.publish({ type: 'worker.activated', data: { worker_id: id } });
    this.onCapacityChange();
    return workerStats(updated, new Date());
  }

  private async require(id: string): Promise<Worker> {
    const worker = await this.store.getWorker(id);
    if (!worker) throw notFound('worker', id);
    return worker;
  }
}
