/**
 * The seed's WorkerService: worker queries, cluster statistics, VM distribution, drain and activate.
 * The list and the statistics come from the worker snapshot (read-model/worker-snapshot.ts), one
 * read shared by every request while it is fresh; one worker by id, its VMs and its history are
 * read from the store each time.
 */
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
import { AnswerMemo } from '../read-model/answer-memo.ts';
import { type Snapshot, WorkerSnapshot } from '../read-model/worker-snapshot.ts';
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

/** What the filters of `GET /workers` mean, as the store's query has them. */
function matches(worker: Worker, filter: WorkerFilter): boolean {
  if (filter.status !== undefined && worker.status !== filter.status) return false;
  if (filter.zone !== undefined && worker.zone !== filter.zone) return false;
  if (filter.capabilities?.some((c) => !worker.capabilities.includes(c))) return false;
  if (filter.labels && Object.entries(filter.labels).some(([k, v]) => worker.labels[k] !== v)) return false;
  return true;
}

export class WorkerService {
  private readonly store: Store;
  private readonly snapshot: WorkerSnapshot;
  private readonly answers = new AnswerMemo();

  constructor(
    private readonly drains: DrainDeps,
    private readonly onCapacityChange: () => void,
  ) {
    this.store = drains.ledger.store;
    this.snapshot = new WorkerSnapshot(this.store, drains.ledger.events);
  }

  /** Stops following events (the snapshot is read again if used after). */
  close(): void {
    this.snapshot.close();
  }

  private async workers(): Promise<Snapshot> {
    const current = this.snapshot.current();
    return current instanceof Promise ? await current : current;
  }

  async listWorkers(filter: WorkerFilter = {}): Promise<WorkerStats[]> {
    return (await this.workerList(filter)).workers;
  }

  /** `GET /workers`: the same object for the same question, from one snapshot, for up to MEMO_MS. */
  async workerList(filter: WorkerFilter = {}): Promise<{ workers: WorkerStats[]; total: number }> {
    const { workers, version } = await this.workers();
    const key = `${filter.status ?? ''}\0${filter.zone ?? ''}\0${(filter.capabilities ?? []).join('\0')}\0${JSON.stringify(filter.labels ?? {})}`;
    return this.answers.get(version, `list\0${key}`, (now) => {
      const at = new Date(now);
      const listed: WorkerStats[] = [];
      for (const worker of workers) if (matches(worker, filter)) listed.push(workerStats(worker, at));
      return { workers: listed, total: listed.length };
    });
  }

  async getWorker(id: string): Promise<WorkerStats> {
    return workerStats(await this.require(id), new Date());
  }

  async getWorkerVms(id: string): Promise<Vm[]> {
    await this.require(id);
    return this.store.listVms({ worker_id: id });
  }

  async getClusterStats(): Promise<ClusterStats> {
    const { workers, version } = await this.workers();
    return this.answers.get(version, 'stats', (now) => clusterStats(workers, new Date(now)));
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
    const worker = await beginDrain(this.drains, id, request).finally(() => this.snapshot.invalidate());
    this.onCapacityChange();
    return workerStats(worker, new Date());
  }

  /** Ends a drain at any point, or lifts ineligibility. */
  async activateWorker(id: string): Promise<WorkerStats> {
    const worker = await this.drains.workers.activated(id).finally(() => this.snapshot.invalidate());
    if (!worker) throw notFound('worker', id);
    this.onCapacityChange();
    return workerStats(worker, new Date());
  }

  /** Eligibility alone: VMs keep running, the scheduler just places nothing new there. */
  async setEligibility(id: string, eligible: boolean): Promise<WorkerStats> {
    const worker = await this.drains.workers.eligibility(id, eligible).finally(() => this.snapshot.invalidate());
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
