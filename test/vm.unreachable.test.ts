/**
 * VMs on a worker that went away say so, like Nomad's `unknown` and `lost` allocations:
 * - while their worker is offline they are `unknown` (with the reason), still counted;
 * - when the worker returns and its reconcile finds them, they are `running` again;
 * - after `worker.lost_after` they are `lost`: capacity returned, an event, the reason on the VM,
 *   a delete waiting for them done; a worker that comes back with a lost VM stops it.
 * The extra worker talks through the real in-process link, cut and restored as a partition would.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDriver } from '../src/adapters/vmm/create-driver.ts';
import type { ClusterEvent } from '../src/domain/index.ts';
import type { VmDriver } from '../src/ports/vm-driver.ts';
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

/** A link that fails every call while `cut` is set: the worker is partitioned from the cluster. */
function cuttable(real: WorkerLink) {
  const state = { cut: false };
  const link = new Proxy(real, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (state.cut) return Promise.reject(new Error('connect ETIMEDOUT (partitioned)'));
        return value.apply(target, args);
      };
    },
  });
  return { link, state };
}

/** A worker "roamer" next to the embedded one, which is drained so that VMs land on roamer. */
async function roamer(): Promise<{ state: { cut: boolean }; driver: VmDriver }> {
  const driver = createDriver('process', { stateDir: join(t!.stateDir, 'roamer') });
  const { link, state } = cuttable(t!.system.controlPlane.workerLink());
  const agent = new WorkerAgent(
    {
      id: 'roamer',
      zone: 'test-zone',
      labels: {},
      capabilities: [],
      resources: { cpu_cores: 8, memory_mb: 8192, disk_gb: 100, max_vms: 10 },
      heartbeatIntervalMs: 300,
      ttlMs: 1500,
      metricsIntervalMs: 60_000,
      concurrency: 4,
      stateDir: join(t!.stateDir, 'roamer'),
      admit: () => null,
    },
    { link, channels: t!.system.engines.channels, drivers: new Map([['process', driver]]), log: silentLogger },
  );
  await agent.start();
  cleanups.push(async () => {
    state.cut = false;
    await agent.stop().catch(() => undefined);
    for (const vm of await driver.list()) await driver.delete(vm.id);
    await driver.close();
  });
  expect((await call('POST', '/workers/test-worker/drain', { force: true })).status).toBe(200);
  return { state, driver };
}

function recordEvents(): ClusterEvent[] {
  const seen: ClusterEvent[] = [];
  const unsubscribe = t!.system.engines.events.subscribe((event) => seen.push(event));
  cleanups.push(async () => unsubscribe());
  return seen;
}

const changes = (seen: ClusterEvent[], vmId: string) =>
  seen
    .filter((e) => e.type === 'vm.state_changed' && (e.data as { vm_id?: string }).vm_id === vmId)
    .map((e) => `${(e.data as { from: string }).from}→${(e.data as { to: string }).to}`);

describe('a worker that goes away and comes back', () => {
  it('shows its VMs unknown while it is unreachable, then running again, never counted twice', async () => {
    t = await startTestSystem({ worker: { ttl: '2s', lost_after: '10m' } });
    const seen = recordEvents();
    const { state } = await roamer();
    const made = await call('POST', '/vms?wait=true', { name: 'wanderer', driver: 'process', vcpus: 2 });
    expect(made.status).toBe(201);
    expect(made.body.vm.worker_id).toBe('roamer');
    const id = made.body.vm.id as string;

    state.cut = true;
    await eventuallyPasses(
      async () => {
        expect((await call('GET', '/workers/roamer')).body.status).toBe('offline');
        const vm = (await call('GET', `/vms/${id}`)).body;
        expect(vm.status).toBe('unknown');
        expect(vm.error).toMatch(/worker roamer is unreachable/);
      },
      15_000,
      200,
    );
    // Still counted: it may well run on, and the worker may come back with it.
    expect((await call('GET', '/workers/roamer')).body).toMatchObject({ vm_count: 1, used_cpu_cores: 2 });
    const refused = await call('POST', `/vms/${id}/exec`, { command: 'true' });
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toMatch(/unknown; its worker roamer is unreachable/);

    state.cut = false;
    await eventuallyPasses(
      async () => expect((await call('GET', `/vms/${id}`)).body).toMatchObject({ status: 'running', error: null }),
      15_000,
      200,
    );
    expect((await call('GET', '/workers/roamer')).body).toMatchObject({
      status: 'active',
      vm_count: 1,
      used_cpu_cores: 2,
    });
    const exec = await call('POST', `/vms/${id}/exec`, { command: 'echo', args: ['back'] });
    expect(exec.body.stdout).toBe('back\n');
    expect(changes(seen, id)).toEqual(['created→starting', 'starting→running', 'running→unknown', 'unknown→running']);
  }, 60_000);
});

