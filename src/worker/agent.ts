/**
 * The worker agent: one per host. It registers, heartbeats, pulls its own queue and runs tasks on
 * its drivers.
 *
 *   created ──start()──► running ──stop()──► stopping ──► stopped
 *
 * `stop()` is safe to call twice and undoes `start()` in reverse order: stop pulling, let the tasks
 * in hand finish, stop the heartbeat, deregister.
 */
import { hostname as osHostname, networkInterfaces } from 'node:os';
import type { DriverName, Vm, Worker, WorkerRegistration, WorkerResources } from '../domain/index.ts';
import { errorMessage } from '../domain/index.ts';
import type { EventBus } from '../ports/event-bus.ts';
import type { ExecChannels } from '../ports/exec-channels.ts';
import type { ServiceRegistry } from '../ports/service-registry.ts';
import type { Store } from '../ports/store.ts';
import type { QueueConsumer, TaskQueue } from '../ports/task-queue.ts';
import type { VmDriver } from '../ports/vm-driver.ts';
import type { Logger } from '../runtime/logger.ts';
import type { WorkerContext } from './context.ts';
import { hostAdmission, UsageSampler } from './host-resources.ts';
import { beginDrain, type DrainRequest, progressDrain } from '../operations/drain.ts';
import { reconcile } from './reconcile.ts';
import { TaskRunner } from './task-runner.ts';

export interface WorkerAgentOptions {
  id?: string;
  hostname?: string;
  address?: string;
  zone: string;
  labels: Record<string, string>;
  capabilities: string[];
  resources: WorkerResources;
  heartbeatIntervalMs: number;
  ttlMs: number;
  metricsIntervalMs: number;
  concurrency: number;
  stateDir: string;
  metadata?: Record<string, unknown>;
  /** The host's admission check for creates (default: enough memory really available). */
  admit?: (vm: Vm) => string | null;
}

export interface WorkerAgentDeps {
  store: Store;
  queue: TaskQueue;
  events: EventBus;
  channels: ExecChannels;
  registry: ServiceRegistry;
  drivers: ReadonlyMap<DriverName, VmDriver>;
  log: Logger;
}

export type AgentState = 'created' | 'running' | 'stopping' | 'stopped';

export class WorkerAgent {
  readonly id: string;
  private state: AgentState = 'created';
  private consumer: QueueConsumer | null = null;
  private timers: NodeJS.Timeout[] = [];
  private readonly runner: TaskRunner;
  private readonly ctx: WorkerContext;
  private readonly sampler: UsageSampler;
  private stopping: Promise<void> | null = null;
  private heartbeatFailures = 0;
  /** The status last written to an external registry, so drains show there too. */
  private registryStatus: string | null = null;
  private unsubscribe: (() => void) | null = null;

  constructor(
    private readonly options: WorkerAgentOptions,
    private readonly deps: WorkerAgentDeps,
  ) {
    this.id = options.id ?? osHostname();
    const log = deps.log.child({ component: 'worker', worker_id: this.id });
    this.ctx = { workerId: this.id, store: deps.store, events: deps.events, channels: deps.channels, drivers: deps.drivers, log, vmsChanged: () => void this.pushResources(), admit: options.admit ?? hostAdmission };
    this.runner = new TaskRunner(this.ctx, deps.queue);
    this.sampler = new UsageSampler(options.stateDir);
  }

  get status(): AgentState {
    return this.state;
  }

  registration(): WorkerRegistration {
    const o = this.options;
    const capabilities = [...new Set([...this.deps.drivers.keys(), ...o.capabilities])];
    return {
      id: this.id,
      hostname: o.hostname ?? osHostname(),
      address: o.address ?? primaryAddress(),
      zone: o.zone,
      labels: o.labels,
      capabilities,
      ...o.resources,
      ttl_seconds: Math.ceil(o.ttlMs / 1000),
      metadata: {
        ...o.metadata,
        drivers: Object.fromEntries([...this.deps.drivers].map(([name, d]) => [name, { isolation: d.info.isolation, warnings: d.info.warnings }])),
        pid: process.pid,
        node: process.version,
      },
      started_at: new Date(),
    };
  }

