/**
 * A worker that finds it cannot hold a VM after all refuses the create: the task goes back to the
 * scheduler with that worker excluded, and lands on another worker.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDriver } from '../src/adapters/vmm/create-driver.ts';
import type { DriverName } from '../src/domain/index.ts';
import type { VmDriver } from '../src/ports/vm-driver.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { WorkerAgent } from '../src/worker/agent.ts';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';

let t: TestSystem;
let picky: WorkerAgent;
let driver: VmDriver;
const refusals: string[] = [];

beforeAll(async () => {
  t = await startTestSystem();
  driver = createDriver('process', { stateDir: join(t.stateDir, 'picky') });
  picky = new WorkerAgent(
    {
      id: 'picky',
      zone: 'test-zone',
      labels: {},
      capabilities: [],
      resources: { cpu_cores: 8, memory_mb: 8192, disk_gb: 100, max_vms: 10 },
      heartbeatIntervalMs: 1000,
      ttlMs: 5000,
      metricsIntervalMs: 60_000,
      concurrency: 2,
      stateDir: join(t.stateDir, 'picky'),
      admit: (vm) => {
        refusals.push(vm.name);
        return 'only 12 MiB of memory available';
      },
    },
    {
      link: t.system.controlPlane.workerLink(),
      channels: t.system.engines.channels,
      drivers: new Map<DriverName, VmDriver>([['process', driver]]),
      log: silentLogger,
    },
  );
  await picky.start();
}, 120_000);

afterAll(async () => {
  await picky?.stop();
  await driver?.close();
  await t?.stop();
});

const call = async (method: 'GET' | 'POST', url: string, payload?: object) => {
  const res = await t.app.inject({ method, url, ...(payload ? { payload } : {}) });
  return JSON.parse(res.body);
};

it('moves a refused create to another worker and never back', async () => {
  // Only the picky worker may take it at first.
  await call('POST', '/api/v1/workers/test-worker/drain', {});
  const { vm, task_id } = await call('POST', '/api/v1/vms', { name: 'refused-once' });
  for (let i = 0; i < 100 && refusals.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  expect(refusals).toEqual(['refused-once']);

  let task = await call('GET', `/api/v1/tasks/${task_id}`);
  for (let i = 0; i < 50 && !String(task.placement?.reason ?? '').includes('refused earlier'); i++) {
    await new Promise((r) => setTimeout(r, 100));
    task = await call('GET', `/api/v1/tasks/${task_id}`);
  }
  expect(task.status).toBe('pending');
  expect(task.placement.excluded).toEqual(['picky']);
  expect(task.placement.reason).toMatch(/1 × refused earlier/);
  expect(task.placement.moved_from).toEqual(['picky']);
  expect((await call('GET', '/api/v1/workers/picky')).vm_count).toBe(0);

  await call('POST', '/api/v1/workers/test-worker/activate');
  let current = await call('GET', `/api/v1/vms/${vm.id}`);
  for (let i = 0; i < 100 && current.status !== 'running'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    current = await call('GET', `/api/v1/vms/${vm.id}`);
  }
  expect(current).toMatchObject({ status: 'running', worker_id: 'test-worker' });
  expect(refusals).toHaveLength(1);
}, 60_000);
