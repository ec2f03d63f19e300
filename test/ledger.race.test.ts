/**
 * A delete that races a placement must never leak a reservation. On real Postgres (concurrent
 * connections), each round creates a VM and then, at the same moment, places it and deletes it.
 * Whichever wins, the books must balance: a deleted VM holds nothing, a placed one holds exactly
 * its own size and has a delete on its way to its worker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryEventBus } from '../src/adapters/events/memory-event-bus.ts';
import { MemoryTaskQueue } from '../src/adapters/queue/memory-task-queue.ts';
import { openStore } from '../src/adapters/storage/open-store.ts';
import { newId, newTask, type CreateTask, type Vm } from '../src/domain/index.ts';
import type { Store } from '../src/ports/store.ts';
import { Ledger } from '../src/server/ledger/ledger.ts';
import { VmService } from '../src/server/services/vm-service.ts';
import { createDatabase, startPostgres, type PostgresServer } from './harness/postgres.ts';

const ROUNDS = 200;
let server: PostgresServer;
let store: Store;

beforeAll(async () => {
  server = await startPostgres();
  store = await openStore({ kind: 'postgres', url: await createDatabase(server.url) });
}, 120_000);

afterAll(async () => {
  await store?.close();
  await server?.stop();
}, 60_000);

function vmRow(name: string): Vm {
  const now = new Date();
  const base = { vcpus: 1, memory_mb: 64, disk_gb: 1, labels: {}, image: null, zone: null, driver: null, error: null };
  return {
    ...base,
    id: newId(),
    name,
    status: 'created',
    worker_id: null,
    created_at: now,
    updated_at: now,
    deleted_at: null,
    phases: {},
  };
}

const record = (workerId: string) => ({
  workers: 1,
  evaluated: 1,
  sampled: false,
  feasible: 1,
  rejected: {},
  strategy: 'binpack' as const,
  chosen: { worker_id: workerId, driver: 'process' as const, score: 1 },
  placed_at: new Date().toISOString(),
  moved_from: [],
  excluded: [],
});

describe('delete racing placement', () => {
  it(`leaks no capacity over ${ROUNDS} rounds, whichever side wins`, async () => {
    const ledger = new Ledger(store, new MemoryEventBus());
    const vms = new VmService(ledger, new MemoryTaskQueue(), () => undefined);
    const workerId = `racer-${newId().slice(0, 8)}`;
    const resources = { cpu_cores: 1000, memory_mb: 1_000_000, disk_gb: 10_000, max_vms: 1000 };
    await store.upsertWorker(
      {
        id: workerId,
        hostname: 'h',
        address: '127.0.0.1',
        zone: 'z',
        labels: {},
        capabilities: ['process'],
        ttl_seconds: 60,
        metadata: {},
        ...resources,
      },
      new Date(),
    );
    const won = { placement: 0, delete: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const vm = vmRow(`race-${round}-${newId().slice(0, 6)}`);
      const task: CreateTask = newTask('vm:create', { worker_labels: {}, strategy: null }, { vm_id: vm.id });
      await ledger.createVm(vm, task);
      const placement = { worker_id: workerId, driver: 'process' as const, score: 1 };
      // Alternate who is sent first, so both orders of arrival are exercised.
      const racers =
        round % 2 === 0
          ? [ledger.place(task, placement, record(workerId)), vms.delete(vm.id)]
          : [vms.delete(vm.id), ledger.place(task, placement, record(workerId))];
      await Promise.all(racers);
      const after = await store.getVm(vm.id);
      if (after?.deleted_at) won.delete++;
      else won.placement++;
    }
    console.log(`delete won ${won.delete} rounds, placement won ${won.placement}`);

    const live = await store.listVms({ worker_id: workerId, limit: 10_000 });
    const worker = await store.getWorker(workerId);
    // The worker holds exactly the VMs placed on it and not deleted: nothing more, nothing less.
    expect(worker?.vm_count).toBe(live.length);
    expect(worker?.used_cpu_cores).toBe(live.reduce((sum, vm) => sum + vm.vcpus, 0));
    expect(worker?.used_memory_mb).toBe(live.reduce((sum, vm) => sum + vm.memory_mb, 0));
    expect(live.length).toBe(won.placement);
    // Each VM the placement won has its delete queued for its worker; none was lost.
    for (const vm of live) {
      const deletes = await store.listTasks({ vm_id: vm.id, type: 'vm:delete' });
      expect(deletes.map((d) => [d.status, d.worker_id])).toEqual([['scheduled', workerId]]);
    }
    // Each VM the delete won has no reservation and its create was cancelled.
    const deleted = (await store.listVms({ include_deleted: true, limit: 10_000 })).filter(
      (vm) => vm.deleted_at && vm.name.startsWith('race-'),
    );
    expect(deleted.length).toBe(won.delete);
    for (const vm of deleted) {
      const [create] = await store.listTasks({ vm_id: vm.id, type: 'vm:create' });
      expect(create?.status).toBe('cancelled');
      expect(await store.releaseVm(vm.id)).toBe(false);
    }
  }, 120_000);
});