  async start(): Promise<void> {
    if (this.state !== 'created') throw new Error(`worker agent cannot start from state ${this.state}`);
    const { store, registry, queue, events } = this.deps;
    const log = this.ctx.log;
    const registration = this.registration();
    const { created } = await store.upsertWorker(registration, new Date());
    if (registry.kind !== 'builtin') await registry.register(registration);
    // Joins and leaves are announced by the control plane from the registry's watch, exactly once.
    if (!created) await events.publish({ type: 'worker.updated', data: { worker_id: this.id, zone: registration.zone, capabilities: registration.capabilities, restarted: true } });

    const report = await reconcile(this.ctx);
    if (report.recovered.length || report.lost.length || report.orphans.length) log.info(report, 'reconciled VMs after restart');

    // Tasks this worker had in hand when it last stopped: resumable ones run again, the rest fail.
    for (const task of await store.listTasks({ worker_id: this.id, status: 'running' })) {
      void this.runner.run({ id: task.id, type: task.type }, new AbortController().signal, true);
    }
    for (const task of await store.listTasks({ worker_id: this.id, status: 'scheduled' })) {
      await queue.enqueue(this.id, { id: task.id, type: task.type, attempt: task.retry_count });
    }

    // A cancel can reach any replica; it reaches the worker holding the task through the bus.
    this.unsubscribe = events.subscribe((event) => {
      if (event.type === 'task.cancel_requested' && typeof event.data.task_id === 'string') {
        this.runner.cancel(event.data.task_id, typeof event.data.reason === 'string' ? event.data.reason : undefined);
      }
    });
    this.consumer = queue.consume(this.id, (task, signal) => this.runner.run(task, signal), { concurrency: this.options.concurrency });
    this.timers.push(setInterval(() => void this.heartbeat(), this.options.heartbeatIntervalMs));
    this.timers.push(setInterval(() => void this.audit(), Math.max(5000, this.options.heartbeatIntervalMs)));
    this.timers.push(setInterval(() => void this.recordMetrics(), this.options.metricsIntervalMs));
    for (const timer of this.timers) timer.unref();
    this.state = 'running';
    log.info({ drivers: [...this.deps.drivers.keys()], zone: registration.zone, resources: this.options.resources }, 'worker registered and pulling its queue');
  }

  async heartbeat(): Promise<void> {
    try {
      const before = await this.deps.store.getWorker(this.id);
      const worker = await this.deps.store.touchWorker(this.id, new Date());
      if (this.deps.registry.kind !== 'builtin') await this.deps.registry.heartbeat(this.id);
      if (!worker) {
        // The row is gone (an operator removed it): register again rather than beat into the void.
        await this.deps.store.upsertWorker(this.registration(), new Date());
      } else if (this.deps.registry.kind !== 'builtin' && worker.status !== this.registryStatus) {
        await this.deps.registry.updateStatus(this.id, worker.status);
        this.registryStatus = worker.status;
      }
      if (before?.status === 'offline') {
        // We were declared dead (partition, long pause): the control plane may have moved our
        // work away, so the host is compared with the records again.
        this.ctx.log.warn('back after being marked offline: reconciling');
        const report = await reconcile(this.ctx);
        this.ctx.log.info(report, 'reconciled VMs after coming back');
      }
      if (this.heartbeatFailures > 0) this.ctx.log.info({ after_failures: this.heartbeatFailures }, 'heartbeat restored');
      this.heartbeatFailures = 0;
    } catch (err) {
      this.heartbeatFailures++;
      this.ctx.log.warn({ err: errorMessage(err), failures: this.heartbeatFailures }, 'heartbeat failed');
    }
  }

