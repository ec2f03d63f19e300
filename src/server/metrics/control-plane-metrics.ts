/**
 * The control plane's Prometheus metrics (prom-client), served at `GET /metrics`. Three kinds:
 *   - counted as things happen: HTTP requests (by route template, method and status, with their
 *     latency), task outcomes and durations, placements, published events;
 *   - read from the store at each scrape: VMs by status and driver, workers by status, each
 *     worker's heartbeat age and its capacity allocated and total, tasks by status, the age of the
 *     oldest pending task; and the event stream's connected clients;
 *   - Node's own process metrics (CPU, memory, event-loop lag, GC), with prom-client's names.
 * Names follow Prometheus' conventions: the `aetherium_` prefix, base units (seconds, bytes),
 * `_total` for counters.
 */
import type { FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { ClusterEvent, TaskStatus } from '../../domain/index.ts';
import type { Store } from '../../ports/store.ts';

export interface MetricsSources {
  store: Store;
  /** Clients connected to the event stream now; null without the WebSocket. */
  eventClients: () => number | null;
  now?: () => Date;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const TASK_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

export class ControlPlaneMetrics {
  readonly registry = new Registry();
  readonly #httpRequests: Counter<'route' | 'method' | 'status'>;
  readonly #httpDuration: Histogram<'route' | 'method' | 'status'>;
  readonly #tasksFinished: Counter<'type' | 'outcome'>;
  readonly #taskDuration: Histogram<'type' | 'outcome'>;
  readonly #placements: Counter<'outcome'>;
  readonly #events: Counter<'type'>;

  constructor(private readonly sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
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
      help: 'Scheduler decisions on creates: placed on a worker, or requeued from one',
      labelNames: ['outcome'],
      registers,
    });
    this.#events = new Counter({
      name: 'aetherium_events_published_total',
      help: 'Cluster events seen by this replica, by type',
      labelNames: ['type'],
      registers,
    });
    this.#scrapeGauges(registers);
  }

  /** Counts an event, and a finished task's duration (its record says when it was written). */
  observe(event: ClusterEvent): void {
    this.#events.inc({ type: event.type });
    if (event.type === 'task.scheduled' && event.data.type === 'vm:create') this.#placements.inc({ outcome: 'placed' });
    if (event.type === 'task.requeued') this.#placements.inc({ outcome: 'requeued' });
    if (event.type === 'task.completed' || event.type === 'task.failed' || event.type === 'task.cancelled') {
      const labels = { type: event.data.type, outcome: event.data.status };
      this.#tasksFinished.inc(labels);
      void this.sources.store
        .getTask(event.data.task_id)
        .then((task) => {
          if (!task) return;
          const end = task.completed_at ?? new Date(event.timestamp);
          this.#taskDuration.observe(labels, Math.max(0, (end.getTime() - task.created_at.getTime()) / 1000));
        })
        .catch(() => undefined); // a metric is not worth an error: the count above stands
    }
  }

  /** Times every request by its route template (never the raw URL: ids would explode the series). */
  instrument(app: FastifyInstance): void {
    app.addHook('onResponse', async (request, reply) => {
      const labels = {
        route: request.routeOptions.url ?? 'unmatched',
        method: request.method,
        status: String(reply.statusCode),
      };
      this.#httpRequests.inc(labels);
      this.#httpDuration.observe(labels, reply.elapsedTime / 1000);
    });
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The gauges read from the store when Prometheus scrapes: always the cluster's state, on any replica. */
  #scrapeGauges(registers: Registry[]): void {
    const { store } = this.sources;
    const now = () => this.sources.now?.() ?? new Date();
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
    const workers = async () => store.listWorkers();
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
    new Gauge({
      name: 'aetherium_worker_heartbeat_age_seconds',
      help: "Seconds since each worker's last heartbeat",
      labelNames: ['worker'],
      registers,
      async collect() {
        this.reset();
        const at = now().getTime();
        for (const w of await workers()) this.set({ worker: w.id }, Math.max(0, (at - w.last_seen.getTime()) / 1000));
      },
    });
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
