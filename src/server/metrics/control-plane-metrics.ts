/**
 * The control plane's Prometheus metrics (prom-client), served at `GET /metrics`; the catalogue is
 * docs/METRICS.md. Three kinds:
 *   - counted as things happen: HTTP requests (by route template, method and status, with their
 *     latency); task outcomes and durations, placements and boot phases, as this replica's ledger
 *     writes them (so each is counted once in the cluster); events seen; the event stream's lag
 *     and drops; engine round trips;
 *   - read from the store at each scrape: VMs by status and driver, workers by status, each
 *     worker's heartbeat age, queue depth and capacity allocated and total, tasks by status, the
 *     age of the oldest pending task; each engine's health; the event stream's connected clients;
 *   - Node's own process metrics (CPU, memory, event-loop lag, GC), with prom-client's names.
 * Names follow Prometheus' conventions: the `aetherium_` prefix, base units (seconds, bytes),
 * `_total` for counters.
 */
import type { FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import {
  type ClusterEvent,
  type CreateTask,
  phaseDurations,
  type Task,
  type TaskStatus,
  type Vm,
  type Worker,
} from '../../domain/index.ts';
import type { Store } from '../../ports/store.ts';
import type { HealthReport } from '../health.ts';
import type { LedgerObserver } from '../ledger/ledger.ts';

export interface MetricsSources {
  store: Store;
  /** Clients connected to the event stream now; null without the WebSocket. */
  eventClients: () => number | null;
  /** The engines' health, checked at each scrape (`aetherium_engine_up`). */
  health?: () => Promise<HealthReport>;
  version: string;
  mode: string;
  now?: () => Date;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const ENGINE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const TASK_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
const BOOT_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300];
const LAG_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class ControlPlaneMetrics implements LedgerObserver {
  readonly registry = new Registry();
  readonly #extra: Registry[] = [];
  /** Counts scrapes: the reads one scrape shares are keyed by it. */
  #scrapes = 0;
  readonly #httpRequests: Counter<'route' | 'method' | 'status'>;
  readonly #httpDuration: Histogram<'route' | 'method' | 'status'>;
  readonly #tasksFinished: Counter<'type' | 'outcome'>;
  readonly #taskDuration: Histogram<'type' | 'outcome'>;
  readonly #placements: Counter<'outcome'>;
  readonly #placementLatency: Histogram;
  readonly #schedulerPass: Histogram;
  readonly #events: Counter<'type'>;
  readonly #bootPhase: Histogram<'phase' | 'driver'>;
  readonly #boot: Histogram<'driver'>;
  readonly #streamLag: Histogram;
  readonly #streamDropped: Counter<'reason'>;
  readonly #engineDuration: Histogram<'engine' | 'operation'>;
  readonly #engineErrors: Counter<'engine' | 'operation'>;

  constructor(private readonly sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'aetherium_build_info',
      help: 'Always 1: the version and mode of this replica',
      labelNames: ['version', 'mode'],
      registers,
    }).set({ version: sources.version, mode: sources.mode }, 1);
    this.#httpRequests = new Counter({
      name: 'aetherium_http_requests_total',
      help: 'HTTP requests answered, by route template, method and status',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.#httpDuration = new Histogram({
      name: 'aetherium_http_request_duration_seconds',
      help: 'Time to answer an HTTP request, by route template, method and status',
      labelNames: ['route', 'method', 'status'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#tasksFinished = new Counter({
      name: 'aetherium_tasks_finished_total',
      help: 'Tasks that ended, by type and outcome (completed, failed, cancelled)',
      labelNames: ['type', 'outcome'],
      registers,
    });
    this.#taskDuration = new Histogram({
      name: 'aetherium_task_duration_seconds',
      help: 'From a task being written to its end, by type and outcome',
      labelNames: ['type', 'outcome'],
      buckets: TASK_BUCKETS,
      registers,
    });
    this.#placements = new Counter({
      name: 'aetherium_placements_total',
      help: 'Scheduler decisions on creates: placed, unplaceable (left pending with a new reason), requeued',
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of ['placed', 'unplaceable', 'requeued']) this.#placements.inc({ outcome }, 0);
    this.#placementLatency = new Histogram({
      name: 'aetherium_placement_latency_seconds',
      help: 'From a create being accepted to its placement on a worker',
      buckets: BOOT_BUCKETS,
      registers,
    });
    this.#schedulerPass = new Histogram({
      name: 'aetherium_scheduler_pass_duration_seconds',
      help: 'Time one scheduler pass takes (read the pending tasks, decide, write)',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#events = new Counter({
      name: 'aetherium_events_published_total',
      help: 'Cluster events seen by this replica, by type',
      labelNames: ['type'],
      registers,
    });
    this.#bootPhase = new Histogram({
      name: 'aetherium_vm_boot_phase_duration_seconds',
      help: "Seconds spent reaching each phase of a VM's start from the phase before it, by phase and driver",
      labelNames: ['phase', 'driver'],
      buckets: BOOT_BUCKETS,
      registers,
    });
    this.#boot = new Histogram({
      name: 'aetherium_vm_boot_duration_seconds',
      help: 'From a create being accepted to the VM running, by driver',
      labelNames: ['driver'],
      buckets: BOOT_BUCKETS,
      registers,
    });
    this.#streamLag = new Histogram({
      name: 'aetherium_event_stream_lag_seconds',
      help: 'From an event being published to its delivery to an event-stream client',
      buckets: LAG_BUCKETS,
      registers,
    });
    this.#streamDropped = new Counter({
      name: 'aetherium_event_stream_dropped_total',
      help: 'Event-stream clients cut off (slow_consumer) and gaps told to clients (gap)',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of ['slow_consumer', 'gap']) this.#streamDropped.inc({ reason }, 0);
    this.#engineDuration = new Histogram({
      name: 'aetherium_engine_request_duration_seconds',
      help: 'Round trips to the engines (store, queue, events, registry), by operation',
      labelNames: ['engine', 'operation'],
      buckets: ENGINE_BUCKETS,
      registers,
    });
    this.#engineErrors = new Counter({
      name: 'aetherium_engine_errors_total',
      help: 'Round trips to an engine that failed, by operation',
      labelNames: ['engine', 'operation'],
      registers,
    });
    this.#scrapeGauges(registers);
  }

  /** Another registry served with this one (the in-process worker's, in `aetherium dev`). */
  include(registry: Registry): void {
    this.#extra.push(registry);
  }

  /** Counts an event this replica saw. */
  observe(event: ClusterEvent): void {
    this.#events.inc({ type: event.type });
  }

  // ── LedgerObserver: transitions this replica wrote ────────────────────────────────────────────

  placed(task: CreateTask, at: Date): void {
    this.#placements.inc({ outcome: 'placed' });
    this.#placementLatency.observe(Math.max(0, (at.getTime() - task.created_at.getTime()) / 1000));
  }

  unplaceable(): void {
    this.#placements.inc({ outcome: 'unplaceable' });
  }

  requeued(): void {
    this.#placements.inc({ outcome: 'requeued' });
  }

  taskEnded(task: Task): void {
    const labels = { type: task.type, outcome: task.status };
    this.#tasksFinished.inc(labels);
    const end = task.completed_at ?? new Date();
    this.#taskDuration.observe(labels, Math.max(0, (end.getTime() - task.created_at.getTime()) / 1000));
  }

  vmRunning(vm: Vm): void {
    const driver = vm.driver ?? 'none';
    for (const { phase, seconds } of phaseDurations(vm.phases)) this.#bootPhase.observe({ phase, driver }, seconds);
    const { accepted, running } = vm.phases;
    if (accepted && running)
      this.#boot.observe({ driver }, Math.max(0, (running.getTime() - accepted.getTime()) / 1000));
  }

  // ── other parts of the replica ────────────────────────────────────────────────────────────────

  schedulerPass(seconds: number): void {
    this.#schedulerPass.observe(seconds);
  }

  eventDelivered(lagSeconds: number): void {
    this.#streamLag.observe(Math.max(0, lagSeconds));
  }

  eventStreamDropped(reason: 'slow_consumer' | 'gap'): void {
    this.#streamDropped.inc({ reason });
  }

  engineCall(engine: string, operation: string, seconds: number, failed: boolean): void {
    this.#engineDuration.observe({ engine, operation }, seconds);
    if (failed) this.#engineErrors.inc({ engine, operation });
  }

  /** Times every request by its route template (never the raw URL: ids would explode the series). */
  instrument(app: FastifyInstance): void {
    // Callback style: no promise per request for a hook that does no I/O.
    app.addHook('onResponse', (request, reply, done) => {
      const labels = {
        route: request.routeOptions.url ?? 'unmatched',
        method: request.method,
        status: String(reply.statusCode),
      };
      this.#httpRequests.inc(labels);
      this.#httpDuration.observe(labels, reply.elapsedTime / 1000);
      done();
    });
  }

  async text(): Promise<string> {
    this.#scrapes++;
    if (this.#extra.length === 0) return this.registry.metrics();
    return Registry.merge([this.registry, ...this.#extra]).metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The gauges read from the store when Prometheus scrapes: always the cluster's state, on any replica. */
  #scrapeGauges(registers: Registry[]): void {
    const { store } = this.sources;
    const now = () => this.sources.now?.() ?? new Date();
    // One read per scrape, shared by the gauges that need it.
    const scrape = () => this.#scrapes;
    const workers = shared(scrape, () => store.listWorkers());
    const scheduled = shared(scrape, () => store.listTasks({ status: 'scheduled' }));
    const health = this.sources.health ? shared(scrape, this.sources.health) : null;
    new Gauge({
      name: 'aetherium_vms',
      help: 'VMs by status and driver',
      labelNames: ['status', 'driver'],
      registers,
      async collect() {
        this.reset();
        for (const vm of await store.listVms({})) this.inc({ status: vm.status, driver: vm.driver ?? 'none' });
      },
    });
    new Gauge({
      name: 'aetherium_workers',
      help: 'Workers by status',
      labelNames: ['status'],
      registers,
      async collect() {
        this.reset();
        for (const status of ['active', 'draining', 'offline']) this.set({ status }, 0);
        for (const w of await workers()) this.inc({ status: w.status });
      },
    });
    const perWorker = (name: string, help: string, value: (w: Worker, at: number) => number | Promise<number>) =>
      new Gauge({
        name,
        help,
        labelNames: ['worker'],
        registers,
        async collect() {
          this.reset();
          const at = now().getTime();
          for (const w of await workers()) this.set({ worker: w.id }, await value(w, at));
        },
      });
    perWorker('aetherium_worker_up', 'Whether each worker heartbeats: 1 active or draining, 0 offline', (w) =>
      w.status === 'offline' ? 0 : 1,
    );
    perWorker('aetherium_worker_heartbeat_age_seconds', "Seconds since each worker's last heartbeat", (w, at) =>
      Math.max(0, (at - w.last_seen.getTime()) / 1000),
    );
    perWorker(
      'aetherium_worker_queue_depth',
      'Tasks scheduled to each worker that it has not started',
      async (w) => (await scheduled()).filter((t) => t.worker_id === w.id).length,
    );
    const capacity = (kind: 'allocated' | 'total') =>
      new Gauge({
        name: `aetherium_worker_capacity_${kind}`,
        help: `Each worker's ${kind === 'allocated' ? 'reserved' : 'total'} capacity: cpu (cores), memory and disk (bytes), slots (VMs)`,
        labelNames: ['worker', 'resource'],
        registers,
        async collect() {
          this.reset();
          for (const w of await workers()) {
            const values =
              kind === 'allocated'
                ? [w.used_cpu_cores, w.used_memory_mb * 2 ** 20, w.used_disk_gb * 2 ** 30, w.vm_count]
                : [w.cpu_cores, w.memory_mb * 2 ** 20, w.disk_gb * 2 ** 30, w.max_vms];
            for (const [i, resource] of ['cpu', 'memory', 'disk', 'slots'].entries())
              this.set({ worker: w.id, resource }, values[i]!);
          }
        },
      });
    capacity('allocated');
    capacity('total');
    new Gauge({
      name: 'aetherium_tasks',
      help: 'Tasks by status (the final ones since the store began)',
      labelNames: ['status'],
      registers,
      async collect() {
        this.reset();
        const counts = await store.countTasksByStatus();
        for (const [status, n] of Object.entries(counts) as [TaskStatus, number][]) this.set({ status }, n);
      },
    });
    new Gauge({
      name: 'aetherium_pending_task_oldest_age_seconds',
      help: 'How long the oldest pending task has waited (0: none waits)',
      registers,
      async collect() {
        const [oldest] = await store.listPendingTasks(1);
        this.set(oldest ? Math.max(0, (now().getTime() - oldest.created_at.getTime()) / 1000) : 0);
      },
    });
    if (health) {
      new Gauge({
        name: 'aetherium_engine_up',
        help: 'Whether each engine answered its health check at this scrape (1) or not (0)',
        labelNames: ['engine'],
        registers,
        async collect() {
          this.reset();
          for (const [engine, state] of Object.entries((await health()).engines))
            this.set({ engine }, state.ok ? 1 : 0);
        },
      });
    }
    const clients = this.sources.eventClients;
    new Gauge({
      name: 'aetherium_event_stream_clients',
      help: 'Clients connected to the event stream on this replica',
      registers,
      collect() {
        this.set(clients() ?? 0);
      },
    });
  }
}

/** A read shared by the gauges of one scrape: the first starts it, the others of that scrape reuse it. */
function shared<T>(scrape: () => number, read: () => Promise<T>): () => Promise<T> {
  let last: { scrape: number; value: Promise<T> } | null = null;
  return () => {
    const current = scrape();
    if (last?.scrape !== current) last = { scrape: current, value: read() };
    return last.value;
  };
}
