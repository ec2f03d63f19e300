/**
 * The worker agent: one per host. It registers, heartbeats, pulls its own queue and runs tasks on
 * its drivers, and it talks to the cluster only through its WorkerLink.
 *
 *   stopped ──start()──► starting ──► running ──stop()──► stopping ──► stopped
 *
 * Start: register, reconcile the host with the record, resume the tasks it held, then pull the
 * queue and start the timers (heartbeat, task audit, metrics). Stop undoes it in reverse order:
 * timers, queue (the tasks in hand finish), cancel subscription, deregister.
 */
import { statfsSync } from 'node:fs';
import { hostname as osHostname, networkInterfaces, totalmem } from 'node:os';
import type { DrainRequest, DriverName, Vm, WorkerRegistration, WorkerResources } from '../domain/index.ts';
import { errorMessage } from '../domain/index.ts';
import { Periodic } from '../lifecycle/periodic.ts';
import { lifecycle, Service } from '../lifecycle/service.ts';
import { ServiceGroup } from '../lifecycle/service-group.ts';
import type { ExecChannels } from '../ports/exec-channels.ts';
import type { Logger } from '../ports/logger.ts';
import type { VmDriver } from '../ports/vm-driver.ts';
import type { DrainProgress, WorkerLink } from '../ports/worker-link.ts';
import type { WorkerContext } from './context.ts';
import { hostAdmission, UsageSampler } from './host-resources.ts';
import { reconcile } from './reconcile.ts';
import { TaskRunner } from './task-runner.ts';
import { VmDeaths } from './vm-deaths.ts';
import { WorkerMetrics } from './worker-metrics.ts';
import type { Tracing } from '../observability/tracing.ts';

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
  link: WorkerLink;
  channels: ExecChannels;
  drivers: ReadonlyMap<DriverName, VmDriver>;
  log: Logger;
  /** Node's process metrics in this worker's registry too (a worker process of its own). */
  processMetrics?: boolean;
  /** A span per task run, in the trace of the request that made it (telemetry.otlp). */
  tracing?: Tracing;
}

export class WorkerAgent extends Service {
  readonly id: string;
  private readonly runner: TaskRunner;
  private readonly ctx: WorkerContext;
  private readonly sampler: UsageSampler;
  private readonly link: WorkerLink;
  private running: ServiceGroup | null = null;
  private heartbeatFailures = 0;
  /** The host's drivers, each call timed (read by operators' tools and tests; the agent owns them). */
  readonly drivers: ReadonlyMap<DriverName, VmDriver>;
  private readonly deaths: VmDeaths;
  private stopWatching: () => void = () => undefined;
  /** This worker's Prometheus metrics (docs/METRICS.md). */
  readonly metrics: WorkerMetrics;

  constructor(
    private readonly options: WorkerAgentOptions,
    private readonly deps: WorkerAgentDeps,
  ) {
    const id = options.id ?? osHostname();
    super(`worker ${id}`);
    this.id = id;
    this.metrics = new WorkerMetrics({
      processMetrics: deps.processMetrics ?? false,
      inFlight: () => this.runner.inFlight,
    });
    this.link = this.metrics.timeLink(deps.link);
    this.drivers = this.metrics.timeDrivers(deps.drivers);
    const log = deps.log.child({ component: 'worker', worker_id: this.id });
    this.ctx = {
      workerId: this.id,
      link: this.link,
      channels: deps.channels,
      drivers: this.drivers,
      log,
      vmsChanged: () => void this.pushResources(),
      admit: options.admit ?? hostAdmission,
    };
    this.runner = new TaskRunner(
      this.ctx,
      (type, outcome, seconds) => this.metrics.taskRan(type, outcome, seconds),
      deps.tracing,
    );
    this.sampler = new UsageSampler(options.stateDir);
    this.deaths = new VmDeaths(this.ctx, (driver, oom) => this.metrics.vmDied(driver, oom));
  }

