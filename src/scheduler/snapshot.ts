/**
 * A snapshot of the workers, indexed once so that each placement looks at a few candidates instead
 * of every worker: by zone, by capability (driver) and by label value. The scheduler loop builds one
 * per pass and records each placement in it, so later placements in the same pass see the room the
 * earlier ones took.
 */
import type { PlacementRequest, WorkerSnapshot } from './types.ts';

export class ClusterSnapshot {
  readonly workers: WorkerSnapshot[];
  private readonly byId = new Map<string, WorkerSnapshot>();
  private readonly byZone = new Map<string, WorkerSnapshot[]>();
  private readonly byCapability = new Map<string, WorkerSnapshot[]>();
  private readonly byLabel = new Map<string, WorkerSnapshot[]>();
  /** VMs per zone, for spread. */
  readonly zoneLoad = new Map<string, number>();
  totalVms = 0;

  constructor(workers: readonly WorkerSnapshot[]) {
    // Sorted by id: index lists, and so every scan order, depend only on the snapshot's content.
    this.workers = [...workers].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const worker of this.workers) {
      this.byId.set(worker.id, worker);
      push(this.byZone, worker.zone, worker);
      for (const capability of worker.capabilities) push(this.byCapability, capability, worker);
      for (const [key, value] of Object.entries(worker.labels)) push(this.byLabel, `${key}=${value}`, worker);
      this.zoneLoad.set(worker.zone, (this.zoneLoad.get(worker.zone) ?? 0) + worker.vm_count);
      this.totalVms += worker.vm_count;
    }
  }

  get(id: string): WorkerSnapshot | undefined {
    return this.byId.get(id);
  }

  /**
   * The smallest index list that every feasible worker must be in (zone, driver, or an exact label),
   * or all workers. Other constraints are still checked per worker.
   */
  candidates(request: PlacementRequest): readonly WorkerSnapshot[] {
    let best: readonly WorkerSnapshot[] = this.workers;
    const consider = (list: readonly WorkerSnapshot[] | undefined) => {
      const l = list ?? EMPTY;
      if (l.length < best.length) best = l;
    };
    if (request.zone) consider(this.byZone.get(request.zone));
    if (request.driver) consider(this.byCapability.get(request.driver));
    for (const [key, constraint] of Object.entries(request.labels ?? {})) {
      if (typeof constraint === 'string') consider(this.byLabel.get(`${key}=${constraint}`));
    }
    return best;
  }

  /** Counts a placement against the worker, so the rest of the pass sees it. */
  reserve(workerId: string, request: Pick<PlacementRequest, 'vcpus' | 'memory_mb' | 'disk_gb'>): void {
    const worker = this.byId.get(workerId);
    if (!worker) return;
    worker.used_cpu_cores += request.vcpus;
    worker.used_memory_mb += request.memory_mb;
    worker.used_disk_gb += request.disk_gb;
    worker.vm_count += 1;
    worker.creates_in_flight = (worker.creates_in_flight ?? 0) + 1;
    this.zoneLoad.set(worker.zone, (this.zoneLoad.get(worker.zone) ?? 0) + 1);
    this.totalVms += 1;
  }
}

const EMPTY: readonly WorkerSnapshot[] = [];

function push<K>(map: Map<K, WorkerSnapshot[]>, key: K, worker: WorkerSnapshot): void {
  const list = map.get(key);
  if (list) list.push(worker);
  else map.set(key, [worker]);
}
