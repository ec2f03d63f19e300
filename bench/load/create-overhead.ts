/**
 * e. What the control plane adds to a create, in one run:
 * - overhead: `POST /vms?wait=true` one at a time (the process driver, on workers reached over the
 *   agent channel) against `ProcessDriver.create` called directly, as many times, in a folder of
 *   its own: p50 and p99 of the first minus the same percentile of the second;
 * - throughput: creates end to end with a bounded number in flight, against raw BullMQ on the
 *   same Redis (a Queue, and a Worker whose processor does nothing, as many in flight), as a
 *   ratio. Every create goes through at least one BullMQ job, so the ratio says how much of the
 *   queue's rate the rest of the path leaves.
 * A few creates of each kind run first and are not counted, so that both sides are warm.
 * Environment: LOAD_OVERHEAD_VMS (150), LOAD_THROUGHPUT_VMS (300), LOAD_THROUGHPUT_CONCURRENCY
 * (50), LOAD_OVERHEAD_WORKERS (10), LOAD_THROUGHPUT_SECONDS (30: no create starts after that).
 */
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { ProcessDriver } from '../../src/adapters/vmm/process/process-driver.ts';
import { startProcessAgents } from './agents.ts';
import type { Engines } from './control-plane.ts';
import { startControlPlane } from './control-plane.ts';
import { envNumber, type Scenario } from './scenario.ts';
import { percentile, pool, round } from './stats.ts';
import { createVms, deleteVms, SMALL_VM } from './vm-calls.ts';

const TARGET_P50_MS = 5;
const TARGET_P99_MS = 25;
const WARM_UP = 10;

/** The process driver on its own, in a folder of its own: what a create costs without the cluster. */
async function rawDriver(dir: string) {
  const driver = new ProcessDriver({ stateDir: dir, owner: 'load-raw-driver' });
  let next = 0;
  return {
    async create(): Promise<number> {
      const id = `raw-${next++}`;
      const started = performance.now();
      await driver.create({
        id,
        name: id,
        vcpus: SMALL_VM.vcpus,
        memory_mb: SMALL_VM.memory_mb,
        disk_gb: SMALL_VM.disk_gb,
        image: null,
      });
      return performance.now() - started;
    },
    async close() {
      for (const vm of await driver.list()) await driver.delete(vm.id);
      await driver.close();
    },
  };
}

/** Jobs per second through BullMQ alone: `count` adds, `concurrency` at a time, a no-op processor. */
async function bullmqRate(engines: Engines, count: number, concurrency: number): Promise<number> {
  const connection = { host: '127.0.0.1', port: engines.redis.port, maxRetriesPerRequest: null };
  const queue = new Queue('load-raw', { connection });
  let done = 0;
  let finished: () => void = () => {};
  const all = new Promise<void>((resolve) => (finished = resolve));
  const worker = new Worker('load-raw', async () => {}, { connection, concurrency, autorun: false });
  worker.on('completed', () => {
    if (++done === count + WARM_UP) finished();
  });
  try {
    void worker.run();
    await worker.waitUntilReady();
    let t0 = 0;
    await pool(WARM_UP, WARM_UP, async (i) => void (await queue.add('job', { i }, { removeOnComplete: true })));
    while (done < WARM_UP) await new Promise((r) => setTimeout(r, 5));
    t0 = performance.now();
    await pool(count, concurrency, async (i) => void (await queue.add('job', { i }, { removeOnComplete: true })));
    await all;
    return count / ((performance.now() - t0) / 1000);
  } finally {
    await worker.close();
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
  }
}