  registration(): WorkerRegistration {
    const o = this.options;
    const capabilities = [...new Set([...this.deps.drivers.keys(), ...o.capabilities])];
    const drivers = [...this.deps.drivers].map(([name, d]) => [
      name,
      { isolation: d.info.isolation, warnings: d.info.warnings },
    ]);
    return {
      id: this.id,
      hostname: o.hostname ?? osHostname(),
      address: o.address ?? primaryAddress(),
      zone: o.zone,
      labels: o.labels,
      capabilities,
      ...o.resources,
      ttl_seconds: Math.ceil(o.ttlMs / 1000),
      metadata: { ...o.metadata, drivers: Object.fromEntries(drivers), pid: process.pid, node: process.version },
      started_at: new Date(),
    };
  }

  protected async onStart(): Promise<void> {
    const log = this.ctx.log;
    const registration = this.registration();
    await this.link.register(registration);

    // The drivers watch their VMs; one that dies by itself is reported failed with the reason.
    // Watching starts before reconcile, so that a VM it recovers and that then dies is heard.
    this.stopWatching = this.deaths.watch(this.deps.drivers);
    const report = await reconcile(this.ctx);
    if (report.recovered.length || report.lost.length || report.orphans.length)
      log.info(report, 'reconciled VMs after restart');

    // Tasks this worker had in hand when it last stopped: resumable ones run again, the rest fail.
    for (const task of (await this.link.assignments(this.id)).running) {
      void this.runner.run({ id: task.id, type: task.type }, new AbortController().signal, true);
    }

    const onError = (what: string) => (err: unknown) => log.warn({ err: errorMessage(err) }, `${what} failed`);
    const every = (name: string, intervalMs: number, pass: () => Promise<void>) =>
      new Periodic(name, pass, { intervalMs, runOnStart: false, onError: onError(name) });
    this.running = new ServiceGroup(
      `worker ${this.id}`,
      [
        // A cancel can reach any replica; it reaches the worker holding the task through the link.
        subscription('cancels', () =>
          this.link.onCancel(this.id, (taskId, reason) => this.runner.cancel(taskId, reason)),
        ),
        queueConsumer(this.link, this.id, this.runner, this.options.concurrency),
        every('heartbeat', this.options.heartbeatIntervalMs, () => this.heartbeat()),
        every('task audit', Math.max(5000, this.options.heartbeatIntervalMs), () => this.audit()),
        every('metrics', this.options.metricsIntervalMs, () => this.recordMetrics()),
      ],
      (member, err) => log.warn({ member, err: errorMessage(err) }, 'stopping a part of the worker failed'),
    );
    await this.running.start();
    log.info(
      { drivers: [...this.deps.drivers.keys()], zone: registration.zone, resources: this.options.resources },
      'worker registered and pulling its queue',
    );
  }

  protected async onStop(): Promise<void> {
    await this.running?.stop();
    this.running = null;
    this.stopWatching();
    try {
      await this.link.deregister(this.id);
    } catch (err) {
      this.ctx.log.warn({ err: errorMessage(err) }, 'deregistration failed; the reaper will mark the worker offline');
    }
    this.ctx.log.info('worker deregistered');
  }

  async heartbeat(): Promise<void> {
    try {
      const ack = await this.link.heartbeat(this.id);
      // The record is gone (an operator removed it): register again rather than beat into the void.
      if (!ack) await this.link.register(this.registration());
      if (ack?.was_offline) {
        // We were declared dead (partition, long pause): the control plane may have moved our
        // work away, so the host is compared with the record again.
        this.ctx.log.warn('back after being marked offline: reconciling');
        this.ctx.log.info(await reconcile(this.ctx), 'reconciled VMs after coming back');
      }
      if (this.heartbeatFailures > 0)
        this.ctx.log.info({ after_failures: this.heartbeatFailures }, 'heartbeat restored');
      if (this.deaths.unreported > 0) await this.deaths.flush();
      this.heartbeatFailures = 0;
    } catch (err) {
      this.heartbeatFailures++;
      this.metrics.heartbeatFailed();
      this.ctx.log.warn({ err: errorMessage(err), failures: this.heartbeatFailures }, 'heartbeat failed');
    }
  }

