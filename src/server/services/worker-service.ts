/** The seed's WorkerService: worker queries, cluster statistics, VM distribution, drain and activate. */
import { notFound, type Vm, type Worker, type WorkerFilter } from '../../domain/index.ts';
import { beginDrain, type DrainRequest } from '../../operations/drain.ts';
import type { EventBus } from '../../ports/event-bus.ts';
import type { Store } from '../../ports/store.ts';
import type { TaskQueue } from '../../ports/task-queue.ts';
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
    private readonly queue: TaskQueue,
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

  /** Drain: no new placements from now on; queued creates move elsewhere; VMs end by the deadline. */
  async drainWorker(id: string, request: DrainRequest = {}): Promise<WorkerStats> {
    const worker = await beginDrain({ store: this.store, events: this.events, queue: this.queue }, id, request);
    this.onCapacityChange();
    return workerStats(worker, new Date());
  }

  /** Ends a drain at any point, or lifts ineligibility. */
  async activateWorker(id: string): Promise<WorkerStats> {
    const worker = await this.store.activateWorker(id);
    if (!worker) throw notFound('worker', id);
    await this.events.publish({ type: 'worker.activated', data: { worker_id: id } });
    this.onCapacityChange();
    return workerStats(worker, new Date());
  }

  /** Eligibility alone: VMs keep running, the scheduler just places nothing new there. */
  async setEligibility(id: string, eligible: boolean): Promise<WorkerStats> {
    const worker = await this.store.setWorkerEligibility(id, eligible);
    if (!worker) throw notFound('worker', id);
    await this.events.publish({ type: 'worker.updated', data: { worker_id: id, eligible } });
    if (eligible) this.onCapacityChange();
    return workerStats(worker, new Date());
  }

  private async require(id: string): Promise<Worker> {
    const worker = await this.store.getWorker(id);
    if (!worker) throw notFound('worker', id);
    return worker;
  }
}
