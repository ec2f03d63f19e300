/**
 * The Store conformance suite: every implementation of the Store port runs these same tests.
 *
 * `open` must return a new, migrated store on an EMPTY database each time it is called. The suite
 * opens one store for most tests (every test makes its own workers, VMs and tasks with unique ids
 * and names, and tests run one after another) and a second, fresh one for the migration tests,
 * which drop tables. Those need `migrateDown(targetVersion)` beside the Store methods.
 */
import { loadMigrations } from '../../src/adapters/storage/migrator.ts';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AetheriumError,
  type ApiKeyRecord,
  type AuditEntry,
  newId,
  TASK_STATUSES,
  type Execution,
  type IdempotencyClaim,
  type JoinTokenRecord,
  type Task,
  newTask,
  type PlacementRecord,
  type Vm,
  type WorkerRegistration,
} from '../../src/domain/index.ts';
import type { Store } from '../../src/ports/store.ts';

type MigratableStore = Store & { migrateDown?: (targetVersion: number) => Promise<number[]> };

const HOOK_TIMEOUT = 60_000;

const uid = () => randomUUID().slice(0, 8);

function registration(overrides: Partial<WorkerRegistration> = {}): WorkerRegistration {
  return {
    id: `w-${uid()}`,
    hostname: 'host-a',
    address: '127.0.0.1:9100',
    zone: '',
    labels: {},
    capabilities: [],
    cpu_cores: 8,
    memory_mb: 16_384,
    disk_gb: 200,
    max_vms: 10,
    ttl_seconds: 30,
    metadata: {},
    ...overrides,
  };
}

function vmRecord(overrides: Partial<Vm> = {}): Vm {
  const now = new Date();
  return {
    id: newId(),
    name: `vm-${uid()}`,
    status: 'created',
    driver: null,
    worker_id: null,
    zone: null,
    labels: {},
    image: 'ubuntu-24.04',
    vcpus: 2,
    memory_mb: 1024,
    disk_gb: 10,
    error: null,
    created_at: now,
    updated_at: now,
    deleted_at: null,
    phases: {},
    ...overrides,
  };
}

/** A task row: a pending create unless the overrides say otherwise (they keep type and payload paired). */
function taskRecord(overrides: Partial<Task> = {}): Task {
  return { ...newTask('vm:create', { worker_labels: {}, strategy: null }), ...overrides } as Task;
}

/** A live API key that never expired and was never used, created now unless the overrides say otherwise. */
function apiKeyRecord(overrides: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
  return {
    id: `key_${uid()}`,
    name: `key-${uid()}`,
    role: 'operator',
    hash: `sha256:${randomUUID()}`,
    created_at: new Date(),
    created_by: null,
    last_used_at: null,
    expires_at: null,
    revoked_at: null,
    ...overrides,
  };
}

/** A fresh, unused one-use join token valid for an hour, unless the overrides say otherwise. */
function joinTokenRecord(overrides: Partial<JoinTokenRecord> = {}): JoinTokenRecord {
  const now = Date.now();
  return {
    id: randomUUID().replaceAll('-', '').slice(0, 16),
    secret_hash: `scrypt$${randomUUID()}`,
    description: '',
    max_uses: 1,
    uses: 0,
    expires_at: new Date(now + 3_600_000),
    created_by: null,
    created_at: new Date(now),
    revoked_at: null,
    last_used_at: null,
    last_worker_id: null,
    ...overrides,
  };
}

type AuditInput = Omit<AuditEntry, 'id' | 'at'> & { at?: Date };

/** An audit entry as the server writes one: an allowed read by an API key unless the overrides say otherwise. */
function auditRecord(overrides: Partial<AuditInput> = {}): AuditInput {
  return {
    actor: `key_${uid()}`,
    actor_kind: 'key',
    role: 'viewer',
    action: 'vm.list',
    route: 'GET /api/v1/vms',
    target: null,
    source: '127.0.0.1',
    outcome: 'allowed',
    status: 200,
    details: {},
    ...overrides,
  };
}

/** A placement record as the scheduler writes one. */
function record(overrides: Partial<PlacementRecord> = {}): PlacementRecord {
  return {
    workers: 1,
    evaluated: 1,
    sampled: false,
    feasible: 1,
    rejected: {},
    strategy: 'binpack',
    chosen: null,
    placed_at: new Date().toISOString(),
    moved_from: [],
    excluded: [],
    ...overrides,
  };
}

