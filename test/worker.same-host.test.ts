/**
 * Several workers on one host must not hurt each other. The bug this guards against: two workers
 * shared one state dir, and a restarted worker's reconcile deleted the other's VMs as orphans
 * while the API still said `running`. Here two in-process workers (the embedded system's
 * `test-worker` and `worker-b`) share one process-driver dir on purpose, and B restarts.
 * Also: each worker's state dir defaults to its own, and drivers record and respect owners.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDriver } from '../src/adapters/vmm/create-driver.ts';
import { loadConfig } from '../src/config/load.ts';
import type { DriverName } from '../src/domain/index.ts';
import type { VmDriver, VmSpec } from '../src/ports/vm-driver.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { workerAgentOptions, workerId, workerStateDir } from '../src/runtime/worker-options.ts';
import { WorkerAgent } from '../src/worker/agent.ts';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';

const spec = (id: string): VmSpec => ({ id, name: id, vcpus: 1, memory_mb: 64, disk_gb: 1 });

describe('where a worker keeps its state', () => {
  const config = (worker: Record<string, unknown>) => loadConfig({ env: {}, overrides: { worker } });

  it('defaults to .aetherium/workers/<worker id>, the id the agent registers with', () => {
    const named = config({ id: 'w-1' });
    expect(named.worker.drivers.state_dir).toBeNull();
    expect(workerId(named)).toBe('w-1');
    expect(workerStateDir(named)).toBe(join('.aetherium', 'workers', 'w-1'));

    const unnamed = config({});
    expect(workerId(unnamed)).toBe(hostname());
    expect(workerStateDir(unnamed)).toBe(join('.aetherium', 'workers', hostname()));
  });

  it('an explicit state_dir wins, and the agent gets the same id and dir', () => {
    const dir = mkdtempSync(join(tmpdir(), 'aetherium-explicit-'));
    try {
      const explicit = config({ id: 'w-2', drivers: { state_dir: dir } });
      expect(workerStateDir(explicit)).toBe(dir);
      const options = workerAgentOptions(explicit);
      expect(options).toMatchObject({ id: 'w-2', stateDir: dir });
      const agent = new WorkerAgent(options, {
        link: {} as never,
        channels: {} as never,
        drivers: new Map(),
        log: silentLogger,
      });
      expect(agent.id).toBe(workerId(explicit));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('drivers record who created a VM and leave the others alone', () => {
  let dir: string;
  const drivers: VmDriver[] = [];
  const make = (owner?: string) => {
    const driver = createDriver('process', { stateDir: dir, ...(owner ? { owner } : {}) });
    drivers.push(driver);
    return driver;
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'aetherium-owners-'));
  });
  afterAll(async () => {
    for (const d of drivers) await d.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes owner.json at create; recover and list skip another worker’s VMs and report them', async () => {
    const a = make('worker-a');
    await a.create(spec('vm-of-a'));
    expect(JSON.parse(readFileSync(join(dir, 'vm-of-a', 'owner.json'), 'utf8'))).toMatchObject({
      worker_id: 'worker-a',
    });
    const b = make('worker-b');
    await b.create(spec('vm-of-b'));

    const report = await make('worker-b').recover();
    expect(report.recovered).toEqual(['vm-of-b']);
    expect(report.lost).toEqual([]);
    expect(report.owners).toEqual({ 'vm-of-b': 'worker-b' });
    expect(report.foreign).toEqual([{ id: 'vm-of-a', owner: 'worker-a' }]);
    expect((await b.list()).map((vm) => vm.id)).toEqual(['vm-of-b']);
    expect((await a.list()).map((vm) => vm.id)).toEqual(['vm-of-a']);
  });

  it('a half-created dir of another worker is not cleaned up as lost', async () => {
    const a = make('worker-a');
    await a.create(spec('vm-half'));
    rmSync(join(dir, 'vm-half', 'vm.json')); // as if its create were still running
    const report = await make('worker-b').recover();
    expect(report.lost).not.toContain('vm-half');
    expect(existsSync(join(dir, 'vm-half'))).toBe(true);
    await a.delete('vm-half');
  });

  it('a driver without an owner sees every VM, as before owners were recorded', async () => {
    const report = await make().recover();
    expect(report.recovered.sort()).toEqual(['vm-of-a', 'vm-of-b']);
    expect(report).not.toHaveProperty('foreign');
  });
});

describe('a restarted worker sharing a state dir with another', () => {
  let t: TestSystem;
  let shared: string;
  let b: { agent: WorkerAgent; driver: VmDriver } | null = null;

  const call = async (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) => {
    const res = await t.app.inject({ method, url: `/api/v1${url}`, ...(payload ? { payload } : {}) });
    return { status: res.statusCode, body: JSON.parse(res.body) };
  };

  /** Worker B, on the very dir where the embedded worker (A, `test-worker`) keeps its VMs. */
  async function startB(): Promise<void> {
    const driver = createDriver('process', { stateDir: shared, owner: 'worker-b' });
    const agent = new WorkerAgent(
      {
        id: 'worker-b',
        zone: 'zone-b',
        labels: {},
        capabilities: [],
        resources: { cpu_cores: 8, memory_mb: 8192, disk_gb: 100, max_vms: 10 },
        heartbeatIntervalMs: 1000,
        ttlMs: 5000,
        metricsIntervalMs: 60_000,
        concurrency: 2,
        stateDir: shared,
        admit: () => null,
      },
      {
        link: t.system.controlPlane.workerLink(),
        channels: t.system.engines.channels,
        drivers: new Map<DriverName, VmDriver>([['process', driver]]),
        log: silentLogger,
      },
    );
    await agent.start(); // registers, then reconciles: what a restart does first
    b = { agent, driver };
  }

  async function stopB(): Promise<void> {
    await b?.agent.stop();
    await b?.driver.close();
    b = null;
  }

  beforeAll(async () => {
    t = await startTestSystem();
    // buildDrivers puts the embedded worker's process driver here, recording `test-worker` as owner.
    shared = join(t.stateDir, 'process');
    await startB();
  }, 120_000);

  afterAll(async () => {
    await stopB();
    await t?.stop();
  });

  it("keeps A's VMs running, in the API and on the host, and still cleans B's own orphans", async () => {
    const created = await call('POST', '/vms?wait=true&timeout=60', {
      name: 'on-a',
      driver: 'process',
      zone: 'test-zone',
    });
    expect(created.status).toBe(201);
    const onA = created.body.vm;
    expect(onA).toMatchObject({ status: 'running', worker_id: 'test-worker' });
    expect(JSON.parse(readFileSync(join(shared, onA.id, 'owner.json'), 'utf8')).worker_id).toBe('test-worker');

    // A VM made before owners were recorded: no owner.json. Only the API knows it is A's.
    const legacy = (
      await call('POST', '/vms?wait=true&timeout=60', { name: 'legacy-a', driver: 'process', zone: 'test-zone' })
    ).body.vm;
    expect(legacy).toMatchObject({ status: 'running', worker_id: 'test-worker' });
    rmSync(join(shared, legacy.id, 'owner.json'));

    const onB = (await call('POST', '/vms?wait=true&timeout=60', { name: 'on-b', driver: 'process', zone: 'zone-b' }))
      .body.vm;
    expect(onB).toMatchObject({ status: 'running', worker_id: 'worker-b' });

    // While B is down, a VM of B's that the control plane no longer knows (deleted meanwhile).
    await stopB();
    const leftover = createDriver('process', { stateDir: shared, owner: 'worker-b' });
    await leftover.create(spec('b-orphan'));
    await leftover.close();

    await startB();

    for (const vm of [onA, legacy]) {
      expect(existsSync(join(shared, vm.id, 'vm.json'))).toBe(true);
      const now = (await call('GET', `/vms/${vm.id}`)).body;
      expect(now).toMatchObject({ status: 'running', worker_id: 'test-worker' });
      const exec = await call('POST', `/vms/${vm.id}/exec`, { command: 'echo', args: ['still here'] });
      expect(exec.body.stdout).toBe('still here\n');
    }
    expect((await call('GET', `/vms/${onB.id}`)).body).toMatchObject({ status: 'running', worker_id: 'worker-b' });
    expect(existsSync(join(shared, onB.id))).toBe(true);
    // B's own VM that nobody assigned to it any more is an orphan: deleted.
    expect(existsSync(join(shared, 'b-orphan'))).toBe(false);

    for (const name of ['on-a', 'legacy-a', 'on-b']) {
      expect((await call('DELETE', `/vms/${name}?wait=true&timeout=60`)).body.status).toBe('completed');
    }
  }, 90_000);
});
