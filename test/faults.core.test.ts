/**
 * Faults the typed core must survive, on the embedded system with real drivers:
 * - a create whose driver times out once is retried (the error catalogue says driver failures are
 *   retryable) and succeeds, with retry_count 1;
 * - a drain whose first delete cannot be issued still completes: the next pass issues it;
 * - a worker that dies in the middle of a create: the create fails with the reason, its VM gets a
 *   final state, and the capacity comes back exactly once.
 * The extra worker of each test talks through a real link; its faults are injected at the driver
 * (a real sandbox with a boot timeout of 1 ms) or by cutting its link, as a crash would.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDriver } from '../src/adapters/vmm/create-driver.ts';
import { SandboxDriver } from '../src/adapters/vmm/sandbox/sandbox-driver.ts';
import type { DriverName, Task } from '../src/domain/index.ts';
import type { VmDriver, VmSpec } from '../src/ports/vm-driver.ts';
import type { WorkerLink } from '../src/ports/worker-link.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { WorkerAgent } from '../src/worker/agent.ts';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';
import { eventuallyPasses } from './harness/eventually.ts';

let t: TestSystem | undefined;
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await t?.stop();
  t = undefined;
});

async function call(method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) {
  const res = await t!.app.inject({ method, url: `/api/v1${url}`, ...(payload ? { payload } : {}) });
  return { status: res.statusCode, body: JSON.parse(res.body) };
}

/** A driver that is `inner` except for `create`, which `createOverride` decides. */
function withCreate(
  inner: VmDriver,
  createOverride: (spec: VmSpec, signal?: AbortSignal) => ReturnType<VmDriver['create']>,
): VmDriver {
  return {
    info: inner.info,
    create: createOverride,
    start: (id) => inner.start(id),
    stop: (id) => inner.stop(id),
    delete: (id) => inner.delete(id),
    status: (id) => inner.status(id),
    list: () => inner.list(),
    exec: (id, request) => inner.exec(id, request),
    recover: () => inner.recover(),
    watch: (listener) => inner.watch(listener),
    close: () => inner.close(),
  };
}

/** A second worker next to the embedded one; the embedded one is drained so VMs land here. */
async function extraWorker(id: string, driverName: DriverName, driver: VmDriver, link: WorkerLink, ttlMs = 5000) {
  const agent = new WorkerAgent(
    {
      id,
      zone: 'test-zone',
      labels: {},
      capabilities: [],
      resources: { cpu_cores: 8, memory_mb: 8192, disk_gb: 100, max_vms: 10 },
      heartbeatIntervalMs: 500,
      ttlMs,
      metricsIntervalMs: 60_000,
      concurrency: 4,
      stateDir: join(t!.stateDir, id),
      admit: () => null,
    },
    { link, channels: t!.system.engines.channels, drivers: new Map([[driverName, driver]]), log: silentLogger },
  );
  await agent.start();
  expect((await call('POST', '/workers/test-worker/drain', { force: true })).status).toBe(200);
  return agent;
}

describe('retries follow the error catalogue', () => {
  it('a create whose driver times out once is retried and succeeds, with retry_count 1', async () => {
    t = await startTestSystem();
    const stateDir = join(t.stateDir, 'flaky');
    const sandbox = new SandboxDriver({ stateDir });
    // The same host, but a boot timeout no sandbox can meet: the driver's own timeout error.
    const impatient = new SandboxDriver({ stateDir, bootTimeoutMs: 1 });
    let attempts = 0;
    const flaky = withCreate(sandbox, (spec, signal) => (++attempts === 1 ? impatient : sandbox).create(spec, signal));
    const agent = await extraWorker('flaky', 'sandbox', flaky, t.system.controlPlane.workerLink());
    cleanups.push(async () => {
      await agent.stop();
      for (const vm of await sandbox.list()) await sandbox.delete(vm.id);
      await impatient.close();
      await sandbox.close();
    });

    const created = await call('POST', '/vms?wait=true&timeout=60', { name: 'retried', driver: 'sandbox' });
    expect(created.status).toBe(201);
    const task = (await call('GET', `/tasks/${created.body.task_id}`)).body as Task;
    expect(task).toMatchObject({ status: 'completed', retry_count: 1, worker_id: 'flaky' });
    expect(task.error).toBeNull();
    expect(attempts).toBe(2);
    expect(created.body.vm).toMatchObject({ status: 'running', worker_id: 'flaky' });
    const exec = await call('POST', '/vms/retried/exec', { command: 'echo', args: ['alive'] });
    expect(exec.body.stdout).toBe('alive\n');
  }, 90_000);
});