export const createOverhead: Scenario = {
  name: 'overhead',
  title: 'e. control-plane overhead per create',
  budgetMs: 150_000,
  async run({ engines, scope, dir, log }) {
    const sequential = envNumber('LOAD_OVERHEAD_VMS', 150);
    const throughputVms = envNumber('LOAD_THROUGHPUT_VMS', 300);
    const concurrency = envNumber('LOAD_THROUGHPUT_CONCURRENCY', 50);
    const workers = envNumber('LOAD_OVERHEAD_WORKERS', 10);
    const throughputSeconds = envNumber('LOAD_THROUGHPUT_SECONDS', 30);
    const shared = await engines();
    const cp = await startControlPlane(shared, scope);
    const perWorker = Math.ceil((Math.max(sequential, throughputVms) * 1.2) / workers) + WARM_UP;
    await startProcessAgents(cp, scope, {
      count: workers,
      dir: join(dir, 'workers'),
      resources: { cpu_cores: perWorker, memory_mb: perWorker * 64, disk_gb: perWorker * 2, max_vms: perWorker },
    });
    const failures: string[] = [];
    const cleanUp = async (ids: string[]) => {
      const gone = await deleteVms(cp, ids, 50);
      failures.push(...gone.failures);
    };

    // One through the API, then one on the driver alone, in turn: both see the same machine.
    log(`${sequential} creates one at a time through the API, each followed by one on the driver alone`);
    const raw = await rawDriver(join(dir, 'raw-driver'));
    scope.defer('raw driver', () => raw.close());
    const warm = await createVms(cp, WARM_UP, 1);
    await cleanUp(warm.ids);
    for (let i = 0; i < WARM_UP; i++) await raw.create();
    const apiMs: number[] = [];
    const driver: number[] = [];
    const apiIds: string[] = [];
    for (let i = 0; i < sequential; i++) {
      const one = await createVms(cp, 1, 1);
      apiMs.push(...one.latencies);
      apiIds.push(...one.ids);
      failures.push(...one.failures);
      driver.push(await raw.create());
    }
    await cleanUp(apiIds);

    log(`${throughputVms} creates end to end, ${concurrency} in flight`);
    const burst = await createVms(cp, throughputVms, concurrency, throughputSeconds);
    failures.push(...burst.failures);
    await cleanUp(burst.ids);
    const e2eRate = burst.latencies.length / burst.seconds;

    log(`${throughputVms} raw BullMQ jobs, ${concurrency} in flight`);
    const rawRate = await bullmqRate(shared, throughputVms, concurrency);
    for (const failure of failures.slice(0, 5)) log(`failed: ${failure}`);

    const row = (what: string, samples: number[]) => [
      what,
      samples.length,
      percentile(samples, 0.5),
      percentile(samples, 0.99),
      percentile(samples, 1),
    ];
    const overheadP50 = percentile(apiMs, 0.5) - percentile(driver, 0.5);
    const overheadP99 = percentile(apiMs, 0.99) - percentile(driver, 0.99);
    const ratio = e2eRate / rawRate;
    return {
      tables: [
        {
          title: `one create at a time, ${workers} workers (process driver) over the agent channel`,
          table: {
            headers: ['what', 'creates', 'p50 (ms)', 'p99 (ms)', 'max (ms)'],
            rows: [
              row('POST /vms?wait=true', apiMs),
              row('ProcessDriver.create alone', driver),
              ['control-plane overhead (difference)', '', round(overheadP50, 2), round(overheadP99, 2), ''],
            ],
          },
        },
        {
          title: `throughput, ${concurrency} in flight, same Redis`,
          table: {
            headers: ['what', 'count', 'per second'],
            rows: [
              ['creates end to end (POST /vms?wait=true)', burst.latencies.length, round(e2eRate, 1)],
              ['raw BullMQ jobs (Queue.add + a no-op Worker)', throughputVms, round(rawRate, 0)],
              ['ratio', '', round(ratio, 3)],
            ],
          },
        },
      ],
      summary: [
        {
          scenario: 'e. overhead',
          metric: 'CP overhead per create, p50',
          value: round(overheadP50, 2),
          unit: 'ms',
          target: { op: '<=', value: TARGET_P50_MS },
        },
        {
          scenario: 'e. overhead',
          metric: 'CP overhead per create, p99',
          value: round(overheadP99, 2),
          unit: 'ms',
          target: { op: '<=', value: TARGET_P99_MS },
        },
        { scenario: 'e. overhead', metric: 'end-to-end creates', value: round(e2eRate, 1), unit: 'VMs/s' },
        { scenario: 'e. overhead', metric: 'raw BullMQ jobs', value: round(rawRate, 0), unit: 'jobs/s' },
        { scenario: 'e. overhead', metric: 'creates / raw BullMQ jobs', value: round(ratio, 3), unit: '' },
        {
          scenario: 'e. overhead',
          metric: 'failed calls',
          value: failures.length,
          unit: '',
          target: { op: '<=', value: 0 },
        },
      ],
      notes: [
        'Overhead = a percentile of the API round trip minus the same percentile of the driver alone (not per-create pairs).',
        'It covers the HTTP request, the store writes, placement, the queue, the agent channel both ways and the wait for the outcome.',
      ],
      details: {
        sequential,
        throughput_vms: throughputVms,
        concurrency,
        api_ms: { p50: percentile(apiMs, 0.5), p99: percentile(apiMs, 0.99) },
        driver_ms: { p50: percentile(driver, 0.5), p99: percentile(driver, 0.99) },
        e2e_per_second: e2eRate,
        bullmq_per_second: rawRate,
        failures: failures.slice(0, 20),
      },
    };
  },
};
