import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { newId, type Task, type Vm } from '../src/domain/index.ts';
import { openStore } from '../src/adapters/storage/open-store.ts';
import { storeConformance } from './conformance/store.suite.ts';

// In memory: every call is a new, empty database.
storeConformance('pglite (in memory)', () => openStore({ kind: 'pglite' }));

describe('pglite on a data directory', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('keeps VMs and tasks across close and reopen', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'aetherium-pglite-'));
    dirs.push(dir);
    const dataDir = join(dir, 'db');
    const now = new Date();
    const vm: Vm = {
      id: newId(),
      name: 'persisted',
      status: 'created',
      driver: null,
      worker_id: null,
      zone: null,
      labels: { keep: 'me' },
      image: 'alpine',
      vcpus: 1,
      memory_mb: 256,
      disk_gb: 1,
      error: null,
      created_at: now,
      updated_at: now,
      deleted_at: null,
      phases: {},
    };
    const task: Task = {
      id: newId(),
      type: 'vm:create',
      status: 'pending',
      vm_id: vm.id,
      worker_id: null,
      payload: { worker_labels: {}, strategy: null },
      result: null,
      error: null,
      placement: null,
      retry_count: 0,
      max_retries: 3,
      created_at: now,
      updated_at: now,
      started_at: null,
      completed_at: null,
      cancel_requested_at: null,
      trace: null,
    };

    const first = await openStore({ kind: 'pglite', dataDir });
    await first.insertVmWithTask(vm, task);
    await first.close();

    const second = await openStore({ kind: 'pglite', dataDir });
    try {
      expect(await second.migrate()).toEqual([]); // schema_migrations persisted too
      expect(await second.getVm(vm.id)).toEqual(vm);
      expect(await second.getTask(task.id)).toEqual(task);
      expect((await second.findVm('persisted'))?.id).toBe(vm.id);
    } finally {
      await second.close();
    }
  }, 60_000);
});
