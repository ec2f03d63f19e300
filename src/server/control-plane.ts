/**
 * The control plane: API, scheduler loop and reaper over the shared engines. It keeps no state of
 * its own, so any number of replicas can run against one store and bus.
 *
 *   created ──start()──► running ──stop()──► stopped      (stop is safe to call twice)
 */
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/schema.ts';
import type { EventBus } from '../ports/event-bus.ts';
import type { ExecChannels } from '../ports/exec-channels.ts';
import type { ServiceRegistry } from '../ports/service-registry.ts';
import type { Store } from '../ports/store.ts';
import type { TaskQueue } from '../ports/task-queue.ts';
import type { Logger } from '../runtime/logger.ts';
import { buildApp } from './app.ts';
import { checkHealth, type HealthProbe, type HealthReport } from './health.ts';
import { DrainLoop } from './drain-loop.ts';
import { EventHub } from './events/event-hub.ts';
import { Reaper } from './reaper.ts';
import { RegistryWatcher } from './registry-watcher.ts';
import { SchedulerLoop } from './scheduler-loop.ts';
import { VmService } from './services/vm-service.ts';
import { WorkerService } from './services/worker-service.ts';

/** Events after which a pending task may fit: capacity freed, a worker arrived, a task handed back. */
const WAKING_EVENTS = new Set(['vm.deleted', 'worker.joined', 'worker.activated', 'task.failed', 'task.completed', 'task.requeued', 'task.created']);

export interface ControlPlaneDeps {
  store: Store;
  queue: TaskQueue;
  events: EventBus;
  registry: ServiceRegistry;
  channels: ExecChannels;
  log: Logger;
  mode: string;
  version: string;
  /** Extra warnings for /health, e.g. an unisolated driver in use. */
  warnings?: () => string[];
  probes?: HealthProbe[];
}

export class ControlPlane {
  readonly scheduler: SchedulerLoop;
  readonly reaper: Reaper;
  readonly drains: DrainLoop;
  readonly hub: EventHub | null;
  readonly watcher: RegistryWatcher;
  readonly vms: VmService;
  readonly workers: WorkerService;
  private app: FastifyInstance | null = null;
  private stopping: Promise<void> | null = null;

  constructor(
    private readonly config: Config,
    private readonly deps: ControlPlaneDeps,
  ) {
    const log = deps.log.child({ component: 'control-plane' });
    const s = config.scheduler;
    this.scheduler = new SchedulerLoop(deps.store, deps.queue, deps.events, {
      intervalMs: s.interval,
      batchSize: s.batch_size,
      strategy: s.strategy,
      maxCreatesInFlight: s.max_creates_in_flight_per_worker,
      redeliverAfterMs: s.redeliver_after,
    }, log.child({ component: 'scheduler' }));
    const wake = () => this.scheduler.trigger();
    this.reaper = new Reaper(deps.store, deps.events, Math.max(1000, Math.floor(config.worker.heartbeat_interval / 2)), wake, log.child({ component: 'reaper' }));
    this.vms = new VmService(deps.store, deps.queue, deps.events, wake);
    this.workers = new WorkerService(deps.store, deps.events, deps.queue, wake);
    this.hub = config.api_gateway.enable_websocket ? new EventHub(deps.events, { maxBufferedBytes: config.events.max_buffered_bytes, pingIntervalMs: config.events.ping_interval }) : null;
    this.watcher = new RegistryWatcher(deps.registry, deps.store, deps.events, wake, log.child({ component: 'registry-watch' }));
    this.drains = new DrainLoop({ store: deps.store, events: deps.events, queue: deps.queue }, 1000, log.child({ component: 'drain' }));
    // Freed capacity or a new worker means pending tasks may fit now.
    deps.events.subscribe((event) => {
      if (WAKING_EVENTS.has(event.type)) wake();
    });
  }

  health(): Promise<HealthReport> {
    const { store, queue, events, registry } = this.deps;
    const probes: HealthProbe[] = [
      { name: 'store', kind: store.kind, check: () => store.ping() },
      { name: 'queue', kind: queue.kind, check: () => queue.ping() },
      { name: 'events', kind: events.kind, check: async () => void (await events.replay(Number.MAX_SAFE_INTEGER, 1)) },
      { name: 'registry', kind: registry.kind, check: async () => void (await registry.listWorkers()) },
      ...(this.deps.probes ?? []),
    ];
    return checkHealth(this.deps.mode, this.deps.version, probes, this.deps.warnings ?? (() => []));
  }

  /** The HTTP application, once `start()` has built it. */
  get http(): FastifyInstance {
    if (!this.app) throw new Error('the control plane has not been started');
    return this.app;
  }

  async buildHttp(): Promise<FastifyInstance> {
    const gateway = this.config.api_gateway;
    this.app = await buildApp(
      {
        store: this.deps.store,
        queue: this.deps.queue,
        events: this.deps.events,
        registry: this.deps.registry,
        channels: this.deps.channels,
        vms: this.vms,
        workers: this.workers,
        scheduler: this.scheduler,
        health: () => this.health(),
        execWaitMs: gateway.exec_wait,
        hub: this.hub,
      },
      { logger: this.deps.log.child({ component: 'http' }), rateLimit: { ...gateway.rate_limit, windowMs: gateway.rate_limit.window }, version: this.deps.version },
    );
    return this.app;
  }

  /** Starts the loops and, unless `listen` is false, the HTTP server. Returns the bound address. */
  async start(listen = true): Promise<string | null> {
    const app = this.app ?? (await this.buildHttp());
    this.hub?.start();
    this.watcher.start();
    this.scheduler.start();
    this.reaper.start();
    this.drains.start();
    if (!listen) return null;
    return app.listen({ host: this.config.api_gateway.host, port: this.config.api_gateway.port });
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.reaper.stop();
      this.drains.stop();
      this.hub?.stop();
      await this.watcher.stop();
      await this.scheduler.stop();
      await this.app?.close();
    })();
    return this.stopping;
  }
}