  /**
   * Tasks the store says this worker is running but no one here works on (their outcome could not
   * be written, or their message vanished with a restarted engine) are taken up again.
   */
  async audit(): Promise<void> {
    try {
      const stale = Date.now() - 2 * this.options.heartbeatIntervalMs;
      for (const task of await this.deps.store.listTasks({ worker_id: this.id, status: 'running' })) {
        // A cancel whose event was lost (bus down) is still on the row.
        if (task.cancel_requested_at && this.runner.cancel(task.id)) continue;
        if (this.runner.has(task.id) || task.updated_at.getTime() > stale) continue;
        this.ctx.log.warn({ task_id: task.id, type: task.type }, 'resuming a running task nobody here was working on');
        void this.runner.run({ id: task.id, type: task.type }, new AbortController().signal, true);
      }
    } catch (err) {
      this.ctx.log.warn({ err: errorMessage(err) }, 'task audit failed');
    }
  }

  /** Capacity can change (config reload, disk resize); the reservation ledger is the store's. */
  async pushResources(): Promise<void> {
    try {
      await this.deps.store.updateWorkerResources(this.id, this.options.resources);
      if (this.deps.registry.kind !== 'builtin') await this.deps.registry.updateResources(this.id, this.options.resources);
      const worker = await this.deps.store.getWorker(this.id);
      if (worker) {
        await this.deps.events.publish({
          type: 'worker.resources',
          data: { worker_id: this.id, vm_count: worker.vm_count, used_cpu_cores: worker.used_cpu_cores, used_memory_mb: worker.used_memory_mb, used_disk_gb: worker.used_disk_gb },
        });
      }
    } catch (err) {
      this.ctx.log.warn({ err: errorMessage(err) }, 'resource update failed');
    }
  }

  async recordMetrics(): Promise<void> {
    try {
      const usage = this.sampler.sample();
      const worker = await this.deps.store.getWorker(this.id);
      await this.deps.store.recordWorkerMetrics({
        worker_id: this.id,
        timestamp: new Date(),
        ...usage,
        vm_count: worker?.vm_count ?? 0,
        tasks_processed: this.runner.tasksProcessed,
        network_in_mb: 0,
        network_out_mb: 0,
      });
    } catch (err) {
      this.ctx.log.warn({ err: errorMessage(err) }, 'recording metrics failed');
    }
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  /**
   * SIGTERM in worker mode: drain this worker with the configured deadline (its queued creates move
   * elsewhere, its VMs are deleted at the deadline), wait until no VM is left, then deregister.
   */
  async drainAndStop(request: DrainRequest, onProgress?: (worker: Worker) => void): Promise<void> {
    if (this.state !== 'running') return this.stop();
    const deps = { store: this.deps.store, events: this.deps.events, queue: this.deps.queue };
    let worker = await beginDrain(deps, this.id, { message: 'worker shutting down', ...request });
    for (;;) {
      onProgress?.(worker);
      if ((await progressDrain(deps, worker)) === 'drained') break;
      await new Promise((resolve) => setTimeout(resolve, 500));
      worker = (await this.deps.store.getWorker(this.id).catch(() => worker)) ?? worker;
      if (!worker.drain) break; // activated again by an operator: stop draining, just leave
    }
    await this.stop();
  }

  private async shutdown(): Promise<void> {
    if (this.state === 'created') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    await this.consumer?.close();
    this.unsubscribe?.();
    try {
      await this.deps.store.setWorkerStatus(this.id, 'offline');
      if (this.deps.registry.kind !== 'builtin') await this.deps.registry.deregister(this.id);
      if (await this.deps.store.announceWorker(this.id, 'left')) {
        await this.deps.events.publish({ type: 'worker.left', data: { worker_id: this.id, reason: 'deregistered' } });
      }
    } catch (err) {
      this.ctx.log.warn({ err: errorMessage(err) }, 'deregistration failed; the reaper will mark the worker offline');
    }
    this.state = 'stopped';
    this.ctx.log.info('worker deregistered');
  }
}

function primaryAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const nic of list ?? []) if (nic.family === 'IPv4' && !nic.internal) return nic.address;
  }
  return '127.0.0.1';
}
