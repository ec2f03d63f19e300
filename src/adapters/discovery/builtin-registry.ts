/**
 * Built-in ServiceRegistry: workers are rows in the store with a TTL (`last_seen` + `ttl_seconds`).
 * It needs no outside service, so it serves the embedded mode and any cluster that would rather
 * not run Consul or etcd. Watch polls the table and turns differences into events.
 */
import {
  isHealthy,
  notFound,
  type Worker,
  type WorkerFilter,
  type WorkerRegistration,
  type WorkerResources,
  type WorkerStatus,
} from '../../domain/index.ts';
import type { RegisteredWorker, ServiceRegistry, WorkerEvent } from '../../ports/service-registry.ts';
import type { Store } from '../../ports/store.ts';

export interface BuiltinRegistryOptions {
  /** How often Watch reads the table. */
  pollIntervalMs?: number;
  now?: () => Date;
}

export class BuiltinRegistry implements ServiceRegistry {
  readonly kind = 'builtin';
  private readonly pollIntervalMs: number;
  private readonly now: () => Date;

  constructor(
    private readonly store: Store,
    options: BuiltinRegistryOptions = {},
  ) {
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.now = options.now ?? (() => new Date());
  }

  private view(worker: Worker): RegisteredWorker {
    return { ...worker, healthy: isHealthy(worker, this.now()) };
  }

  async register(worker: WorkerRegistration): Promise<void> {
    await this.store.upsertWorker(worker, this.now());
  }

  async deregister(workerId: string): Promise<void> {
    // The row stays: VMs, tasks and metrics still point at it. Offline is how a worker leaves.
    await this.store.setWorkerStatus(workerId, 'offline');
  }

  async updateStatus(workerId: string, status: WorkerStatus): Promise<void> {
    if (!(await this.store.setWorkerStatus(workerId, status))) throw notFound('worker', workerId);
  }

  async updateResources(workerId: string, resources: WorkerResources): Promise<void> {
    if (!(await this.store.updateWorkerResources(workerId, resources))) throw notFound('worker', workerId);
  }

  async heartbeat(workerId: string): Promise<void> {
    if (!(await this.store.touchWorker(workerId, this.now()))) throw notFound('worker', workerId);
  }

  async getWorker(workerId: string): Promise<RegisteredWorker | null> {
    const worker = await this.store.getWorker(workerId);
    return worker ? this.view(worker) : null;
  }

  async listWorkers(): Promise<RegisteredWorker[]> {
    return (await this.store.listWorkers()).map((w) => this.view(w));
  }

  async listWorkersWithFilter(filter: WorkerFilter): Promise<RegisteredWorker[]> {
    return (await this.store.listWorkers(filter)).map((w) => this.view(w));
  }

  async *watch(signal: AbortSignal): AsyncIterable<WorkerEvent> {
    let known = new Map<string, string>();
    let first = true;
    while (!signal.aborted) {
      const workers = await this.listWorkers().catch(() => null);
      if (workers) {
        const seen = new Map<string, string>();
        for (const worker of workers) {
          const present = worker.status !== 'offline' && worker.healthy;
          if (!present) continue;
          const fingerprint = JSON.stringify([
            worker.status,
            worker.eligible,
            worker.cpu_cores,
            worker.memory_mb,
            worker.disk_gb,
            worker.max_vms,
            worker.labels,
            worker.capabilities,
          ]);
          seen.set(worker.id, fingerprint);
          const before = known.get(worker.id);
          if (!first && before === undefined) yield { type: 'joined', worker_id: worker.id, worker };
          else if (!first && before !== fingerprint) yield { type: 'updated', worker_id: worker.id, worker };
        }
        if (!first) {
          for (const id of known.keys()) {
            if (!seen.has(id)) yield { type: 'left', worker_id: id, worker: workers.find((w) => w.id === id) ?? null };
          }
        }
        known = seen;
        first = false;
      }
      await sleep(this.pollIntervalMs, signal);
    }
  }

  async close(): Promise<void> {}
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
