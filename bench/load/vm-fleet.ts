/**
 * b. 1,000 VMs running at once across 10 workers (WorkerAgents with the process driver, over the
 * agent channel), created through `POST /api/v1/vms?wait=true` a bounded number at a time:
 * create throughput and latency, and the control plane's CPU and memory (its own process, read
 * from /proc) while it places them. Each worker holds at most 110, so no fewer than ten can hold
 * them all. Then all are deleted the same way, and the cluster's used capacity must return to 0.
 * Each phase is bounded: no call starts after LOAD_FLEET_PHASE_SECONDS (60); what was not done
 * by then shows in the table (and the targets that need it are not met).
 * Environment: LOAD_FLEET_VMS (1000), LOAD_FLEET_WORKERS (10), LOAD_FLEET_CONCURRENCY (50).
 */
import { join } from 'node:path';
import { startProcessAgents } from './agents.ts';
import { startControlPlane } from './control-plane.ts';
import { ProcessSampler } from './proc-usage.ts';
import { envNumber, type Scenario } from './scenario.ts';
import { percentile, round } from './stats.ts';
import { capacity, capacityReturnsToZero, createVms, deleteVms } from './vm-calls.ts';

export const vmFleet: Scenario = {
  name: 'vms',
  title: 'b. 1,000 concurrent VMs across 10 workers',
  budgetMs: 180_000,
  async run({ engines, scope, dir, log }) {
    const vms = envNumber('LOAD_FLEET_VMS', 1000);
    const workers = envNumber('LOAD_FLEET_WORKERS', 10);
    const concurrency = envNumber('LOAD_FLEET_CONCURRENCY', 50);
    const phaseSeconds = envNumber('LOAD_FLEET_PHASE_SECONDS', 60);
    // Room for 10 % more than asked, spread so that every worker is needed.
    const perWorker = Math.ceil((vms * 1.1) / workers);
    const shared = await engines();
    const cp = await startControlPlane(shared, scope);
    log(`${workers} workers with the process driver`);
    await startProcessAgents(cp, scope, {
      count: workers,
      dir: join(dir, 'workers'),
      resources: { cpu_cores: perWorker, memory_mb: perWorker * 64, disk_gb: perWorker * 2, max_vms: perWorker },
    });

    log(`creating ${vms} VMs, ${concurrency} at a time`);
    let sampler = new ProcessSampler(cp.pid, shared);
    const created = await createVms(cp, vms, concurrency, phaseSeconds);
    const createCp = sampler.stop();
    const { body } = await cp.api<{ vms: { id: string; status: string; worker_id: string | null }[] }>(
      'GET',
      '/vms?status=running&limit=1000',
    );
    const perHost = new Map<string, number>();
    for (const vm of body.vms) if (vm.worker_id) perHost.set(vm.worker_id, (perHost.get(vm.worker_id) ?? 0) + 1);
    const atPeak = await capacity(cp);

    log(`deleting them, ${concurrency} at a time`);
    sampler = new ProcessSampler(cp.pid, shared);
    const deleted = await deleteVms(cp, created.ids, concurrency, phaseSeconds);
    const deleteCp = sampler.stop();
    const back = await capacityReturnsToZero(cp, 20_000);

    const phase = (name: string, b: typeof created, usage: typeof createCp) => [
      name,
      b.latencies.length,
      round(b.seconds, 1),
      round(b.latencies.length / b.seconds, 1),
      percentile(b.latencies, 0.5),
      percentile(b.latencies, 0.99),
      b.failures.length,
      b.skipped,
      usage.cpu_percent,
      usage.peak_rss_mb,
      usage.postgres_cpu_percent,
      usage.redis_cpu_percent,
      usage.suite_cpu_percent,
    ];
    const hosts = [...perHost.values()];
    for (const failure of [...created.failures, ...deleted.failures].slice(0, 5)) log(`failed: ${failure}`);
    return {
      tables: [
        {
          title: `${vms} VMs on ${workers} workers (process driver), ${concurrency} calls in flight, ?wait=true`,
          table: {
            headers: [
              'phase',
              'VMs',
              'seconds',
              'VMs/s',
              'p50 (ms)',
              'p99 (ms)',
              'failed',
              `not started (past ${phaseSeconds} s)`,
              'CP CPU (% of a core)',
              'CP peak RSS (MB)',
              'Postgres CPU (%)',
              'Redis CPU (%)',
              'suite CPU (%)',
            ],
            rows: [phase('create', created, createCp), phase('delete', deleted, deleteCp)],
          },
        },
        {
          title: 'placement and capacity',
          table: {
            headers: ['what', 'value'],
            rows: [
              ['VMs running at once (GET /vms?status=running)', body.vms.length],
              ['workers holding them', perHost.size],
              ['VMs per worker, min – max', hosts.length ? `${Math.min(...hosts)} – ${Math.max(...hosts)}` : '—'],
              ['cluster stats at peak: total_vms / used vCPUs', `${atPeak.total_vms} / ${atPeak.used_cpu_cores}`],
              [
                'after deleting: total_vms / used vCPUs / memory MB / disk GB',
                `${back.last.total_vms} / ${back.last.used_cpu_cores} / ${back.last.used_memory_mb} / ${back.last.used_disk_gb}`,
              ],
              ['time until capacity was back to 0 (ms)', Math.round(back.ms)],
            ],
          },
        },
      ],
      summary: [
        {
          scenario: 'b. VMs',
          metric: 'VMs running at once',
          value: body.vms.length,
          unit: '',
          target: { op: '>=', value: vms },
        },
        {
          scenario: 'b. VMs',
          metric: 'workers holding them',
          value: perHost.size,
          unit: '',
          target: { op: '>=', value: Math.min(10, workers) },
        },
        {
          scenario: 'b. VMs',
          metric: 'create throughput',
          value: round(created.latencies.length / created.seconds, 1),
          unit: 'VMs/s',
        },
        { scenario: 'b. VMs', metric: 'create p50', value: percentile(created.latencies, 0.5), unit: 'ms' },
        { scenario: 'b. VMs', metric: 'create p99', value: percentile(created.latencies, 0.99), unit: 'ms' },
        { scenario: 'b. VMs', metric: 'CP CPU while creating', value: createCp.cpu_percent, unit: '% of a core' },
        { scenario: 'b. VMs', metric: 'CP peak RSS', value: createCp.peak_rss_mb, unit: 'MB' },
        {
          scenario: 'b. VMs',
          metric: 'failed calls (create + delete)',
          value: created.failures.length + deleted.failures.length,
          unit: '',
          target: { op: '<=', value: 0 },
        },
        {
          scenario: 'b. VMs',
          metric: 'used vCPUs after deleting all',
          value: back.last.used_cpu_cores + back.last.total_vms,
          unit: '',
          target: { op: '<=', value: 0 },
        },
      ],
      notes: [
        `Latency is the whole POST /vms?wait=true (or DELETE) round trip, with ${concurrency} calls in flight; throughput is VMs done over the phase's wall time.`,
        'The workers and the HTTP clients run in the suite process (its CPU is the last column); the control plane is a process of its own.',
      ],
      details: {
        vms,
        workers,
        concurrency,
        create: { ...createCp, seconds: created.seconds, failures: created.failures.slice(0, 20) },
        delete: { ...deleteCp, seconds: deleted.seconds, failures: deleted.failures.slice(0, 20) },
        per_worker: Object.fromEntries(perHost),
        capacity_after_delete: back,
      },
    };
  },
};