  /**
   * Tasks the control plane says this worker is running but no one here works on (their outcome
   * could not be reported, or their message vanished with a restarted engine) are taken up again.
   */
  async audit(): Promise<void> {
    const stale = Date.now() - 2 * this.options.heartbeatIntervalMs;
    for (const task of (await this.link.assignments(this.id)).running) {
      // A cancel whose notice was lost (bus down) is still on the row.
      if (task.cancel_requested_at && this.runner.cancel(task.id)) continue;
      if (this.runner.has(task.id) || task.updated_at.getTime() > stale) continue;
      this.ctx.log.warn({ task_id: task.id, type: task.type }, 'resuming a running task nobody here was working on');
      void this.runner.run({ id: task.id, type: task.type }, new AbortController().signal, true);
    }
  }

  /** Capacity can change (config reload, disk resize); the reservation ledger is the control plane's. */
  async pushResources(): Promise<void> {
    try {
      await this.link.reportResources(this.id, this.options.resources);
    } catch (err) {
      this.ctx.log.warn({ err: errorMessage(err) }, 'resource update failed');
    }
  }

  async recordMetrics(): Promise<void> {
    let vmCount = 0;
    const running = new Map<DriverName, number>();
    for (const [name, driver] of this.deps.drivers) {
      const n = (await driver.list()).filter((vm) => vm.state === 'running').length;
      running.set(name, n);
      vmCount += n;
    }
    const usage = this.sampler.sample();
    this.metrics.vmsRunning(running);
    this.metrics.hostSampled(usage, {
      memoryBytes: totalmem(),
      diskBytes: fileSystemBytes(this.options.stateDir),
    });
    await this.link.recordMetrics({
      worker_id: this.id,
      timestamp: new Date(),
      ...usage,
      vm_count: vmCount,
      tasks_processed: this.runner.tasksProcessed,
      network_in_mb: 0,
      network_out_mb: 0,
    });
  }

  /**
   * SIGTERM in worker mode: ask the control plane to drain this worker (its queued creates move
   * elsewhere, its VMs are deleted at the deadline), wait until it says the drain is complete,
   * then stop. The control plane enforces the drain; the worker only waits and reports progress.
   */
  async drainAndStop(request: DrainRequest, onProgress?: (progress: DrainProgress) => void): Promise<void> {
    if (this.state !== 'running') return this.stop();
    let progress = await this.link.requestDrain(this.id, { message: 'worker shutting down', ...request });
    for (;;) {
      onProgress?.(progress);
      if (progress.drain?.drained_at || !progress.drain) break; // done, or activated again by an operator
      await new Promise((resolve) => setTimeout(resolve, 500));
      progress = (await this.link.drainProgress(this.id).catch(() => progress)) ?? progress;
    }
    await this.stop();
  }
}

/** The queue consumer as a lifecycle: stopping it lets the tasks in hand finish. */
function queueConsumer(link: WorkerLink, workerId: string, runner: TaskRunner, concurrency: number) {
  let consumer: ReturnType<WorkerLink['consume']> | null = null;
  return lifecycle(
    'queue',
    () => {
      consumer = link.consume(workerId, (task, signal) => runner.run(task, signal), { concurrency });
    },
    () => consumer?.close(),
  );
}

function subscription(name: string, subscribe: () => () => void) {
  let unsubscribe: (() => void) | null = null;
  return lifecycle(
    name,
    () => {
      unsubscribe = subscribe();
    },
    () => unsubscribe?.(),
  );
}

/** The size of the file system holding `dir` (0 when it cannot be read). */
function fileSystemBytes(dir: string): number {
  try {
    const fs = statfsSync(dir);
    return fs.blocks * fs.bsize;
  } catch {
    return 0;
  }
}

function primaryAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const nic of list ?? []) if (nic.family === 'IPv4' && !nic.internal) return nic.address;
  }
  return '127.0.0.1';
}