export function storeConformance(label: string, open: () => Promise<Store>): void {
  describe(`Store conformance: ${label}`, () => {
    let store: Store;

    beforeAll(async () => {
      store = await open();
    }, HOOK_TIMEOUT);

    afterAll(async () => {
      await store?.close();
    }, HOOK_TIMEOUT);

    /** A VM and its pending vm:create task, written together. */
    async function createVm(
      vmOverrides: Partial<Vm> = {},
      taskOverrides: Partial<Task> = {},
    ): Promise<{ vm: Vm; task: Task }> {
      const vm = vmRecord(vmOverrides);
      const task = taskRecord({ vm_id: vm.id, ...taskOverrides });
      await store.insertVmWithTask(vm, task);
      return { vm, task };
    }

    async function worker(overrides: Partial<WorkerRegistration> = {}, now = new Date()) {
      return (await store.upsertWorker(registration(overrides), now)).worker;
    }

    async function usage(workerId: string) {
      const w = await store.getWorker(workerId);
      if (!w) throw new Error(`worker ${workerId} vanished`);
      return { cpu: w.used_cpu_cores, mem: w.used_memory_mb, disk: w.used_disk_gb, vms: w.vm_count };
    }

    // ── basics ─────────────────────────────────────────────────────────────────────────────────
    describe('basics', () => {
      it('reports its kind and answers ping', async () => {
        expect(['pglite', 'postgres']).toContain(store.kind);
        await expect(store.ping()).resolves.toBeUndefined();
      });

      it('migrate is idempotent: a second call applies nothing', async () => {
        expect(await store.migrate()).toEqual([]);
        expect(await store.migrate()).toEqual([]);
      });
    });

    // ── workers ────────────────────────────────────────────────────────────────────────────────
    describe('workers', () => {
      it('upsertWorker inserts, then refreshes, telling which it did', async () => {
        const t1 = new Date(Date.now() - 5000);
        const reg = registration({
          zone: 'eu-1',
          labels: { tier: 'gold' },
          capabilities: ['firecracker', 'kvm'],
          metadata: { kernel: '6.8' },
          memory_mb: 6_000_000_000, // bigint column: above 2^31, still a JS number
        });
        const first = await store.upsertWorker(reg, t1);
        expect(first.created).toBe(true);
        expect(first.worker).toMatchObject({
          id: reg.id,
          hostname: 'host-a',
          status: 'active',
          eligible: true,
          zone: 'eu-1',
          labels: { tier: 'gold' },
          capabilities: ['firecracker', 'kvm'],
          metadata: { kernel: '6.8' },
          cpu_cores: 8,
          memory_mb: 6_000_000_000,
          used_cpu_cores: 0,
          used_memory_mb: 0,
          used_disk_gb: 0,
          vm_count: 0,
          max_vms: 10,
          ttl_seconds: 30,
        });
        expect(typeof first.worker.memory_mb).toBe('number');
        expect(first.worker.last_seen).toBeInstanceOf(Date);
        expect(first.worker.last_seen.getTime()).toBe(t1.getTime());
        expect(first.worker.started_at.getTime()).toBe(t1.getTime());

        const t2 = new Date(t1.getTime() + 1000);
        const again = await store.upsertWorker(
          { ...reg, hostname: 'host-b', cpu_cores: 16, labels: { tier: 'silver' } },
          t2,
        );
        expect(again.created).toBe(false);
        expect(again.worker).toMatchObject({ hostname: 'host-b', cpu_cores: 16, labels: { tier: 'silver' } });
        expect(again.worker.last_seen.getTime()).toBe(t2.getTime());
        expect(await store.getWorker(reg.id)).toEqual(again.worker);
        expect(await store.getWorker(`missing-${uid()}`)).toBeNull();
      });

      it('re-registration keeps reservations and drain state', async () => {
        const w = await worker();
        const { vm, task } = await createVm();
        expect(await store.placeTask(task.id, vm.id, w.id, 'process', record())).toBe('placed');
        await store.setWorkerStatus(w.id, 'draining', false);

        const { worker: again, created } = await store.upsertWorker(
          registration({ id: w.id, cpu_cores: 32 }),
          new Date(),
        );
        expect(created).toBe(false);
        expect(again.status).toBe('draining');
        expect(again.eligible).toBe(false);
        expect(again.cpu_cores).toBe(32);
        expect(again).toMatchObject({
          used_cpu_cores: vm.vcpus,
          used_memory_mb: vm.memory_mb,
          used_disk_gb: vm.disk_gb,
          vm_count: 1,
        });
      });

      it('an offline worker that registers again turns active', async () => {
        const w = await worker();
        await store.setWorkerStatus(w.id, 'offline');
        expect((await store.getWorker(w.id))?.status).toBe('offline');
        const { worker: again } = await store.upsertWorker(registration({ id: w.id }), new Date());
        expect(again.status).toBe('active');
      });

      it('touchWorker moves last_seen and revives an offline worker', async () => {
        const t0 = new Date(Date.now() - 60_000);
        const w = await worker({}, t0);
        const t1 = new Date(t0.getTime() + 15_000);
        const touched = await store.touchWorker(w.id, t1);
        expect(touched?.last_seen.getTime()).toBe(t1.getTime());
        expect(touched?.status).toBe('active');
        expect(touched?.was_offline).toBe(false);

        await store.setWorkerStatus(w.id, 'offline');
        const t2 = new Date(t1.getTime() + 15_000);
        const revived = await store.touchWorker(w.id, t2);
        expect(revived).toMatchObject({ status: 'active', was_offline: true });
        expect((await store.touchWorker(w.id, t2))?.was_offline).toBe(false);
        expect((await store.getWorker(w.id))?.last_seen.getTime()).toBe(t2.getTime());

        // A draining worker's heartbeat does not end the drain.
        await store.setWorkerStatus(w.id, 'draining', false);
        expect((await store.touchWorker(w.id, new Date()))?.status).toBe('draining');

        expect(await store.touchWorker(`missing-${uid()}`, new Date())).toBeNull();
      });

      it('setWorkerStatus sets status and, when given, eligibility', async () => {
        const w = await worker();
        const drained = await store.setWorkerStatus(w.id, 'draining', false);
        expect(drained).toMatchObject({ status: 'draining', eligible: false });
        const active = await store.setWorkerStatus(w.id, 'active');
        expect(active).toMatchObject({ status: 'active', eligible: false }); // eligibility untouched
        expect(await store.setWorkerStatus(w.id, 'active', true)).toMatchObject({ eligible: true });
        expect(await store.setWorkerStatus(`missing-${uid()}`, 'active')).toBeNull();
      });

      it('updateWorkerResources changes only the given fields', async () => {
        const w = await worker({ cpu_cores: 4, memory_mb: 4096, disk_gb: 50, max_vms: 5 });
        const updated = await store.updateWorkerResources(w.id, { cpu_cores: 12, max_vms: 7 });
        expect(updated).toMatchObject({ cpu_cores: 12, memory_mb: 4096, disk_gb: 50, max_vms: 7 });
        expect(await store.getWorker(w.id)).toMatchObject({ cpu_cores: 12, max_vms: 7 });
        expect(await store.updateWorkerResources(`missing-${uid()}`, { cpu_cores: 1 })).toBeNull();
      });

      it('listWorkers filters by status, zone, labels (containment) and capabilities (containment)', async () => {
        const zone = `zone-${uid()}`;
        const a = await worker({
          id: `a-${uid()}`,
          zone,
          labels: { env: 'prod', gpu: 'a100' },
          capabilities: ['firecracker', 'gpu'],
        });
        const b = await worker({ id: `b-${uid()}`, zone, labels: { env: 'dev' }, capabilities: ['process'] });
        const c = await worker({ id: `c-${uid()}`, zone, labels: { env: 'prod' }, capabilities: ['firecracker'] });
        await store.setWorkerStatus(c.id, 'draining', false);
        const other = await worker({ zone: `elsewhere-${uid()}`, labels: { env: 'prod' } });

        const ids = async (filter: Parameters<Store['listWorkers']>[0]) =>
          (await store.listWorkers(filter)).map((w) => w.id).sort();
        expect(await ids({ zone })).toEqual([a.id, b.id, c.id].sort());
        expect(await ids({ zone, status: 'active' })).toEqual([a.id, b.id].sort());
        expect(await ids({ zone, status: 'draining' })).toEqual([c.id]);
        expect(await ids({ zone, labels: { env: 'prod' } })).toEqual([a.id, c.id].sort());
        expect(await ids({ zone, labels: { env: 'prod', gpu: 'a100' } })).toEqual([a.id]);
        expect(await ids({ zone, labels: { env: 'staging' } })).toEqual([]);
        expect(await ids({ zone, capabilities: ['firecracker'] })).toEqual([a.id, c.id].sort());
        expect(await ids({ zone, capabilities: ['firecracker', 'gpu'] })).toEqual([a.id]);
        expect(await ids({ zone, capabilities: ['gpu', 'process'] })).toEqual([]);
        expect(await ids({ labels: { env: 'prod' } })).toContain(other.id);
        const all = await ids({});
        expect(all).toEqual(expect.arrayContaining([a.id, b.id, c.id, other.id]));
      });

      it('markStaleWorkersOffline takes offline exactly the workers whose TTL ran out', async () => {
        const now = new Date();
        const ago = (s: number) => new Date(now.getTime() - s * 1000);
        const stale = await worker({ ttl_seconds: 30 }, ago(60));
        const staleDraining = await worker({ ttl_seconds: 30 }, ago(45));
        await store.setWorkerStatus(staleDraining.id, 'draining', false);
        const fresh = await worker({ ttl_seconds: 30 }, ago(10));
        const longTtl = await worker({ ttl_seconds: 120 }, ago(60));
        const alreadyOffline = await worker({ ttl_seconds: 30 }, ago(90));
        await store.setWorkerStatus(alreadyOffline.id, 'offline');

        const mine = new Set([stale.id, staleDraining.id, fresh.id, longTtl.id, alreadyOffline.id]);
        const reaped = (await store.markStaleWorkersOffline(now)).filter((w) => mine.has(w.id));
        expect(reaped.map((w) => w.id).sort()).toEqual([stale.id, staleDraining.id].sort());
        expect(reaped.every((w) => w.status === 'offline')).toBe(true);
        expect((await store.getWorker(stale.id))?.status).toBe('offline');
        expect((await store.getWorker(fresh.id))?.status).toBe('active');
        expect((await store.getWorker(longTtl.id))?.status).toBe('active');

        // Already offline: not reaped twice.
        const again = (await store.markStaleWorkersOffline(now)).filter((w) => mine.has(w.id));
        expect(again).toEqual([]);
      });

      it('records metrics as history, newest first, with a limit', async () => {
        const w = await worker();
        const base = Date.now() - 60_000;
        for (let i = 0; i < 3; i++) {
          await store.recordWorkerMetrics({
            worker_id: w.id,
            timestamp: new Date(base + i * 10_000),
            cpu_usage: 10.5 + i,
            memory_usage: 40.25,
            disk_usage: 70,
            vm_count: i,
            tasks_processed: 5_000_000_000 + i,
            network_in_mb: 1.5,
            network_out_mb: 2.75,
          });
        }
        const all = await store.listWorkerMetrics(w.id);
        expect(all.map((m) => m.vm_count)).toEqual([2, 1, 0]);
        expect(all[0]).toEqual({
          worker_id: w.id,
          timestamp: new Date(base + 20_000),
          cpu_usage: 12.5,
          memory_usage: 40.25,
          disk_usage: 70,
          vm_count: 2,
          tasks_processed: 5_000_000_002,
          network_in_mb: 1.5,
          network_out_mb: 2.75,
        });
        expect((await store.listWorkerMetrics(w.id, 2)).map((m) => m.vm_count)).toEqual([2, 1]);
        expect(await store.listWorkerMetrics(`missing-${uid()}`)).toEqual([]);
      });

      it('a history timeline averages per step; compaction keeps it, then drops what is past retention', async () => {
        const w = await worker();
        const STEP = 300;
        const now = new Date();
        // Three days back, on a 10-minute boundary, so two 5-minute steps make one 10-minute step.
        const base = Math.floor((now.getTime() - 3 * 86_400_000) / 600_000) * 600_000;
        const recent = Math.floor((now.getTime() - 3_600_000) / 600_000) * 600_000;
        const sample = (at: number, cpu: number, vms: number, tasks: number) =>
          store.recordWorkerMetrics({
            worker_id: w.id,
            timestamp: new Date(at),
            cpu_usage: cpu,
            memory_usage: cpu / 2,
            disk_usage: 50,
            vm_count: vms,
            tasks_processed: tasks,
            network_in_mb: 1,
            network_out_mb: 2,
          });
        await sample(base, 10, 1, 100);
        await sample(base + 60_000, 20, 2, 101);
        await sample(base + 120_000, 30, 3, 102);
        await sample(base + 300_000, 40, 4, 110);
        await sample(base + 360_000, 60, 4, 120);
        await sample(recent, 5, 0, 130);
        await sample(recent + 60_000, 7, 1, 131);

        const timeline = (stepSeconds: number) =>
          store
            .workerMetricHistory(w.id, { since: new Date(base - 1000), until: now, stepSeconds })
            .then((points) => points.map((p) => [p.timestamp.getTime(), p.cpu_usage, p.vm_count, p.tasks_processed]));
        const expected5m = [
          [base, 20, 2, 102],
          [base + 300_000, 50, 4, 120],
          [recent, 6, 0.5, 131],
        ];
        expect(await timeline(STEP)).toEqual(expected5m);
        // A coarser step weighs each point by its samples: (10+20+30+40+60)/5.
        expect((await timeline(600))[0]).toEqual([base, 32, 2.8, 120]);
        // A range with nothing in it answers no points, and another worker's samples are not mixed in.
        expect(
          await store.workerMetricHistory(w.id, {
            since: new Date(base + 600_000),
            until: new Date(recent),
            stepSeconds: STEP,
          }),
        ).toEqual([]);
        expect(
          await store.workerMetricHistory(`missing-${uid()}`, { since: new Date(base), until: now, stepSeconds: STEP }),
        ).toEqual([]);

        const policy = { now, rawRetentionMs: 86_400_000, downsampledRetentionMs: 30 * 86_400_000, stepSeconds: STEP };
        const first = await store.compactWorkerMetrics(policy);
        expect(first.rolled_up).toBeGreaterThanOrEqual(2);
        expect(first.raw_deleted).toBeGreaterThanOrEqual(5);
        // The old raw samples are gone; the timeline is the same from the downsampled history.
        expect((await store.listWorkerMetrics(w.id)).map((m) => m.cpu_usage)).toEqual([7, 5]);
        expect(await timeline(STEP)).toEqual(expected5m);
        expect((await timeline(600))[0]).toEqual([base, 32, 2.8, 120]);
        // Again (another replica, or the next interval): nothing is written twice.
        await store.compactWorkerMetrics(policy);
        expect(await timeline(STEP)).toEqual(expected5m);

        // Past the downsampled retention, the old steps go too.
        const pruned = await store.compactWorkerMetrics({ ...policy, downsampledRetentionMs: 86_400_000 });
        expect(pruned.rollups_deleted).toBeGreaterThanOrEqual(2);
        expect(await timeline(STEP)).toEqual([expected5m[2]]);
      });

      it('deleteWorker removes it and its metrics; its VMs and tasks lose the reference', async () => {
        const w = await worker();
        await store.recordWorkerMetrics({
          worker_id: w.id,
          timestamp: new Date(),
          cpu_usage: 1,
          memory_usage: 1,
          disk_usage: 1,
          vm_count: 0,
          tasks_processed: 0,
          network_in_mb: 0,
          network_out_mb: 0,
        });
        const { vm, task } = await createVm();
        expect(await store.placeTask(task.id, vm.id, w.id, 'process', record())).toBe('placed');

        expect(await store.deleteWorker(w.id)).toBe(true);
        expect(await store.getWorker(w.id)).toBeNull();
        expect(await store.listWorkerMetrics(w.id)).toEqual([]);
        expect((await store.getVm(vm.id))?.worker_id).toBeNull();
        expect((await store.getTask(task.id))?.worker_id).toBeNull();
        expect(await store.deleteWorker(w.id)).toBe(false);
      });
    });

    // ── vms ────────────────────────────────────────────────────────────────────────────────────
    describe('vms', () => {
      it('insertVmWithTask writes the VM and its task; they read back as written', async () => {
        const { vm, task } = await createVm(
          { labels: { team: 'core' }, zone: 'eu-1', vcpus: 4, memory_mb: 2048, disk_gb: 20 },
          { payload: { worker_labels: { tier: { in: ['a', 'b'] }, gpu: 'yes' }, strategy: 'spread' }, max_retries: 5 },
        );
        expect(await store.getVm(vm.id)).toEqual(vm);
        expect(await store.getTask(task.id)).toEqual(task);
      });

      it('recordVmPhases adds to the boot waterfall; a phase reached again keeps its latest time', async () => {
        const { vm } = await createVm();
        const t0 = new Date(Date.now() - 10_000);
        await store.recordVmPhases(vm.id, { accepted: t0, placed: new Date(t0.getTime() + 100) });
        await store.recordVmPhases(vm.id, {
          placed: new Date(t0.getTime() + 500),
          delivered: new Date(t0.getTime() + 600),
        });
        const phases = (await store.getVm(vm.id))?.phases;
        expect(phases).toEqual({
          accepted: t0,
          placed: new Date(t0.getTime() + 500),
          delivered: new Date(t0.getTime() + 600),
        });
        expect((await store.listVms({ worker_id: undefined })).find((v) => v.id === vm.id)?.phases).toEqual(phases);
        await store.recordVmPhases(`vm-missing-${uid()}`, { accepted: t0 }); // no such VM: nothing, no error
      });

      it('a duplicate live name is a conflict, and neither row is written', async () => {
        const { vm } = await createVm();
        const dup = vmRecord({ name: vm.name });
        const dupTask = taskRecord({ vm_id: dup.id });
        const err = await store.insertVmWithTask(dup, dupTask).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(AetheriumError);
        expect((err as AetheriumError).code).toBe('conflict');
        expect((err as AetheriumError).status).toBe(409);
        expect(await store.getVm(dup.id)).toBeNull();
        expect(await store.getTask(dupTask.id)).toBeNull();
      });

      it('is atomic: when the task cannot be written, the VM is not written either', async () => {
        const { task } = await createVm();
        const vm = vmRecord();
        await expect(store.insertVmWithTask(vm, taskRecord({ id: task.id, vm_id: vm.id }))).rejects.toThrow();
        expect(await store.getVm(vm.id)).toBeNull();
        expect(await store.findVm(vm.name)).toBeNull();
      });

      it('insertVmWithTask with ifAbsent: a VM whose id exists is left alone, its task not written', async () => {
        const vm = vmRecord();
        const task = taskRecord({ vm_id: vm.id });
        expect(await store.insertVmWithTask(vm, task, true)).toBe(true);
        const again = taskRecord({ vm_id: vm.id });
        expect(await store.insertVmWithTask({ ...vm, vcpus: 7 }, again, true)).toBe(false);
        expect(await store.getVm(vm.id)).toEqual(vm);
        expect(await store.getTask(again.id)).toBeNull();
        // Without ifAbsent a duplicate id throws; with it, a duplicate live name is still a conflict.
        await expect(store.insertVmWithTask(vm, taskRecord({ vm_id: vm.id }))).rejects.toThrow();
        const other = vmRecord({ name: vm.name });
        await expect(store.insertVmWithTask(other, taskRecord({ vm_id: other.id }), true)).rejects.toMatchObject({
          code: 'conflict',
        });
        expect(await store.getVm(other.id)).toBeNull();
      });

      it('insertVmWithTask with ifAbsent, raced: exactly one of 5 writes of the same VM writes it', async () => {
        const vm = vmRecord();
        const task = taskRecord({ vm_id: vm.id });
        const results = await Promise.allSettled(
          Array.from({ length: 5 }, () => store.insertVmWithTask(vm, task, true)),
        );
        const wrote = results.filter((r) => r.status === 'fulfilled' && r.value === true);
        expect(wrote).toHaveLength(1);
        // A loser sees the id (false) or, on Postgres in the same instant, may trip over the live name
        // first (conflict): the caller then reads the VM by its id.
        for (const r of results) {
          if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'conflict' });
        }
        expect(await store.getVm(vm.id)).toEqual(vm);
        expect(await store.listTasks({ vm_id: vm.id })).toHaveLength(1);
      });

      it("a deleted VM's name can be reused; findVm sees live VMs only, by id or by name", async () => {
        const { vm: old } = await createVm();
        expect((await store.findVm(old.name))?.id).toBe(old.id);
        expect((await store.findVm(old.id))?.id).toBe(old.id);

        const deletedAt = new Date();
        const deleted = await store.updateVm(old.id, { deleted_at: deletedAt });
        expect(deleted?.deleted_at?.getTime()).toBe(deletedAt.getTime());
        expect(await store.findVm(old.id)).toBeNull();
        expect(await store.findVm(old.name)).toBeNull();
        expect((await store.getVm(old.id))?.deleted_at).not.toBeNull(); // getVm still sees it

        const { vm: reborn } = await createVm({ name: old.name });
        expect((await store.findVm(old.name))?.id).toBe(reborn.id);
        expect(await store.findVm(`no-such-${uid()}`)).toBeNull();
        expect(await store.findVm(newId())).toBeNull();
        expect(await store.getVm('not-a-uuid')).toBeNull();
      });

      it('listVms filters by status, worker, name and deletion, and honours limit', async () => {
        const w = await worker();
        const { vm: a, task: ta } = await createVm();
        const { vm: b, task: tb } = await createVm();
        const { vm: c } = await createVm();
        expect(await store.placeTask(ta.id, a.id, w.id, 'process', record())).toBe('placed');
        expect(await store.placeTask(tb.id, b.id, w.id, 'process', record())).toBe('placed');
        await store.updateVm(a.id, { status: 'running' });
        await store.updateVm(b.id, { deleted_at: new Date() });

        const ids = async (filter: Parameters<Store['listVms']>[0]) =>
          (await store.listVms(filter)).map((v) => v.id).sort();
        expect(await ids({ worker_id: w.id })).toEqual([a.id]);
        expect(await ids({ worker_id: w.id, include_deleted: true })).toEqual([a.id, b.id].sort());
        expect(await ids({ worker_id: w.id, status: 'running' })).toEqual([a.id]);
        expect(await ids({ worker_id: w.id, status: 'created' })).toEqual([]);
        expect(await ids({ name: c.name })).toEqual([c.id]);
        expect(await ids({ name: b.name })).toEqual([]);
        expect(await ids({ name: b.name, include_deleted: true })).toEqual([b.id]);
        expect((await store.listVms({ limit: 2 })).length).toBe(2);
        expect((await store.listVms({})).map((v) => v.id)).toEqual(expect.arrayContaining([a.id, c.id]));
      });

      it('updateVm applies a patch and moves updated_at; unknown ids give null', async () => {
        const past = new Date(Date.now() - 3_600_000);
        const { vm } = await createVm({ created_at: past, updated_at: past });
        const updated = await store.updateVm(vm.id, { status: 'failed', error: 'boom', driver: 'sandbox' });
        expect(updated).toMatchObject({ status: 'failed', error: 'boom', driver: 'sandbox', name: vm.name });
        expect(updated!.updated_at.getTime()).toBeGreaterThan(past.getTime());
        expect(updated!.created_at.getTime()).toBe(past.getTime());
        expect(await store.updateVm(vm.id, { error: null })).toMatchObject({ error: null, status: 'failed' });
        expect(await store.updateVm(newId(), { status: 'running' })).toBeNull();
      });
    });

    // ── capacity ───────────────────────────────────────────────────────────────────────────────
    describe('capacity', () => {
      it('placeTask places: task scheduled on the worker, VM bound, resources reserved', async () => {
        const w = await worker();
        const { vm, task } = await createVm({ vcpus: 3, memory_mb: 3000, disk_gb: 30 });
        const placement = record({
          reason: 'least loaded',
          chosen: { worker_id: w.id, driver: 'firecracker', score: 0.75 },
        });
        expect(await store.placeTask(task.id, vm.id, w.id, 'firecracker', placement)).toBe('placed');

        expect(await store.getTask(task.id)).toMatchObject({ status: 'scheduled', worker_id: w.id, placement });
        expect(await store.getVm(vm.id)).toMatchObject({ worker_id: w.id, driver: 'firecracker' });
        expect(await usage(w.id)).toEqual({ cpu: 3, mem: 3000, disk: 30, vms: 1 });
      });

      it('placeTask on a task that is not pending changes nothing', async () => {
        const w = await worker();
        const { vm, task } = await createVm();
        expect(await store.placeTask(task.id, vm.id, w.id, 'process', record())).toBe('placed');
        const before = await usage(w.id);
        expect(await store.placeTask(task.id, vm.id, w.id, 'process', record())).toBe('task_not_pending');
        expect(await usage(w.id)).toEqual(before);
        expect(await store.placeTask(newId(), vm.id, w.id, 'process', record())).toBe('task_not_pending');
      });

      const tight: Array<[string, Partial<WorkerRegistration>]> = [
        ['cpu', { cpu_cores: 3 }],
        ['memory', { memory_mb: 1500 }],
        ['disk', { disk_gb: 15 }],
        ['max_vms', { max_vms: 1 }],
      ];
      it.each(tight)('placeTask refuses when %s does not fit, and rolls back the task', async (_dim, limits) => {
        // Room for exactly one VM of 2 vcpus / 1024 MB / 10 GB in the tight dimension.
        const w = await worker({ cpu_cores: 100, memory_mb: 100_000, disk_gb: 1000, max_vms: 100, ...limits });
        const { vm: first, task: firstTask } = await createVm();
        expect(await store.placeTask(firstTask.id, first.id, w.id, 'process', record())).toBe('placed');
        const before = await usage(w.id);

        const { vm, task } = await createVm();
        expect(await store.placeTask(task.id, vm.id, w.id, 'process', record())).toBe('insufficient_capacity');
        expect(await usage(w.id)).toEqual(before);
        expect(await store.getTask(task.id)).toMatchObject({ status: 'pending', worker_id: null, placement: null });
        expect(await store.getVm(vm.id)).toMatchObject({ worker_id: null, driver: null });
      });

      const unavailable: Array<[string, (id: string) => Promise<unknown>]> = [
        ['draining', (id) => store.setWorkerStatus(id, 'draining')],
        ['offline', (id) => store.setWorkerStatus(id, 'offline')],
        ['not eligible', (id) => store.setWorkerStatus(id, 'active', false)],
      ];
      it.each(unavailable)('a worker that is %s gets no placement', async (_state, makeUnavailable) => {
        const w = await worker();
        await makeUnavailable(w.id);
        const { vm, task } = await createVm();
        expect(await store.placeTask(task.id, vm.id, w.id, 'process', record())).toBe('insufficient_capacity');
        expect(await usage(w.id)).toEqual({ cpu: 0, mem: 0, disk: 0, vms: 0 });
        expect((await store.getTask(task.id))?.status).toBe('pending');
      });

      it('placeTask on a missing worker is insufficient_capacity', async () => {
        const { vm, task } = await createVm();
        expect(await store.placeTask(task.id, vm.id, `missing-${uid()}`, 'process', record())).toBe(
          'insufficient_capacity',
        );
        expect((await store.getTask(task.id))?.status).toBe('pending');
      });

      it('releaseVm gives the reservation back exactly once', async () => {
        const w = await worker();
        const { vm, task } = await createVm();
        expect(await store.placeTask(task.id, vm.id, w.id, 'process', record())).toBe('placed');
        expect(await usage(w.id)).toEqual({ cpu: 2, mem: 1024, disk: 10, vms: 1 });

        expect(await store.releaseVm(vm.id)).toBe(true);
        expect(await usage(w.id)).toEqual({ cpu: 0, mem: 0, disk: 0, vms: 0 });
        expect(await store.releaseVm(vm.id)).toBe(false);
        expect(await usage(w.id)).toEqual({ cpu: 0, mem: 0, disk: 0, vms: 0 });
        expect(await store.releaseVm(newId())).toBe(false);
      });

      it('placeTask reserves what the VM row asks for: its requirements live nowhere else', async () => {
        const w = await worker();
        const { vm, task } = await createVm({ vcpus: 3, memory_mb: 3000, disk_gb: 7 });
        expect(await store.placeTask(task.id, vm.id, w.id, 'process', record())).toBe('placed');
        expect(await usage(w.id)).toEqual({ cpu: 3, mem: 3000, disk: 7, vms: 1 });
        expect(await store.releaseVm(vm.id)).toBe(true);
        expect(await usage(w.id)).toEqual({ cpu: 0, mem: 0, disk: 0, vms: 0 });
      });

      it('unplaceTask puts a scheduled create back to pending and returns its reservation', async () => {
        const w = await worker();
        const { vm, task } = await createVm();
        expect(await store.placeTask(task.id, vm.id, w.id, 'process', record())).toBe('placed');

        expect(await store.unplaceTask(task.id, 'worker died')).toMatchObject({ status: 'pending', worker_id: null });
        const t = await store.getTask(task.id);
        expect(t).toMatchObject({ status: 'pending', worker_id: null });
        expect(t?.placement).toMatchObject({ reason: 'worker died', chosen: null, moved_from: [w.id], excluded: [] });
        expect(await usage(w.id)).toEqual({ cpu: 0, mem: 0, disk: 0, vms: 0 });
        expect(await store.getVm(vm.id)).toMatchObject({ worker_id: null, driver: null });
        expect(await store.releaseVm(vm.id)).toBe(false); // already released
        expect(await store.unplaceTask(task.id, 'again')).toBeNull(); // no longer scheduled

        // It can be placed again, and the reservation is taken again.
        expect(await store.placeTask(task.id, vm.id, w.id, 'process', record())).toBe('placed');
        expect(await usage(w.id)).toEqual({ cpu: 2, mem: 1024, disk: 10, vms: 1 });
      });

      it('unplaceTask leaves a started task alone', async () => {
        const w = await worker();
        const { vm, task } = await createVm();
        expect(await store.placeTask(task.id, vm.id, w.id, 'process', record())).toBe('placed');
        await store.updateTask(task.id, { status: 'running', started_at: new Date() }, ['scheduled']);
        expect(await store.unplaceTask(task.id, 'too late')).toBeNull();
        expect((await store.getTask(task.id))?.status).toBe('running');
        expect(await usage(w.id)).toEqual({ cpu: 2, mem: 1024, disk: 10, vms: 1 });
      });

      it('20 placements racing for room for 5: exactly 5 win, nothing is overbooked', async () => {
        const need = { vcpus: 2, memory_mb: 1024, disk_gb: 5 };
        const w = await worker({ cpu_cores: 10, memory_mb: 5 * 1024, disk_gb: 25, max_vms: 100 });
        const pairs = await Promise.all(Array.from({ length: 20 }, () => createVm(need)));
        const outcomes = await Promise.all(
          pairs.map(({ vm, task }) => store.placeTask(task.id, vm.id, w.id, 'process', record())),
        );

        expect(outcomes.filter((o) => o === 'placed')).toHaveLength(5);
        expect(outcomes.filter((o) => o === 'insufficient_capacity')).toHaveLength(15);
        expect(await usage(w.id)).toEqual({ cpu: 10, mem: 5 * 1024, disk: 25, vms: 5 });
        const statuses = await Promise.all(pairs.map(async ({ task }) => (await store.getTask(task.id))?.status));
        expect(statuses.filter((s) => s === 'scheduled')).toHaveLength(5);
        expect(statuses.filter((s) => s === 'pending')).toHaveLength(15);
        expect(await store.listVms({ worker_id: w.id })).toHaveLength(5);
      });
    });

    // ── batched placements ─────────────────────────────────────────────────────────────────────
    describe('batched placements (placeTasks)', () => {
      const need = { vcpus: 2, memory_mb: 1024, disk_gb: 5 };

      /** `count` pending creates of `size`, as entries of a batch onto `workerId`. */
      async function creates(count: number, workerId: string, size: Partial<Vm> = need) {
        const pairs = await Promise.all(Array.from({ length: count }, () => createVm(size)));
        return pairs.map(({ vm, task }) => ({ vm, task, entry: entry(task.id, vm.id, workerId) }));
      }

      function entry(taskId: string, vmId: string, workerId: string, placement = record()) {
        return { task_id: taskId, vm_id: vmId, worker_id: workerId, driver: 'process', placement };
      }

      /** What the reserved VMs on a worker add up to: it must always equal the worker's usage. */
      async function reservedOn(workerId: string) {
        const vms = await store.listVms({ worker_id: workerId, limit: 10_000 });
        return {
          cpu: vms.reduce((sum, vm) => sum + vm.vcpus, 0),
          mem: vms.reduce((sum, vm) => sum + vm.memory_mb, 0),
          disk: vms.reduce((sum, vm) => sum + vm.disk_gb, 0),
          vms: vms.length,
        };
      }

      it('commits a batch across workers: tasks scheduled, VMs bound and reserved, the placed phase written', async () => {
        const [a, b] = [await worker(), await worker()];
        const onA = await creates(2, a.id, { vcpus: 3, memory_mb: 3000, disk_gb: 30 });
        const onB = await creates(1, b.id);
        const placedAt = new Date('2026-06-01T12:00:00.000Z');
        const placement = record({
          reason: 'least loaded',
          chosen: { worker_id: a.id, driver: 'process', score: 0.5 },
        });
        const batch = [{ ...onA[0]!.entry, placement }, onB[0]!.entry, onA[1]!.entry];

        expect(await store.placeTasks(batch, placedAt)).toEqual(['placed', 'placed', 'placed']);
        expect(await store.getTask(onA[0]!.task.id)).toMatchObject({ status: 'scheduled', worker_id: a.id, placement });
        expect(await store.getTask(onB[0]!.task.id)).toMatchObject({ status: 'scheduled', worker_id: b.id });
        expect(await store.getVm(onA[1]!.vm.id)).toMatchObject({ worker_id: a.id, driver: 'process' });
        expect((await store.getVm(onB[0]!.vm.id))?.phases).toEqual({ placed: placedAt });
        expect(await usage(a.id)).toEqual({ cpu: 6, mem: 6000, disk: 60, vms: 2 });
        expect(await usage(b.id)).toEqual({ cpu: 2, mem: 1024, disk: 5, vms: 1 });
        // Reserved exactly once: each VM's reservation is given back once, and then there is none.
        for (const { vm } of [...onA, ...onB]) expect(await store.releaseVm(vm.id)).toBe(true);
        for (const { vm } of [...onA, ...onB]) expect(await store.releaseVm(vm.id)).toBe(false);
        expect(await usage(a.id)).toEqual({ cpu: 0, mem: 0, disk: 0, vms: 0 });
        expect(await store.placeTasks([])).toEqual([]);
      });

      const tight: Array<[string, Partial<WorkerRegistration>]> = [
        ['cpu', { cpu_cores: 10 }],
        ['memory', { memory_mb: 5 * 1024 }],
        ['disk', { disk_gb: 25 }],
        ['max_vms', { max_vms: 5 }],
      ];
      it.each(tight)('a batch that overfills a worker (%s) places exactly the ones that fit', async (_dim, limits) => {
        // Room for exactly 5 of the 8, in the tight dimension; one VM is placed there already.
        const w = await worker({ cpu_cores: 100, memory_mb: 100_000, disk_gb: 1000, max_vms: 100, ...limits });
        const [first, ...rest] = await creates(8, w.id);
        expect(await store.placeTasks([first!.entry])).toEqual(['placed']);

        const outcomes = await store.placeTasks(rest.map((c) => c.entry));
        // In batch order: the first four fit beside the one there, the rest do not.
        expect(outcomes).toEqual([...Array(4).fill('placed'), ...Array(3).fill('insufficient_capacity')]);
        expect(await usage(w.id)).toEqual({ cpu: 10, mem: 5 * 1024, disk: 25, vms: 5 });
        expect(await reservedOn(w.id)).toEqual(await usage(w.id));
        for (const { task, vm } of rest.slice(4)) {
          expect(await store.getTask(task.id)).toMatchObject({ status: 'pending', worker_id: null, placement: null });
          expect(await store.getVm(vm.id)).toMatchObject({ worker_id: null, driver: null, phases: {} });
        }
        // Nothing fits any more, as a batch or alone.
        expect(await store.placeTasks(rest.slice(4).map((c) => c.entry))).toEqual(
          Array(3).fill('insufficient_capacity'),
        );
        expect(await usage(w.id)).toEqual({ cpu: 10, mem: 5 * 1024, disk: 25, vms: 5 });
      });

      it('counts each worker apart: mixed workers in one batch, each filled to its own room', async () => {
        const a = await worker({ cpu_cores: 4 }); // room for 2
        const b = await worker({ cpu_cores: 6 }); // room for 3
        const onA = await creates(3, a.id);
        const onB = await creates(4, b.id);
        const batch = [onA[0], onB[0], onA[1], onB[1], onA[2], onB[2], onB[3]].map((c) => c!.entry);

        expect(await store.placeTasks(batch)).toEqual([
          'placed',
          'placed',
          'placed',
          'placed',
          'insufficient_capacity',
          'placed',
          'insufficient_capacity',
        ]);
        expect(await usage(a.id)).toMatchObject({ cpu: 4, vms: 2 });
        expect(await usage(b.id)).toMatchObject({ cpu: 6, vms: 3 });
        expect(await reservedOn(a.id)).toEqual(await usage(a.id));
        expect(await reservedOn(b.id)).toEqual(await usage(b.id));
        expect((await store.getTask(onA[2]!.task.id))?.status).toBe('pending');
      });

      it('a task not pending, a deleted, missing or reserved VM, or a repeat: task_not_pending, the rest commits', async () => {
        const w = await worker();
        const [placedBefore, cancelled, deleted, repeated, fine, secondTaskOfVm, spare] = await creates(7, w.id);
        expect(await store.placeTask(placedBefore!.task.id, placedBefore!.vm.id, w.id, 'process', record())).toBe(
          'placed',
        );
        await store.updateTask(cancelled!.task.id, { status: 'cancelled' }, ['pending']);
        await store.updateVm(deleted!.vm.id, { deleted_at: new Date() });
        const before = await usage(w.id);

        const outcomes = await store.placeTasks([
          placedBefore!.entry, // its task is scheduled already
          { ...placedBefore!.entry, task_id: secondTaskOfVm!.task.id }, // a pending task, but its VM is reserved
          cancelled!.entry,
          deleted!.entry,
          repeated!.entry,
          entry(newId(), spare!.vm.id, w.id), // no such task
          entry(repeated!.task.id, repeated!.vm.id, w.id), // the same task again
          entry('not-a-uuid', 'nor-this', w.id),
          fine!.entry,
        ]);
        expect(outcomes).toEqual([
          'task_not_pending',
          'task_not_pending',
          'task_not_pending',
          'task_not_pending',
          'placed',
          'task_not_pending',
          'task_not_pending',
          'task_not_pending',
          'placed',
        ]);
        expect(await usage(w.id)).toEqual({
          cpu: before.cpu + 4,
          mem: before.mem + 2048,
          disk: before.disk + 10,
          vms: before.vms + 2,
        });
        expect(await reservedOn(w.id)).toEqual(await usage(w.id));
        expect(await store.getTask(cancelled!.task.id)).toMatchObject({ status: 'cancelled', worker_id: null });
        expect(await store.getTask(deleted!.task.id)).toMatchObject({ status: 'pending', worker_id: null });
        expect(await store.getVm(deleted!.vm.id)).toMatchObject({ worker_id: null, driver: null });
        expect(await store.getTask(secondTaskOfVm!.task.id)).toMatchObject({ status: 'pending', worker_id: null });
        expect(await store.getVm(spare!.vm.id)).toMatchObject({ worker_id: null, driver: null });
      });

      const unavailable: Array<[string, (id: string) => Promise<unknown>]> = [
        ['draining', (id) => store.setWorkerStatus(id, 'draining')],
        ['offline', (id) => store.setWorkerStatus(id, 'offline')],
        ['not eligible', (id) => store.setWorkerStatus(id, 'active', false)],
        ['unknown', async () => undefined],
      ];
      it.each(unavailable)(
        'a worker that is %s gets none of the batch; the others still commit',
        async (_s, makeIt) => {
          const target = await worker();
          const other = await worker();
          await makeIt(target.id);
          const targetId = _s === 'unknown' ? `missing-${uid()}` : target.id;
          const refused = await creates(2, targetId);
          const accepted = await creates(1, other.id);

          expect(await store.placeTasks([refused[0]!.entry, accepted[0]!.entry, refused[1]!.entry])).toEqual([
            'insufficient_capacity',
            'placed',
            'insufficient_capacity',
          ]);
          expect(await usage(target.id)).toEqual({ cpu: 0, mem: 0, disk: 0, vms: 0 });
          expect(await usage(other.id)).toEqual({ cpu: 2, mem: 1024, disk: 5, vms: 1 });
          for (const { task, vm } of refused) {
            expect(await store.getTask(task.id)).toMatchObject({ status: 'pending', worker_id: null });
            expect(await store.getVm(vm.id)).toMatchObject({ worker_id: null, driver: null });
          }
        },
      );

      it('concurrent batches racing for one worker never overbook it: exactly as many as fit win', async () => {
        for (let round = 0; round < 5; round++) {
          const w = await worker({ cpu_cores: 10, memory_mb: 100_000, disk_gb: 1000, max_vms: 100 }); // room for 5
          const batches = await Promise.all(Array.from({ length: 4 }, () => creates(6, w.id)));
          const outcomes = (await Promise.all(batches.map((b) => store.placeTasks(b.map((c) => c.entry))))).flat();

          expect(outcomes.filter((o) => o === 'placed')).toHaveLength(5);
          expect(outcomes.filter((o) => o === 'insufficient_capacity')).toHaveLength(19);
          expect(await usage(w.id)).toEqual({ cpu: 10, mem: 5 * 1024, disk: 25, vms: 5 });
          expect(await reservedOn(w.id)).toEqual(await usage(w.id));
          const scheduled = await store.listTasks({ worker_id: w.id, status: 'scheduled' });
          expect(scheduled).toHaveLength(5);
        }
      });

      it('batches that cross two workers in opposite orders, raced, neither deadlock nor overbook', async () => {
        const a = await worker({ cpu_cores: 8 }); // room for 4 each
        const b = await worker({ cpu_cores: 8 });
        const forward = [...(await creates(3, a.id)), ...(await creates(3, b.id))];
        const backward = [...(await creates(3, b.id)), ...(await creates(3, a.id))];
        const single = await creates(4, a.id);
        const outcomes = (
          await Promise.all([
            store.placeTasks(forward.map((c) => c.entry)),
            store.placeTasks(backward.map((c) => c.entry)),
            ...single.map(({ task, vm }) => store.placeTask(task.id, vm.id, a.id, 'process', record())),
          ])
        ).flat();

        expect(outcomes.filter((o) => o === 'placed')).toHaveLength(8);
        expect(await usage(a.id)).toMatchObject({ cpu: 8, vms: 4 });
        expect(await usage(b.id)).toMatchObject({ cpu: 8, vms: 4 });
        expect(await reservedOn(a.id)).toEqual(await usage(a.id));
        expect(await reservedOn(b.id)).toEqual(await usage(b.id));
      });

      it('a batch racing deletes of its VMs: each VM is either placed or deleted, never both, books balanced', async () => {
        const w = await worker({ cpu_cores: 1000, memory_mb: 1_000_000, disk_gb: 100_000, max_vms: 1000 });
        for (let round = 0; round < 5; round++) {
          const batch = await creates(10, w.id);
          const doomed = batch.filter((_, i) => i % 2 === round % 2);
          const deleteTask = (vmId: string) =>
            taskRecord({ type: 'vm:delete', payload: {}, vm_id: vmId, status: 'completed', completed_at: new Date() });
          const [outcomes, ...deletes] = await Promise.all([
            store.placeTasks(batch.map((c) => c.entry)),
            ...doomed.map(({ vm }) => store.deleteUnplacedVm(vm.id, deleteTask(vm.id), 'deleted before placement')),
          ]);
          doomed.forEach(({ vm }, i) => {
            const placed = outcomes[batch.findIndex((c) => c.vm.id === vm.id)] === 'placed';
            expect(deletes[i]!.outcome).toBe(placed ? 'placed' : 'deleted');
          });
          for (const [i, { vm, task }] of batch.entries()) {
            const [after, create] = [await store.getVm(vm.id), await store.getTask(task.id)];
            if (outcomes[i] === 'placed') {
              expect(after).toMatchObject({ deleted_at: null, worker_id: w.id });
              expect(create?.status).toBe('scheduled');
            } else {
              expect(after?.deleted_at).not.toBeNull();
              expect(create?.status).toBe('cancelled');
              expect(await store.releaseVm(vm.id)).toBe(false);
            }
          }
        }
        expect(await reservedOn(w.id)).toEqual(await usage(w.id));
      });

      it('getVms reads many VMs at once, deleted ones included; unknown ids are left out', async () => {
        const [{ vm: a }, { vm: b }] = [await createVm(), await createVm()];
        await store.updateVm(b.id, { deleted_at: new Date() });
        const found = await store.getVms([a.id, b.id, a.id, newId(), 'not-a-uuid']);
        expect(found.map((vm) => vm.id).sort()).toEqual([a.id, b.id].sort());
        expect(found.find((vm) => vm.id === a.id)).toEqual(await store.getVm(a.id));
        expect(found.find((vm) => vm.id === b.id)?.deleted_at).toBeInstanceOf(Date);
        expect(await store.getVms([])).toEqual([]);
      });

      it('countCreatesInFlight counts the scheduled and running creates of each worker', async () => {
        const [a, b] = [await worker(), await worker()];
        const onA = await creates(3, a.id);
        const onB = await creates(1, b.id);
        await store.placeTasks([...onA, ...onB].map((c) => c.entry));
        await store.updateTask(onA[0]!.task.id, { status: 'running', started_at: new Date() }, ['scheduled']);
        await store.updateTask(onA[1]!.task.id, { status: 'completed', completed_at: new Date() }, ['scheduled']);
        const counts = await store.countCreatesInFlight();
        expect(counts.get(a.id)).toBe(2);
        expect(counts.get(b.id)).toBe(1);
        expect(counts.has((await worker()).id)).toBe(false);
      });
    });

    // ── tasks ──────────────────────────────────────────────────────────────────────────────────
    describe('tasks', () => {
      it('insertTask and getTask round-trip every field', async () => {
        const { vm } = await createVm();
        const w = await worker();
        const started = new Date(Date.now() - 2000);
        const task = taskRecord({
          type: 'vm:execute',
          status: 'completed',
          vm_id: vm.id,
          worker_id: w.id,
          payload: { command: 'echo', args: ['hi'], env: { A: '1' } },
          result: { execution_id: newId(), exit_code: 0, stdout: 'hi\n', stderr: '', timed_out: false, duration_ms: 4 },
          error: null,
          placement: null,
          retry_count: 2,
          max_retries: 4,
          started_at: started,
          completed_at: new Date(started.getTime() + 1500),
        });
        await store.insertTask(task);
        expect(await store.getTask(task.id)).toEqual(task);
        expect(await store.getTask(newId())).toBeNull();
        expect(await store.getTask('not-a-uuid')).toBeNull();
      });

      it('updateTask is a compare-and-set on status when `from` is given', async () => {
        const { task } = await createVm();
        expect(await store.updateTask(task.id, { status: 'running' }, ['scheduled', 'running'])).toBeNull();
        expect((await store.getTask(task.id))?.status).toBe('pending');

        const cancelled = await store.updateTask(
          task.id,
          { status: 'cancelled', error: 'user asked', completed_at: new Date() },
          ['pending'],
        );
        expect(cancelled).toMatchObject({ status: 'cancelled', error: 'user asked' });
        expect(cancelled!.updated_at.getTime()).toBeGreaterThanOrEqual(task.updated_at.getTime());
        expect(await store.updateTask(task.id, { status: 'pending' }, ['pending'])).toBeNull();

        // Without `from` it always applies; jsonb fields and nulls are written as given.
        const result = { vm_id: task.vm_id!, driver: 'process', boot_ms: 12 };
        const patched = await store.updateTask(task.id, { result, placement: null, retry_count: 3 });
        expect(patched).toMatchObject({ status: 'cancelled', result, placement: null, retry_count: 3 });
        expect(await store.updateTask(task.id, { result: null })).toMatchObject({ result: null });
        expect(await store.updateTask(newId(), { status: 'failed' })).toBeNull();
      });

      it('listTasks filters by status, type, worker and VM', async () => {
        const w = await worker();
        const { vm, task: create } = await createVm();
        const stop = taskRecord({ type: 'vm:stop', vm_id: vm.id });
        await store.insertTask(stop);
        expect(await store.placeTask(create.id, vm.id, w.id, 'process', record())).toBe('placed');

        const ids = async (filter: Parameters<Store['listTasks']>[0]) =>
          (await store.listTasks(filter)).map((t) => t.id).sort();
        expect(await ids({ vm_id: vm.id })).toEqual([create.id, stop.id].sort());
        expect(await ids({ vm_id: vm.id, type: 'vm:stop' })).toEqual([stop.id]);
        expect(await ids({ vm_id: vm.id, status: 'scheduled' })).toEqual([create.id]);
        expect(await ids({ worker_id: w.id })).toEqual([create.id]);
        expect(await ids({ vm_id: vm.id, limit: 1 })).toHaveLength(1);
      });

      it('listPendingTasks returns the oldest pending tasks first', async () => {
        // Dated decades back, so no other test's pending tasks come before them.
        const at = (s: number) => new Date(Date.UTC(1990, 0, 1, 0, 0, s));
        const t2 = taskRecord({ type: 'vm:start', created_at: at(2), updated_at: at(2) });
        const t0 = taskRecord({ type: 'vm:start', created_at: at(0), updated_at: at(0) });
        const t1 = taskRecord({ type: 'vm:start', created_at: at(1), updated_at: at(1) });
        const done = taskRecord({ type: 'vm:start', status: 'completed', created_at: at(-10), updated_at: at(-10) });
        for (const t of [t2, done, t0, t1]) await store.insertTask(t);

        expect((await store.listPendingTasks(3)).map((t) => t.id)).toEqual([t0.id, t1.id, t2.id]);
        expect((await store.listPendingTasks(2)).map((t) => t.id)).toEqual([t0.id, t1.id]);
        const many = await store.listPendingTasks(1000);
        expect(many.every((t) => t.status === 'pending')).toBe(true);
        expect(many.map((t) => t.id)).not.toContain(done.id);
      });

      it('listStaleScheduledTasks finds scheduled tasks untouched since a time', async () => {
        const old = new Date(Date.UTC(1991, 5, 1));
        const staleScheduled = taskRecord({ type: 'vm:start', status: 'scheduled', created_at: old, updated_at: old });
        const stalePending = taskRecord({ type: 'vm:start', status: 'pending', created_at: old, updated_at: old });
        const freshScheduled = taskRecord({ type: 'vm:start', status: 'scheduled' });
        for (const t of [staleScheduled, stalePending, freshScheduled]) await store.insertTask(t);

        const cutoff = new Date(Date.UTC(1992, 0, 1));
        expect((await store.listStaleScheduledTasks(cutoff, 10)).map((t) => t.id)).toEqual([staleScheduled.id]);
        const later = (await store.listStaleScheduledTasks(new Date(Date.now() + 60_000), 1000)).map((t) => t.id);
        expect(later).toEqual(expect.arrayContaining([staleScheduled.id, freshScheduled.id]));
        expect(later).not.toContain(stalePending.id);

        // Touching the task (any update) makes it fresh again.
        await store.updateTask(staleScheduled.id, { placement: record({ reason: 'touched' }) });
        expect(await store.listStaleScheduledTasks(cutoff, 10)).toEqual([]);
      });

      it('countTasksByStatus counts every status, zeros included', async () => {
        const before = await store.countTasksByStatus();
        expect(Object.keys(before).sort()).toEqual([...TASK_STATUSES].sort());
        for (const s of TASK_STATUSES) expect(typeof before[s]).toBe('number');

        await store.insertTask(taskRecord({ type: 'vm:start', status: 'failed' }));
        await store.insertTask(taskRecord({ type: 'vm:start', status: 'failed' }));
        await store.insertTask(taskRecord({ type: 'vm:start', status: 'cancelled' }));
        const after = await store.countTasksByStatus();
        expect(after.failed).toBe(before.failed + 2);
        expect(after.cancelled).toBe(before.cancelled + 1);
        expect(after.completed).toBe(before.completed);
        expect(after.pending).toBe(before.pending);
      });
    });

    // ── executions ─────────────────────────────────────────────────────────────────────────────
    // ── drain and cancel ───────────────────────────────────────────────────────────────────────
    describe('drain and cancel', () => {
      it('startDrain stops placements at once and records the drain; activateWorker ends it', async () => {
        const w = await worker();
        const now = new Date();
        const deadline = new Date(now.getTime() + 60_000);
        const drained = await store.startDrain(w.id, { deadline, message: 'kernel upgrade' }, now);
        expect(drained).toMatchObject({ status: 'draining', eligible: false });
        expect(drained!.drain).toMatchObject({
          deadline,
          message: 'kernel upgrade',
          enforced_at: null,
          drained_at: null,
        });
        const { vm, task } = await createVm({ vcpus: 1, memory_mb: 128, disk_gb: 0 });
        expect(await store.placeTask(task.id, vm.id, w.id, 'process', record())).toBe('insufficient_capacity');
        const back = await store.activateWorker(w.id);
        expect(back).toMatchObject({ status: 'active', eligible: true, drain: null });
        expect(await store.placeTask(task.id, vm.id, w.id, 'process', record())).toBe('placed');
        expect(await store.startDrain('no-such-worker', { deadline: null, message: null }, now)).toBeNull();
      });

      it('an offline worker being drained stays offline; activating it keeps it offline', async () => {
        const w = await worker();
        await store.setWorkerStatus(w.id, 'offline');
        expect((await store.startDrain(w.id, { deadline: null, message: null }, new Date()))?.status).toBe('offline');
        expect(await store.activateWorker(w.id)).toMatchObject({ status: 'offline', eligible: true });
      });

      it('setWorkerEligibility changes eligibility alone', async () => {
        const w = await worker();
        expect(await store.setWorkerEligibility(w.id, false)).toMatchObject({
          status: 'active',
          eligible: false,
          drain: null,
        });
        expect(await store.setWorkerEligibility(w.id, true)).toMatchObject({ eligible: true });
      });

      it('claimDrainEnforcement answers true once, and only after the deadline', async () => {
        const w = await worker();
        const now = new Date();
        await store.startDrain(w.id, { deadline: new Date(now.getTime() + 10_000), message: null }, now);
        expect(await store.claimDrainEnforcement(w.id, now)).toBe(false);
        const later = new Date(now.getTime() + 11_000);
        const claims = await Promise.all([
          store.claimDrainEnforcement(w.id, later),
          store.claimDrainEnforcement(w.id, later),
        ]);
        expect(claims.filter(Boolean)).toHaveLength(1);
        expect((await store.getWorker(w.id))?.drain?.enforced_at).toEqual(expect.any(Date));
        await store.startDrain(w.id, { deadline: null, message: null }, later);
        expect(await store.claimDrainEnforcement(w.id, new Date(later.getTime() + 100_000))).toBe(false);
      });

      it('markDrained waits until no live VM is left, then answers true once', async () => {
        const w = await worker();
        const { vm, task } = await createVm({ vcpus: 1, memory_mb: 128, disk_gb: 0 });
        expect(await store.placeTask(task.id, vm.id, w.id, 'process', record())).toBe('placed');
        const now = new Date();
        await store.startDrain(w.id, { deadline: null, message: null }, now);
        expect(await store.markDrained(w.id, now)).toBe(false);
        await store.updateVm(vm.id, { status: 'stopping' });
        expect(await store.markDrained(w.id, now)).toBe(false);
        await store.updateVm(vm.id, { status: 'stopped', deleted_at: now });
        const marks = await Promise.all([store.markDrained(w.id, now), store.markDrained(w.id, now)]);
        expect(marks.filter(Boolean)).toHaveLength(1);
        expect((await store.getWorker(w.id))?.drain?.drained_at).toEqual(now);
      });

      it('announceWorker answers true once per membership change', async () => {
        const w = await worker();
        const joins = await Promise.all([store.announceWorker(w.id, 'joined'), store.announceWorker(w.id, 'joined')]);
        expect(joins.filter(Boolean)).toHaveLength(1);
        expect(await store.announceWorker(w.id, 'left')).toBe(true);
        expect(await store.announceWorker(w.id, 'left')).toBe(false);
        expect(await store.announceWorker(w.id, 'joined')).toBe(true);
        expect(await store.announceWorker('no-such-worker', 'joined')).toBe(false);
      });

      it('requestCancel flags running tasks only, and keeps the first time', async () => {
        const { task } = await createVm();
        const first = new Date('2026-03-01T00:00:00Z');
        expect(await store.requestCancel(task.id, first)).toBeNull(); // pending
        await store.updateTask(task.id, { status: 'running' });
        expect((await store.requestCancel(task.id, first))?.cancel_requested_at).toEqual(first);
        expect((await store.requestCancel(task.id, new Date()))?.cancel_requested_at).toEqual(first);
        expect((await store.getTask(task.id))?.cancel_requested_at).toEqual(first);
        await store.updateTask(task.id, { status: 'completed' });
        expect(await store.requestCancel(task.id, new Date())).toBeNull();
        expect(await store.requestCancel('not-a-uuid', new Date())).toBeNull();
      });
    });

    describe('executions', () => {
      it('insertExecution and listExecutions (newest first, with a limit)', async () => {
        const { vm, task } = await createVm();
        const base = Date.now() - 10_000;
        const exec = (i: number, extra: Partial<Execution> = {}): Execution => ({
          id: newId(),
          vm_id: vm.id,
          task_id: i === 0 ? task.id : null,
          command: 'sh',
          args: ['-c', `echo ${i}`],
          env: { N: String(i) },
          exit_code: i,
          stdout: `${i}\n`,
          stderr: '',
          timed_out: false,
          started_at: new Date(base + i * 1000),
          completed_at: new Date(base + i * 1000 + 250),
          duration_ms: 250,
          ...extra,
        });
        const e0 = exec(0);
        const e1 = exec(1, { timed_out: true, exit_code: 137, stderr: 'killed' });
        const e2 = exec(2);
        for (const e of [e1, e0, e2]) await store.insertExecution(e);

        const listed = await store.listExecutions(vm.id);
        expect(listed.map((e) => e.id)).toEqual([e2.id, e1.id, e0.id]);
        expect(listed[1]).toEqual(e1);
        expect(listed[2]).toEqual(e0);
        expect((await store.listExecutions(vm.id, 1)).map((e) => e.id)).toEqual([e2.id]);
        expect(await store.listExecutions(newId())).toEqual([]);
      });
    });

    // ── API keys and audit ─────────────────────────────────────────────────────────────────────
    describe('API keys and audit', () => {
      it('insertApiKey and getApiKey round-trip every field; an unknown id is null', async () => {
        const key = apiKeyRecord({
          role: 'admin',
          created_by: 'bootstrap',
          created_at: new Date(Date.now() - 5_000),
          last_used_at: new Date(Date.now() - 1_000),
          expires_at: new Date(Date.now() + 86_400_000),
        });
        await store.insertApiKey(key);
        expect(await store.getApiKey(key.id)).toEqual(key);
        expect(await store.getApiKey(`key_${uid()}`)).toBeNull();
      });

      it('the role must be one of the three', async () => {
        const bad: ApiKeyRecord = {
          ...apiKeyRecord(),
          // @ts-expect-error: a role outside ROLES, as a caller that skipped validation might send
          role: 'root',
        };
        await expect(store.insertApiKey(bad)).rejects.toThrow();
      });

      it('a duplicate live name conflicts; once revoked, the name can be reused', async () => {
        const first = apiKeyRecord();
        await store.insertApiKey(first);
        const clash = store.insertApiKey(apiKeyRecord({ name: first.name }));
        await expect(clash).rejects.toBeInstanceOf(AetheriumError);
        await expect(store.insertApiKey(apiKeyRecord({ name: first.name }))).rejects.toMatchObject({
          code: 'conflict',
        });

        expect((await store.revokeApiKey(first.id, new Date()))?.id).toBe(first.id);
        const second = apiKeyRecord({ name: first.name });
        await store.insertApiKey(second);
        expect((await store.getApiKey(second.id))?.revoked_at).toBeNull();
        // By name, a revoke finds the live key, not the revoked one.
        expect((await store.revokeApiKey(first.name, new Date()))?.id).toBe(second.id);
      });

      it('listApiKeys: newest first, revoked ones only with include_revoked', async () => {
        const base = Date.now() + 3_600_000; // later than every other key in this store
        const older = apiKeyRecord({ created_at: new Date(base) });
        const newer = apiKeyRecord({ created_at: new Date(base + 1_000) });
        const revoked = apiKeyRecord({ created_at: new Date(base + 2_000) });
        for (const k of [newer, revoked, older]) await store.insertApiKey(k);
        const at = new Date();
        await store.revokeApiKey(revoked.id, at);

        const live = await store.listApiKeys();
        expect(live.slice(0, 2).map((k) => k.id)).toEqual([newer.id, older.id]);
        expect(live.every((k) => k.revoked_at === null)).toBe(true);
        expect(live.map((k) => k.id)).not.toContain(revoked.id);

        const all = await store.listApiKeys({ include_revoked: true });
        expect(all.slice(0, 3).map((k) => k.id)).toEqual([revoked.id, newer.id, older.id]);
        expect(all[0]).toEqual({ ...revoked, revoked_at: at });
        expect(await store.listApiKeys({ include_revoked: false })).toEqual(live);
      });

      it('revokeApiKey is a compare-and-set: once, by id or by name, and null when nothing is live', async () => {
        const byId = apiKeyRecord();
        const byName = apiKeyRecord();
        await store.insertApiKey(byId);
        await store.insertApiKey(byName);
        const now = new Date();

        expect(await store.revokeApiKey(byId.id, now)).toEqual({ ...byId, revoked_at: now });
        expect(await store.revokeApiKey(byId.id, new Date())).toBeNull();
        expect((await store.getApiKey(byId.id))?.revoked_at).toEqual(now); // the first revoke's time stays

        expect((await store.revokeApiKey(byName.name, now))?.id).toBe(byName.id);
        expect(await store.revokeApiKey(byName.name, now)).toBeNull();
        expect(await store.revokeApiKey(`key_${uid()}`, now)).toBeNull();

        // Raced: exactly one caller gets the key.
        const raced = apiKeyRecord();
        await store.insertApiKey(raced);
        const results = await Promise.all(
          Array.from({ length: 5 }, (_, i) => store.revokeApiKey(i % 2 ? raced.id : raced.name, new Date())),
        );
        expect(results.filter((r) => r !== null)).toHaveLength(1);
      });

      it('revokeApiKey: an id match wins over another key whose name is that id', async () => {
        const target = apiKeyRecord();
        const namesake = apiKeyRecord({ name: target.id });
        await store.insertApiKey(target);
        await store.insertApiKey(namesake);
        expect((await store.revokeApiKey(target.id, new Date()))?.id).toBe(target.id);
        expect((await store.getApiKey(namesake.id))?.revoked_at).toBeNull();
        // Now the only live match is the namesake.
        expect((await store.revokeApiKey(target.id, new Date()))?.id).toBe(namesake.id);
      });

      it('touchApiKey writes last_used_at at most once a minute, and never on a revoked key', async () => {
        const key = apiKeyRecord();
        await store.insertApiKey(key);
        const t0 = new Date(Date.now() - 600_000);
        const lastUsed = async () => (await store.getApiKey(key.id))?.last_used_at;

        await store.touchApiKey(key.id, t0);
        expect(await lastUsed()).toEqual(t0); // unset: written
        await store.touchApiKey(key.id, new Date(t0.getTime() + 30_000));
        expect(await lastUsed()).toEqual(t0); // 30 s later: skipped
        await store.touchApiKey(key.id, new Date(t0.getTime() + 59_999));
        expect(await lastUsed()).toEqual(t0); // just under a minute: skipped
        const t1 = new Date(t0.getTime() + 60_000);
        await store.touchApiKey(key.id, t1);
        expect(await lastUsed()).toEqual(t1); // a minute later: written
        await store.touchApiKey(key.id, new Date(t0.getTime() + 10_000));
        expect(await lastUsed()).toEqual(t1); // a clock behind the last write never moves it back

        await store.revokeApiKey(key.id, new Date());
        await store.touchApiKey(key.id, new Date(t1.getTime() + 3_600_000));
        expect(await lastUsed()).toEqual(t1);
        await expect(store.touchApiKey(`key_${uid()}`, new Date())).resolves.toBeUndefined();
      });

      it('expired keys are still returned and counted: expiry is checked by the caller', async () => {
        const expired = apiKeyRecord({ expires_at: new Date(Date.now() - 60_000) });
        await store.insertApiKey(expired);
        expect(await store.getApiKey(expired.id)).toEqual(expired);
        expect((await store.listApiKeys()).map((k) => k.id)).toContain(expired.id);
        const before = await store.countApiKeys();
        await store.revokeApiKey(expired.id, new Date());
        expect(await store.countApiKeys()).toBe(before - 1);
      });

      it('countApiKeys counts live keys only', async () => {
        const before = await store.countApiKeys();
        expect(before).toBe((await store.listApiKeys()).length);
        const a = apiKeyRecord();
        const b = apiKeyRecord();
        await store.insertApiKey(a);
        await store.insertApiKey(b);
        await store.insertApiKey(apiKeyRecord({ revoked_at: new Date() })); // written already revoked
        expect(await store.countApiKeys()).toBe(before + 2);
        await store.revokeApiKey(a.id, new Date());
        expect(await store.countApiKeys()).toBe(before + 1);
      });

      it('insertAudit and listAudit round-trip every field, details included; at defaults to now', async () => {
        const actor = `key_${uid()}`;
        const at = new Date(Date.now() - 2_000);
        const full = auditRecord({
          actor,
          at,
          actor_kind: 'jwt',
          role: 'admin',
          action: 'vm.delete',
          route: 'DELETE /api/v1/vms/:id',
          target: newId(),
          source: '10.0.0.7',
          outcome: 'succeeded',
          status: 202,
          details: { reason: 'cleanup', count: 3, ratio: 0.5, force: true, note: null, empty: '' },
        });
        const bare = auditRecord({ actor, actor_kind: 'anonymous', role: null, target: null, source: null });
        const { at: _omitted, ...withoutAt } = bare;
        const start = Date.now();
        await store.insertAudit(full);
        await store.insertAudit(withoutAt);

        const [second, first] = await store.listAudit({ actor });
        expect(first).toEqual({ ...full, id: expect.any(Number) });
        expect(second).toEqual({ ...withoutAt, id: expect.any(Number), at: expect.any(Date) });
        expect(second!.id).toBeGreaterThan(first!.id);
        expect(Math.abs(second!.at.getTime() - start)).toBeLessThan(60_000); // the database's clock
      });

      it('listAudit filters by actor, action, outcome and since (inclusive), and combines them', async () => {
        const alice = `key_${uid()}`;
        const bob = `key_${uid()}`;
        const action = `vm.stop.${uid()}`;
        const base = Date.now() - 10_000;
        const rows: AuditInput[] = [
          auditRecord({ actor: alice, action, outcome: 'allowed', at: new Date(base) }),
          auditRecord({ actor: alice, action, outcome: 'denied', status: 403, at: new Date(base + 1_000) }),
          auditRecord({ actor: bob, action, outcome: 'failed', status: 500, at: new Date(base + 2_000) }),
          auditRecord({ actor: alice, action: 'vm.list', outcome: 'allowed', at: new Date(base + 3_000) }),
        ];
        for (const row of rows) await store.insertAudit(row);
        const list = async (filter: Parameters<Store['listAudit']>[0]) =>
          (await store.listAudit(filter)).map((e) => [e.actor, e.action, e.outcome]);

        expect(await list({ actor: alice })).toEqual([
          [alice, 'vm.list', 'allowed'],
          [alice, action, 'denied'],
          [alice, action, 'allowed'],
        ]);
        expect(await list({ action })).toEqual([
          [bob, action, 'failed'],
          [alice, action, 'denied'],
          [alice, action, 'allowed'],
        ]);
        expect(await list({ action, outcome: 'denied' })).toEqual([[alice, action, 'denied']]);
        expect(await list({ actor: bob, outcome: 'allowed' })).toEqual([]);
        expect(await list({ action, since: new Date(base + 1_000) })).toEqual([
          [bob, action, 'failed'],
          [alice, action, 'denied'],
        ]);
        expect(await list({ actor: alice, action, since: new Date(base + 500), outcome: 'denied' })).toEqual([
          [alice, action, 'denied'],
        ]);
        expect(await list({ actor: `key_${uid()}` })).toEqual([]);
      });

      it('listAudit pages newest first with before_id, without gaps or repeats', async () => {
        const actor = `key_${uid()}`;
        for (let i = 0; i < 5; i++) await store.insertAudit(auditRecord({ actor, details: { i } }));
        const all = await store.listAudit({ actor });
        expect(all.map((e) => e.details.i)).toEqual([4, 3, 2, 1, 0]);

        const pages: number[][] = [];
        let before: number | undefined;
        for (;;) {
          const page = await store.listAudit({
            actor,
            limit: 2,
            ...(before === undefined ? {} : { before_id: before }),
          });
          if (page.length === 0) break;
          pages.push(page.map((e) => Number(e.details.i)));
          before = page[page.length - 1]!.id;
        }
        expect(pages).toEqual([[4, 3], [2, 1], [0]]);
        expect(await store.listAudit({ actor, before_id: all[4]!.id })).toEqual([]);
      });

      it('listAudit: the limit defaults to 100 and is clamped to 1..1000', async () => {
        const actor = `bulk_${uid()}`;
        const entries = Array.from({ length: 1_005 }, (_, i) => auditRecord({ actor, details: { i } }));
        for (let i = 0; i < entries.length; i += 50) {
          await Promise.all(entries.slice(i, i + 50).map((e) => store.insertAudit(e)));
        }
        expect(await store.listAudit({ actor })).toHaveLength(100);
        expect(await store.listAudit({ actor, limit: 250 })).toHaveLength(250);
        expect(await store.listAudit({ actor, limit: 5_000 })).toHaveLength(1_000);
        expect(await store.listAudit({ actor, limit: 0 })).toHaveLength(1);
        expect(await store.listAudit({ actor, limit: -7 })).toHaveLength(1);
        expect(await store.listAudit({ actor, limit: 2.9 })).toHaveLength(2);
        const newest = await store.listAudit({ actor, limit: 1 });
        expect(newest[0]!.id).toBe(Math.max(...(await store.listAudit({ actor, limit: 1_000 })).map((e) => e.id)));
      }, 60_000);
    });

    // ── joining and certificate revocation ─────────────────────────────────────────────────────
    describe('join tokens and worker certificate revocation', () => {
      it('createJoinToken and getJoinToken round-trip every field; an unknown id is null', async () => {
        const token = joinTokenRecord({
          description: 'rack 7',
          max_uses: 5,
          uses: 2,
          created_by: 'key:admin',
          created_at: new Date(Date.now() - 5_000),
          revoked_at: new Date(Date.now() - 1_000),
          last_used_at: new Date(Date.now() - 2_000),
          last_worker_id: 'w-rack7-01',
        });
        await store.createJoinToken(token);
        expect(await store.getJoinToken(token.id)).toEqual(token);
        expect(await store.getJoinToken(joinTokenRecord().id)).toBeNull();
      });

      it('max_uses is at least 1 and uses never passes it', async () => {
        await expect(store.createJoinToken(joinTokenRecord({ max_uses: 0 }))).rejects.toThrow();
        await expect(store.createJoinToken(joinTokenRecord({ max_uses: 1, uses: 2 }))).rejects.toThrow();
      });

      it('listJoinTokens: newest first, used up, expired and revoked ones included', async () => {
        const base = Date.now() + 3_600_000; // later than every other token in this store
        const older = joinTokenRecord({ created_at: new Date(base) });
        const usedUp = joinTokenRecord({ created_at: new Date(base + 1_000), uses: 1 });
        const newest = joinTokenRecord({ created_at: new Date(base + 2_000), expires_at: new Date(base - 7_200_000) });
        for (const t of [usedUp, newest, older]) await store.createJoinToken(t);
        await store.revokeJoinToken(older.id, new Date());
        const listed = await store.listJoinTokens();
        expect(listed.slice(0, 3).map((t) => t.id)).toEqual([newest.id, usedUp.id, older.id]);
        expect(listed[2]?.revoked_at).toBeInstanceOf(Date);
      });

      it('revokeJoinToken is a compare-and-set: once, the first time stays, null when unknown', async () => {
        const token = joinTokenRecord();
        await store.createJoinToken(token);
        const at = new Date(Date.now() - 1_000);
        expect(await store.revokeJoinToken(token.id, at)).toEqual({ ...token, revoked_at: at });
        expect(await store.revokeJoinToken(token.id, new Date())).toBeNull();
        expect((await store.getJoinToken(token.id))?.revoked_at).toEqual(at);
        expect(await store.revokeJoinToken(joinTokenRecord().id, new Date())).toBeNull();
      });

      it('useJoinToken counts a use and records who; refuses used up, expired (at the instant) and revoked', async () => {
        const token = joinTokenRecord({ max_uses: 2 });
        await store.createJoinToken(token);
        const t1 = new Date();
        expect(await store.useJoinToken(token.id, 'w-a', t1)).toEqual({
          ...token,
          uses: 1,
          last_used_at: t1,
          last_worker_id: 'w-a',
        });
        const t2 = new Date(t1.getTime() + 1_000);
        expect(await store.useJoinToken(token.id, 'w-b', t2)).toMatchObject({ uses: 2, last_worker_id: 'w-b' });
        expect(await store.useJoinToken(token.id, 'w-c', t2)).toBeNull(); // used up
        expect(await store.getJoinToken(token.id)).toMatchObject({ uses: 2, last_worker_id: 'w-b', last_used_at: t2 });

        const expiring = joinTokenRecord();
        await store.createJoinToken(expiring);
        expect(await store.useJoinToken(expiring.id, 'w-a', expiring.expires_at)).toBeNull(); // expired at that instant
        expect(await store.useJoinToken(expiring.id, 'w-a', new Date(expiring.expires_at.getTime() - 1))).toMatchObject(
          { uses: 1 },
        );

        const revoked = joinTokenRecord();
        await store.createJoinToken(revoked);
        await store.revokeJoinToken(revoked.id, new Date());
        expect(await store.useJoinToken(revoked.id, 'w-a', new Date())).toBeNull();
        expect((await store.getJoinToken(revoked.id))?.uses).toBe(0);

        expect(await store.useJoinToken(joinTokenRecord().id, 'w-a', new Date())).toBeNull(); // unknown
      });

      it('useJoinToken raced: of 20 concurrent joins with a two-use token, exactly 2 succeed', async () => {
        const token = joinTokenRecord({ max_uses: 2 });
        await store.createJoinToken(token);
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => store.useJoinToken(token.id, `w-race-${i}`, new Date())),
        );
        const admitted = results.filter((r) => r !== null);
        expect(admitted).toHaveLength(2);
        expect(admitted.map((r) => r!.uses).sort()).toEqual([1, 2]);
        expect((await store.getJoinToken(token.id))?.uses).toBe(2);
      });

      it('revokeWorkerCertificates: an upsert that keeps the later cut-off, for any worker id', async () => {
        const workerId = `w-${uid()}`; // never registered: a revocation does not need the workers row
        expect(await store.workerCertificatesRevokedBefore(workerId)).toBeNull();
        const t1 = new Date(Date.now() - 60_000);
        expect(await store.revokeWorkerCertificates(workerId, t1, 'key:admin')).toEqual(t1);
        expect(await store.workerCertificatesRevokedBefore(workerId)).toEqual(t1);

        const t2 = new Date(t1.getTime() + 30_000);
        expect(await store.revokeWorkerCertificates(workerId, t2)).toEqual(t2);
        expect(await store.workerCertificatesRevokedBefore(workerId)).toEqual(t2);
        // An older cut-off (a replica with a slow clock, a retry) never undoes a later one.
        expect(await store.revokeWorkerCertificates(workerId, t1)).toEqual(t2);
        expect(await store.workerCertificatesRevokedBefore(workerId)).toEqual(t2);

        // Raced: the latest cut-off wins, whatever the order.
        const times = Array.from({ length: 10 }, (_, i) => new Date(t2.getTime() + (i + 1) * 1_000));
        await Promise.all([...times].reverse().map((at) => store.revokeWorkerCertificates(workerId, at)));
        expect(await store.workerCertificatesRevokedBefore(workerId)).toEqual(times.at(-1));

        // Another worker is not affected.
        expect(await store.workerCertificatesRevokedBefore(`w-${uid()}`)).toBeNull();
        // The list of every cut-off agrees with the one-worker read.
        const all = await store.listWorkerCertificateRevocations();
        expect(all.get(workerId)).toEqual(times.at(-1));
        expect(all.has(`w-${uid()}`)).toBe(false);
      });
    });

    // ── idempotency keys ───────────────────────────────────────────────────────────────────────
    describe('idempotency keys', () => {
      const TTL = 24 * 3_600_000;
      const claim = (overrides: Partial<IdempotencyClaim> = {}): IdempotencyClaim => ({
        scope: `key:key_${uid()}`,
        key: `req-${uid()}`,
        fingerprint: `sha256:${randomUUID()}`,
        vm_id: newId(),
        task_id: newId(),
        now: new Date(),
        ttl_ms: TTL,
        ...overrides,
      });

      it('the first claim records the key; a later one gets that record back, untouched', async () => {
        const first = claim();
        expect(await store.claimIdempotencyKey(first)).toEqual({
          created: true,
          record: {
            scope: first.scope,
            key: first.key,
            fingerprint: first.fingerprint,
            vm_id: first.vm_id,
            task_id: first.task_id,
            created_at: first.now,
            expires_at: new Date(first.now.getTime() + TTL),
          },
        });
        const second = claim({ scope: first.scope, key: first.key, now: new Date(first.now.getTime() + 1_000) });
        const again = await store.claimIdempotencyKey(second);
        expect(again.created).toBe(false);
        expect(again.record).toMatchObject({
          fingerprint: first.fingerprint,
          vm_id: first.vm_id,
          task_id: first.task_id,
          created_at: first.now,
        });
      });

      it('keys are per scope: the same key from another caller is a record of its own', async () => {
        const mine = claim();
        const theirs = claim({ key: mine.key });
        expect((await store.claimIdempotencyKey(mine)).created).toBe(true);
        const other = await store.claimIdempotencyKey(theirs);
        expect(other.created).toBe(true);
        expect(other.record.vm_id).toBe(theirs.vm_id);
        expect((await store.claimIdempotencyKey(claim({ scope: mine.scope, key: mine.key }))).record.vm_id).toBe(
          mine.vm_id,
        );
      });

      it('expires after the TTL: a claim at that instant replaces the record with its own', async () => {
        const t0 = new Date(Date.now() - 3 * TTL);
        const first = claim({ now: t0 });
        await store.claimIdempotencyKey(first);
        const justBefore = claim({ scope: first.scope, key: first.key, now: new Date(t0.getTime() + TTL - 1) });
        expect(await store.claimIdempotencyKey(justBefore)).toMatchObject({
          created: false,
          record: { vm_id: first.vm_id },
        });
        const atExpiry = claim({ scope: first.scope, key: first.key, now: new Date(t0.getTime() + TTL) });
        const replaced = await store.claimIdempotencyKey(atExpiry);
        expect(replaced.created).toBe(true);
        expect(replaced.record).toMatchObject({
          fingerprint: atExpiry.fingerprint,
          vm_id: atExpiry.vm_id,
          task_id: atExpiry.task_id,
          created_at: atExpiry.now,
          expires_at: new Date(t0.getTime() + 2 * TTL),
        });
      });

      it('raced: of 20 concurrent claims of one key exactly one is created, and all see its record', async () => {
        const base = claim();
        const claims = Array.from({ length: 20 }, () => claim({ scope: base.scope, key: base.key }));
        const results = await Promise.all(claims.map((c) => store.claimIdempotencyKey(c)));
        const winners = results.filter((r) => r.created);
        expect(winners).toHaveLength(1);
        const winner = winners[0]!.record;
        expect(claims.map((c) => c.vm_id)).toContain(winner.vm_id);
        for (const r of results) expect(r.record).toMatchObject({ vm_id: winner.vm_id, task_id: winner.task_id });
      });

      it('raced over an expired record: exactly one claim replaces it', async () => {
        const t0 = new Date(Date.now() - 2 * TTL);
        const old = claim({ now: t0 });
        await store.claimIdempotencyKey(old);
        const now = new Date();
        const claims = Array.from({ length: 10 }, () => claim({ scope: old.scope, key: old.key, now }));
        const results = await Promise.all(claims.map((c) => store.claimIdempotencyKey(c)));
        expect(results.filter((r) => r.created)).toHaveLength(1);
        const ids = new Set(results.map((r) => r.record.vm_id));
        expect(ids.size).toBe(1);
        expect(ids.has(old.vm_id)).toBe(false);
      });

      it('pruneIdempotencyKeys deletes the records expired at now, up to the limit, and keeps live ones', async () => {
        const longAgo = new Date(Date.now() - 10 * TTL);
        const expired = [claim({ now: longAgo }), claim({ now: longAgo }), claim({ now: longAgo })];
        const live = claim();
        for (const c of [...expired, live]) await store.claimIdempotencyKey(c);
        const now = new Date();
        expect(await store.pruneIdempotencyKeys(now, 1)).toBe(1);
        expect(await store.pruneIdempotencyKeys(now)).toBeGreaterThanOrEqual(2);
        expect(await store.pruneIdempotencyKeys(now)).toBe(0);
        // The pruned keys are free again (a fresh record); the live one still answers with its own.
        for (const c of expired) {
          const fresh = claim({ scope: c.scope, key: c.key });
          expect(await store.claimIdempotencyKey(fresh)).toMatchObject({
            created: true,
            record: { vm_id: fresh.vm_id },
          });
        }
        expect(await store.claimIdempotencyKey(claim({ scope: live.scope, key: live.key }))).toMatchObject({
          created: false,
          record: { vm_id: live.vm_id },
        });
      });
    });

    // ── migrations (on a store of their own: they drop tables) ─────────────────────────────────
    describe('migrations', () => {
      let fresh: MigratableStore;

      beforeAll(async () => {
        fresh = await open();
      }, HOOK_TIMEOUT);

      afterAll(async () => {
        await fresh?.close();
      }, HOOK_TIMEOUT);

      it('migrateDown reverts newest first; migrate brings everything back, once, even when raced', async () => {
        expect(typeof fresh.migrateDown).toBe('function');
        const down = fresh.migrateDown!.bind(fresh);
        const { vm } = await (async () => {
          const v = vmRecord();
          await fresh.insertVmWithTask(v, taskRecord({ vm_id: v.id }));
          return { vm: v };
        })();

        const versions = (await loadMigrations()).map((m) => m.version);
        const above1 = versions.filter((v) => v > 1);
        expect(await down(1)).toEqual([...above1].reverse());
        await expect(fresh.listWorkers()).rejects.toThrow(); // workers table is gone
        await expect(fresh.listApiKeys()).rejects.toThrow(); // and so are api_keys and audit_log
        await expect(fresh.listAudit()).rejects.toThrow();
        await expect(fresh.listJoinTokens()).rejects.toThrow(); // and join_tokens and the revocations
        await expect(fresh.workerCertificatesRevokedBefore('w-x')).rejects.toThrow();
        await expect(fresh.pruneIdempotencyKeys(new Date())).rejects.toThrow(); // and idempotency_keys
        expect(await down(1)).toEqual([]);
        expect(await fresh.migrate()).toEqual(above1);
        expect((await fresh.getVm(vm.id))?.id).toBe(vm.id); // version 1's tables kept their rows
        expect(await fresh.listWorkers()).toEqual([]);
        expect(await fresh.listApiKeys()).toEqual([]);
        expect(await fresh.listAudit()).toEqual([]);
        expect(await fresh.listJoinTokens()).toEqual([]);
        expect(await fresh.workerCertificatesRevokedBefore('w-x')).toBeNull();
        expect(await fresh.pruneIdempotencyKeys(new Date())).toBe(0);

        expect(await down(0)).toEqual([...versions].reverse());
        await expect(fresh.getVm(vm.id)).rejects.toThrow(); // vms table is gone

        const [a, b] = await Promise.all([fresh.migrate(), fresh.migrate()]);
        expect([...a!, ...b!].sort((x, y) => x - y)).toEqual(versions);
        expect(await fresh.migrate()).toEqual([]);

        // The schema works again, constraints included.
        const w = (await fresh.upsertWorker(registration(), new Date())).worker;
        const v = vmRecord();
        const t = taskRecord({ vm_id: v.id });
        await fresh.insertVmWithTask(v, t);
        expect(await fresh.placeTask(t.id, v.id, w.id, 'process', record())).toBe('placed');
        await expect(fresh.insertVmWithTask(vmRecord({ name: v.name }), taskRecord())).rejects.toMatchObject({
          code: 'conflict',
        });
        const key = apiKeyRecord();
        await fresh.insertApiKey(key);
        await expect(fresh.insertApiKey(apiKeyRecord({ name: key.name }))).rejects.toMatchObject({ code: 'conflict' });
        await fresh.insertAudit(auditRecord({ details: { ok: true } }));
        expect((await fresh.listAudit()).map((e) => e.details)).toEqual([{ ok: true }]);
        const join = joinTokenRecord();
        await fresh.createJoinToken(join);
        expect((await fresh.useJoinToken(join.id, 'w-x', new Date()))?.uses).toBe(1);
        expect(await fresh.useJoinToken(join.id, 'w-y', new Date())).toBeNull();
        const idem = {
          scope: 'local',
          key: 'k',
          fingerprint: 'sha256:x',
          vm_id: newId(),
          task_id: newId(),
          now: new Date(),
          ttl_ms: 60_000,
        };
        expect((await fresh.claimIdempotencyKey(idem)).created).toBe(true);
        expect((await fresh.claimIdempotencyKey({ ...idem, vm_id: newId() })).record.vm_id).toBe(idem.vm_id);
      });
    });
  });
}