describe('a worker that stays away past worker.lost_after', () => {
  it('loses its VMs: capacity returned, a waiting delete done, and a lost VM it comes back with is stopped', async () => {
    t = await startTestSystem({ worker: { ttl: '2s', lost_after: '4s' } });
    const seen = recordEvents();
    const { state, driver } = await roamer();
    const kept = await call('POST', '/vms?wait=true', { name: 'kept', driver: 'process', vcpus: 2 });
    const doomed = await call('POST', '/vms?wait=true', { name: 'doomed', driver: 'process', vcpus: 1 });
    expect([kept.status, doomed.status]).toEqual([201, 201]);
    const keptId = kept.body.vm.id as string;
    expect((await call('GET', '/workers/roamer')).body).toMatchObject({ vm_count: 2, used_cpu_cores: 3 });

    state.cut = true;
    await eventuallyPasses(
      async () => expect((await call('GET', `/vms/${keptId}`)).body.status).toBe('unknown'),
      15_000,
      200,
    );
    // A delete asked for while the worker is away waits in its queue; losing the VM completes it.
    const deletion = await call('DELETE', '/vms/doomed');
    expect(deletion.status).toBe(202);

    await eventuallyPasses(
      async () => {
        const vm = (await call('GET', `/vms/${keptId}`)).body;
        expect(vm.status).toBe('lost');
        expect(vm.error).toMatch(/lost: its worker roamer has been unreachable since .* longer than worker.lost_after/);
      },
      20_000,
      200,
    );
    expect((await call('GET', '/workers/roamer')).body).toMatchObject({
      vm_count: 0,
      used_cpu_cores: 0,
      used_memory_mb: 0,
    });
    await eventuallyPasses(
      async () => expect((await call('GET', `/tasks/${deletion.body.task_id}`)).body.status).toBe('completed'),
      10_000,
      200,
    );
    expect((await call('GET', '/vms')).body.vms.map((vm: { name: string }) => vm.name)).toEqual(['kept']);
    expect(changes(seen, keptId).slice(-2)).toEqual(['running→unknown', 'unknown→lost']);

    // The worker comes back with the lost VM still running: it stops it, and nothing is counted again.
    expect((await driver.status(keptId)).state).toBe('running');
    state.cut = false;
    await eventuallyPasses(async () => expect((await driver.status(keptId)).state).toBe('missing'), 15_000, 200);
    expect((await call('GET', `/vms/${keptId}`)).body.status).toBe('lost');
    expect((await call('GET', '/workers/roamer')).body).toMatchObject({
      status: 'active',
      vm_count: 0,
      used_cpu_cores: 0,
    });

    // A lost VM is deleted at once: no worker needs to be asked.
    const gone = await call('DELETE', `/vms/${keptId}`);
    expect(gone.status).toBe(200);
    expect((await call('GET', `/tasks/${gone.body.task_id}`)).body.status).toBe('completed');
    expect((await call('GET', '/vms')).body.total).toBe(0);
    expect((await call('GET', '/workers/roamer')).body).toMatchObject({ vm_count: 0, used_cpu_cores: 0 });
  }, 90_000);
});