describe('drain', () => {
  it('a drain whose first delete cannot be issued still completes', async () => {
    t = await startTestSystem();
    for (const name of ['keep-a', 'keep-b']) {
      expect((await call('POST', '/vms?wait=true', { name, driver: 'process' })).status).toBe(201);
    }
    // The store refuses the first delete task the drain writes, as a database blip would.
    const store = t.system.engines.store;
    const insertTask = store.insertTask.bind(store);
    let refused = 0;
    store.insertTask = async (task, ifAbsent) => {
      if (task.type === 'vm:delete' && refused === 0) {
        refused++;
        throw new Error('connection reset while writing the delete');
      }
      return insertTask(task, ifAbsent);
    };

    const drained = await call('POST', '/workers/test-worker/drain', { force: true });
    expect(drained.status).toBe(200);
    expect(refused).toBe(1);
    await eventuallyPasses(
      async () => {
        const worker = (await call('GET', '/workers/test-worker')).body;
        expect(worker.drain?.drained_at).toBeTruthy();
        expect(worker.vm_count).toBe(0);
      },
      15_000,
      200,
    );
    expect((await call('GET', '/vms')).body.total).toBe(0);
  }, 60_000);
});

describe('a worker that dies in the middle of a create', () => {
  it('fails the create with the reason, closes its VM and returns the capacity exactly once', async () => {
    t = await startTestSystem({ worker: { ttl: '5s' } });
    const process = createDriver('process', { stateDir: join(t.stateDir, 'doomed') });
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    // VMs named hang-* never finish booting while the worker lives.
    const hanging = withCreate(process, async (spec, signal) => {
      if (spec.name.startsWith('hang-')) await gate;
      return process.create(spec, signal);
    });
    // The worker's line to the cluster, cut at once when the worker "dies" (no goodbye).
    const real = t.system.controlPlane.workerLink();
    let dead = false;
    const link = new Proxy(real, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          if (dead) return Promise.reject(new Error('connection refused'));
          return value.apply(target, args);
        };
      },
    });
    const agent = await extraWorker('doomed', 'process', hanging, link, 2000);
    cleanups.push(async () => {
      release();
      await agent.stop().catch(() => undefined);
      for (const vm of await process.list()) await process.delete(vm.id);
      await process.close();
    });

    // One VM runs there already: its reservation must survive the other's failure untouched.
    expect((await call('POST', '/vms?wait=true', { name: 'survivor', driver: 'process', vcpus: 2 })).status).toBe(201);
    const pending = await call('POST', '/vms', { name: 'hang-1', driver: 'process', vcpus: 3, memory_mb: 512 });
    await eventuallyPasses(
      async () => expect((await call('GET', `/tasks/${pending.body.task_id}`)).body.status).toBe('running'),
      10_000,
      100,
    );
    expect((await call('GET', '/workers/doomed')).body).toMatchObject({ vm_count: 2, used_cpu_cores: 5 });

    dead = true;
    await eventuallyPasses(
      async () => {
        const task = (await call('GET', `/tasks/${pending.body.task_id}`)).body;
        expect(task.status).toBe('failed');
        expect(task.error).toMatch(/worker doomed went offline while the task ran/);
      },
      20_000,
      200,
    );
    const vm = (await call('GET', `/vms/${pending.body.vm.id}`)).body;
    expect(vm).toMatchObject({ status: 'failed', error: expect.stringMatching(/went offline/) });
    const worker = (await call('GET', '/workers/doomed')).body;
    expect(worker).toMatchObject({ status: 'offline', vm_count: 1, used_cpu_cores: 2, used_memory_mb: 256 });

    // The create finishing late on the dead host changes nothing, and a second sweep frees nothing twice.
    release();
    await t.system.controlPlane.reaper.sweep();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await call('GET', '/workers/doomed')).body).toMatchObject({ vm_count: 1, used_cpu_cores: 2 });
    expect((await call('GET', `/tasks/${pending.body.task_id}`)).body.status).toBe('failed');
  }, 90_000);
});
