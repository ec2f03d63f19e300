/**
 * A worker's own Prometheus metrics: what only its process sees — the tasks it ran and how long
 * they took, its driver calls, its round trips to the control plane, its host's usage. A cluster
 * worker serves them on its metrics listener (runtime/metrics-listener.ts); `aetherium dev` adds
 * them to the control plane's `/metrics`. The names are in docs/METRICS.md.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { DriverName } from '../domain/index.ts';
import { timedPort } from '../observability/timed-port.ts';
import type { VmDriver } from '../ports/vm-driver.ts';
import type { WorkerLink } from '../ports/worker-link.ts';

const CALL_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const TASK_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
const DRIVER_OPERATIONS = new Set(['create', 'delete', 'start', 'stop', 'exec']);

export interface HostUsage {
  cpu_usage: number;
  memory_usage: number;
  disk_usage: number;
}

export class WorkerMetrics {
  readonly registry = new Registry();
  readonly #tasks: Counter<'type' | 'outcome'>;
  readonly #taskDuration: Histogram<'type' | 'outcome'>;
  readonly #driverDuration: Histogram<'driver' | 'operation'>;
  readonly #driverErrors: Counter<'driver' | 'operation'>;
  readonly #linkDuration: Histogram<'operation'>;
  readonly #linkErrors: Counter<'operation'>;
  readonly #heartbeatFailures: Counter;
  readonly #vmDeaths: Counter<'driver' | 'cause'>;
  readonly #vmsRunning: Gauge<'driver'>;
  readonly #cpu: Gauge;
  readonly #memory: Gauge;
  readonly #disk: Gauge;

  /** `processMetrics`: Node's own metrics too (off in `aetherium dev`, whose control plane has them). */
  constructor(options: { processMetrics: boolean; inFlight: () => number }) {
    const registers = [this.registry];
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry });
    this.#tasks = new Counter({
      name: 'aetherium_worker_tasks_total',
      help: 'Tasks this worker ran, by type and outcome',
      labelNames: ['type', 'outcome'],
      registers,
    });
    this.#taskDuration = new Histogram({
      name: 'aetherium_worker_task_run_duration_seconds',
      help: 'Time this worker spent on a task, by type and outcome',
      labelNames: ['type', 'outcome'],
      buckets: TASK_BUCKETS,
      registers,
    });
    new Gauge({
      name: 'aetherium_worker_tasks_in_flight',
      help: 'Tasks in hand now',
      registers,
      collect() {
        this.set(options.inFlight());
      },
    });
    this.#vmsRunning = new Gauge({
      name: 'aetherium_worker_vms_running',
      help: "VMs the host's drivers report running, by driver",
      labelNames: ['driver'],
      registers,
    });
    this.#driverDuration = new Histogram({
      name: 'aetherium_worker_driver_operation_duration_seconds',
      help: 'Driver calls, by driver and operation',
      labelNames: ['driver', 'operation'],
      buckets: [...CALL_BUCKETS, 30, 60, 120],
      registers,
    });
    this.#driverErrors = new Counter({
      name: 'aetherium_worker_driver_errors_total',
      help: 'Driver calls that failed, by driver and operation',
      labelNames: ['driver', 'operation'],
      registers,
    });
    this.#linkDuration = new Histogram({
      name: 'aetherium_worker_link_request_duration_seconds',
      help: 'Round trips to the control plane, by operation',
      labelNames: ['operation'],
      buckets: CALL_BUCKETS,
      registers,
    });
    this.#linkErrors = new Counter({
      name: 'aetherium_worker_link_errors_total',
      help: 'Round trips to the control plane that failed, by operation',
      labelNames: ['operation'],
      registers,
    });
    this.#heartbeatFailures = new Counter({
      name: 'aetherium_worker_heartbeat_failures_total',
      help: 'Heartbeats that did not reach the control plane',
      registers,
    });
    this.#vmDeaths = new Counter({
      name: 'aetherium_worker_vm_deaths_total',
      help: 'VMs that died by themselves (init or VMM exited, out of memory), by driver and cause',
      labelNames: ['driver', 'cause'],
      registers,
    });
    this.#cpu = new Gauge({
      name: 'aetherium_worker_host_cpu_usage_ratio',
      help: "The host's CPU use at the last sample (0-1)",
      registers,
    });
    this.#memory = new Gauge({
      name: 'aetherium_worker_host_memory_used_bytes',
      help: "The host's memory in use at the last sample",
      registers,
    });
    this.#disk = new Gauge({
      name: 'aetherium_worker_host_disk_used_bytes',
      help: "The state directory's file system in use at the last sample",
      registers,
    });
  }

  taskRan(type: string, outcome: string, seconds: number): void {
    this.#tasks.inc({ type, outcome });
    this.#taskDuration.observe({ type, outcome }, seconds);
  }

  heartbeatFailed(): void {
    this.#heartbeatFailures.inc();
  }

  vmDied(driver: DriverName, oom: boolean): void {
    this.#vmDeaths.inc({ driver, cause: oom ? 'oom' : 'exited' });
  }

  /** The host's usage (percentages, as the history keeps them) and its sizes, to state them in bytes. */
  hostSampled(usage: HostUsage, sizes: { memoryBytes: number; diskBytes: number }): void {
    this.#cpu.set(usage.cpu_usage / 100);
    this.#memory.set((usage.memory_usage / 100) * sizes.memoryBytes);
    this.#disk.set((usage.disk_usage / 100) * sizes.diskBytes);
  }

  vmsRunning(counts: ReadonlyMap<DriverName, number>): void {
    for (const [driver, n] of counts) this.#vmsRunning.set({ driver }, n);
  }

  /** The drivers with each of their VM operations timed. */
  timeDrivers(drivers: ReadonlyMap<DriverName, VmDriver>): ReadonlyMap<DriverName, VmDriver> {
    const out = new Map<DriverName, VmDriver>();
    for (const [name, driver] of drivers) {
      out.set(
        name,
        timedPort(driver, (operation, seconds, failed) => {
          if (!DRIVER_OPERATIONS.has(operation)) return;
          this.#driverDuration.observe({ driver: name, operation }, seconds);
          if (failed) this.#driverErrors.inc({ driver: name, operation });
        }),
      );
    }
    return out;
  }

  /** The link with every round trip timed. */
  timeLink(link: WorkerLink): WorkerLink {
    return timedPort(link, (operation, seconds, failed) => {
      this.#linkDuration.observe({ operation }, seconds);
      if (failed) this.#linkErrors.inc({ operation });
    });
  }
}
