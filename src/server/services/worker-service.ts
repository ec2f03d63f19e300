/** The seed's WorkerService: worker queries, cluster statistics, VM distribution, drain and activate. */
import {
  type DrainRequest,
  invalid,
  notFound,
  type Vm,
  type Worker,
  type WorkerFilter,
  type WorkerMetricSample,
  type WorkerStatus,
} from '../../domain/index.ts';
import type { Store } from '../../ports/store.ts';
import type { DrainDeps } from '../operations/drain.ts';
import { beginDrain } from '../operations/drain.ts';
import { clusterStats, type ClusterStats } from './cluster-stats.ts';
import { workerStats, type WorkerStats } from './worker-view.ts';

export interface VmDistribution {
  worker_id: string;
  hostname: string;
  zone: string;
  status: WorkerStatus;
  vm_count: number;
  max_vms: number;
  vms: Pick<Vm, 'id' | 'name' | 'status'>[];
}

const TIMELINE_POINTS = 300;
const MAX_TIMELINE_POINTS = 10_000;

export class WorkerService {
  private readonly store: Store;

  constructor(
    private readonly drains: DrainDeps,
    private readonly onCapacityChange: () => void,
  ) {
    this.store = drains.ledger.store;
  }

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
    const worker = await beginDrain(this.drains, id, request);
    this.onCapacityChange();
    return workerStats(worker, new Date());
  }

  /** Ends a drain at any point, or lifts ineligibility. */
  async activateWorker(id: string): Promise<WorkerStats> {
    const worker = await this.drains.workers.activated(id);
    if (!worker) throw notFound('worker', id);
    this.onCapacityChange();
    return workerStats(worker, new Date());
  }

  /** Eligibility alone: VMs keep running, the scheduler just places nothing new there. */
  async setEligibility(id: string, eligible: boolean): Promise<WorkerStats> {
    const worker = await this.drains.workers.eligibility(id, eligible);
    if (!worker) throw notFound('worker', id);
    if (eligible) this.onCapacityChange();
    return workerStats(worker, new Date());
  }

  /** Resource usage history, newest first. */
  async metrics(id: string, limit?: number): Promise<WorkerMetricSample[]> {
    await this.require(id);
    return this.store.listWorkerMetrics(id, limit);
  }

  /**
   * A timeline from the raw samples and the downsampled history. Without a step, the range is cut
   * into about TIMELINE_POINTS; a range or step that would answer more than MAX_TIMELINE_POINTS is
   * refused rather than truncated, so a chart never silently shows part of what was asked.
   */
  async metricHistory(
    id: string,
    query: { since: Date; until: Date; stepSeconds: number | null },
  ): Promise<{ samples: WorkerMetricSample[]; range: { since: Date; until: Date; step_seconds: number } }> {
    const { since, until } = query;
    const seconds = (until.getTime() - since.getTime()) / 1000;
    if (!(seconds > 0)) throw invalid(`since (${since.toISOString()}) must be before until (${until.toISOString()})`);
    const step = query.stepSeconds ?? Math.max(1, Math.ceil(seconds / TIMELINE_POINTS));
    if (seconds / step > MAX_TIMELINE_POINTS)
      throw invalid(
        `step ${step}s over ${Math.round(seconds)}s would answer ${Math.ceil(seconds / step)} points (at most ${MAX_TIMELINE_POINTS}): use a larger step or a shorter range`,
      );
    await this.require(id);
    const samples = await this.store.workerMetricHistory(id, { since, until, stepSeconds: step });
    return { samples, range: { since, until, step_seconds: step } };
  }

  private async require(id: string): Promise<Worker> {
    const worker = await this.store.getWorker(id);
    if (!worker) throw notFound('worker', id);
    return worker;
  }
}
