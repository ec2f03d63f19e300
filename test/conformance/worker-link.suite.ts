/**
 * The WorkerLink conformance suite: every implementation of the WorkerLink port runs these same tests.
 *
 * `open` returns a link on FRESH engines, with the control plane's store (to set up workers' VMs and
 * tasks, and to inspect the rows afterwards) and its event bus (to publish what the control plane
 * publishes, such as a cancel). Each group of tests (one `describe`) opens its own and closes it after;
 * every test makes its own workers with random ids, so the tests of a group do not see each other's
 * workers, VMs, tasks, queues or cancels. The worker under test goes through the link only; the store
 * and the bus stand for the rest of the cluster.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  AetheriumError,
  newId,
  newTask,
  type ExecPayload,
  type ExecTaskResult,
  type Execution,
  type PlacementRecord,
  type Task,
  type Vm,
  type WorkerRegistration,
} from '../../src/domain/index.ts';
import type { EventBus } from '../../src/ports/event-bus.ts';
import type { Store } from '../../src/ports/store.ts';
import type { QueueConsumer, QueuedTask } from '../../src/ports/task-queue.ts';
import type { WorkerLink } from '../../src/ports/worker-link.ts';
import { Ledger } from '../../src/server/ledger/ledger.ts';
import { eventuallyPasses } from '../harness/eventually.ts';

export interface WorkerLinkEnv {
  link: WorkerLink;
  /** The control plane's store: for setting up VMs and tasks and inspecting rows, never for the worker. */
  store: Store;
  /** The control plane's event bus: what the cluster publishes (cancels) goes through it. */
  events: EventBus;
  close(): Promise<void>;
}

const TEST_TIMEOUT = 15_000;
/** Opening engines boots a database (PGlite) or migrates a new one (Postgres). */
const HOOK_TIMEOUT = 60_000;

const uid = () => randomUUID().slice(0, 8);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const eventually = (check: () => void | Promise<void>, timeoutMs = 3000) => eventuallyPasses(check, timeoutMs, 20);

function registration(id = `w-${uid()}`): WorkerRegistration {
  return {
    id,
    hostname: `host-${id}`,
    address: '127.0.0.1:9100',
    zone: 'zone-a',
    labels: {},
    capabilities: ['process'],
    cpu_cores: 16,
    memory_mb: 32_768,
    disk_gb: 500,
    max_vms: 20,
    ttl_seconds: 30,
    metadata: {},
  };
}

function vmRow(): Vm {
  const now = new Date();
  const base = { vcpus: 2, memory_mb: 512, disk_gb: 4, labels: {}, image: null, zone: null, driver: null, error: null };
  const row = { id: newId(), name: `vm-${uid()}`, status: 'created' as const, worker_id: null };
  return { ...base, ...row, created_at: now, updated_at: now, deleted_at: null, phases: {} };
}

function placementRecord(workerId: string): PlacementRecord {
  return {
    workers: 1,
    evaluated: 1,
    sampled: false,
    feasible: 1,
    rejected: {},
    strategy: 'binpack',
    chosen: { worker_id: workerId, driver: 'process', score: 1 },
    placed_at: new Date().toISOString(),
    moved_from: [],
    excluded: [],
  };
}

const execPayload = (command = 'echo'): ExecPayload => ({ command, args: ['hello'], env: {} });

const execResult = (): ExecTaskResult => ({
  execution_id: newId(),
  exit_code: 0,
  stdout: 'hello\n',
  stderr: '',
  timed_out: false,
  duration_ms: 3,
});

function execution(vmId: string, command = 'echo'): Execution {
  const startedAt = new Date(Date.now() - 5);
  return {
    id: newId(),
    vm_id: vmId,
    task_id: null,
    command,
    args: ['hello'],
    env: { LANG: 'C' },
    exit_code: 0,
    stdout: 'hello\n',
    stderr: '',
    timed_out: false,
    started_at: startedAt,
    completed_at: new Date(),
    duration_ms: 5,
  };
}

/** The error a promise rejects with, or a failure when it resolves. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
    },
    (err: unknown) => err,
  );
}

async function expectForbidden(promise: Promise<unknown>): Promise<void> {
  const err = await rejection(promise);
  expect(err).toBeInstanceOf(AetheriumError);
  expect(err).toMatchObject({ code: 'forbidden' });
}

export function workerLinkConformance(label: string, open: () => Promise<WorkerLinkEnv>): void {
  describe(`WorkerLink conformance: ${label}`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    let env: WorkerLinkEnv;
    let link: WorkerLink;
    let store: Store;

    /** Fresh engines for the group of tests it is called in (groups run one after another). */
    function freshEngines(): void {
      let opened: WorkerLinkEnv | undefined;
      beforeAll(async () => {
        opened = await open();
        env = opened;
        link = opened.link;
        store = opened.store;
      }, HOOK_TIMEOUT);
      afterAll(async () => {
        await opened?.close();
      }, HOOK_TIMEOUT);
    }

    /** What a test started (consumers, subscriptions) ends with it. */
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
    }, HOOK_TIMEOUT);

    // ── setup, through the store (the control plane's side) ───────────────────────────────────────

    /** A worker registered through the link, as the agent does it when it starts. */
    async function worker(): Promise<string> {
      const reg = registration();
      expect(await link.register(reg)).toEqual({ created: true });
      return reg.id;
    }

    async function vmCount(workerId: string): Promise<number | undefined> {
      return (await store.getWorker(workerId))?.vm_count;
    }

    /** A VM placed on the worker: its create is `scheduled` there and its capacity reserved. */
    async function placedVm(workerId: string): Promise<{ vm: Vm; create: Task }> {
      const vm = vmRow();
      const create = newTask('vm:create', { worker_labels: {}, strategy: null }, { vm_id: vm.id });
      await store.insertVmWithTask(vm, create);
      expect(await store.placeTask(create.id, vm.id, workerId, 'process', placementRecord(workerId))).toBe('placed');
      const [placed, scheduled] = [await store.getVm(vm.id), await store.getTask(create.id)];
      if (!placed || !scheduled) throw new Error('the placed VM or its create is missing');
      expect(scheduled.status).toBe('scheduled');
      return { vm: placed, create: scheduled };
    }

    /** A VM the worker created: running there, its create completed. */
    async function runningVm(workerId: string): Promise<Vm> {
      const { vm, create } = await placedVm(workerId);
      await store.updateTask(create.id, { status: 'completed', completed_at: new Date() });
      const running = await store.updateVm(vm.id, { status: 'running' });
      if (!running) throw new Error('the VM is missing');
      return running;
    }

    /** A command for a VM, written straight to its worker's queue row (`scheduled`), as the API dispatches it. */
    async function dispatched(vm: Vm, status: Task['status'] = 'scheduled'): Promise<Task> {
      const startedAt = status === 'running' ? new Date() : null;
      const task = newTask('vm:execute', execPayload(), {
        vm_id: vm.id,
        worker_id: vm.worker_id,
        status,
        started_at: startedAt,
      });
      await store.insertTask(task);
      return task;
    }

    async function dispatchedStart(vm: Vm): Promise<Task> {
      const task = newTask('vm:start', {}, { vm_id: vm.id, worker_id: vm.worker_id, status: 'scheduled' });
      await store.insertTask(task);
      return task;
    }

    async function row(taskId: string): Promise<Task> {
      const task = await store.getTask(taskId);
      if (!task) throw new Error(`task ${taskId} is missing`);
      return task;
    }

    async function vmRowOf(vmId: string): Promise<Vm> {
      const vm = await store.getVm(vmId);
      if (!vm) throw new Error(`VM ${vmId} is missing`);
      return vm;
    }

    /** Claims a task that must be claimable, as the agent does when the queue delivers it. */
    async function claimed(workerId: string, taskId: string): Promise<Task> {
      const claim = await link.claimTask(workerId, taskId, false);
      if (!claim) throw new Error(`task ${taskId} could not be claimed`);
      expect(claim.task.status).toBe('running');
      return claim.task;
    }

    // ── membership ────────────────────────────────────────────────────────────────────────────────

    describe('register and heartbeat', () => {
      freshEngines();

      it(
        'creates the worker once, active; re-registering is not a creation',
        async () => {
          const reg = registration();
          expect(await link.register(reg)).toEqual({ created: true });
          const row = await store.getWorker(reg.id);
          expect(row?.status).toBe('active');
          expect(row?.hostname).toBe(reg.hostname);
          expect(row?.capabilities).toEqual(['process']);
          expect(await link.register({ ...reg, cpu_cores: 4 })).toEqual({ created: false });
          expect((await store.getWorker(reg.id))?.cpu_cores).toBe(4);
        },
        TEST_TIMEOUT,
      );

      it(
        'a heartbeat answers active, null for an unknown worker, and was_offline once after the reaper',
        async () => {
          const id = await worker();
          expect(await link.heartbeat(id)).toEqual({ status: 'active', was_offline: false });
          expect(await link.heartbeat(`w-unknown-${uid()}`)).toBeNull();

          const reaped = await store.markStaleWorkersOffline(new Date(Date.now() + 24 * 3600_000));
          expect(reaped.map((w) => w.id)).toContain(id);
          expect((await store.getWorker(id))?.status).toBe('offline');

          expect(await link.heartbeat(id)).toEqual({ status: 'active', was_offline: true });
          expect((await store.getWorker(id))?.status).toBe('active');
          expect(await link.heartbeat(id)).toEqual({ status: 'active', was_offline: false });
        },
        TEST_TIMEOUT,
      );

      it(
        'a heartbeat moves last_seen, and reports a drain',
        async () => {
          const id = await worker();
          const before = (await store.getWorker(id))?.last_seen;
          await sleep(20);
          await link.heartbeat(id);
          const after = (await store.getWorker(id))?.last_seen;
          expect(after).toBeInstanceOf(Date);
          expect(after!.getTime()).toBeGreaterThan(before!.getTime());

          await store.startDrain(id, { deadline: null, message: null }, new Date());
          expect(await link.heartbeat(id)).toEqual({ status: 'draining', was_offline: false });
        },
        TEST_TIMEOUT,
      );

      it(
        'deregister takes the worker offline',
        async () => {
          const id = await worker();
          await link.deregister(id);
          expect((await store.getWorker(id))?.status).toBe('offline');
        },
        TEST_TIMEOUT,
      );

      it(
        'reports resources and metrics into the worker row and its history',
        async () => {
          const id = await worker();
          await link.reportResources(id, { cpu_cores: 6, memory_mb: 6144, disk_gb: 60, max_vms: 6 });
          expect(await store.getWorker(id)).toMatchObject({ cpu_cores: 6, memory_mb: 6144, disk_gb: 60, max_vms: 6 });

          const sample = {
            worker_id: id,
            timestamp: new Date(),
            cpu_usage: 0.25,
            memory_usage: 0.5,
            disk_usage: 0.125,
            vm_count: 0,
            tasks_processed: 7,
            network_in_mb: 1,
            network_out_mb: 2,
          };
          await link.recordMetrics(sample);
          const history = await store.listWorkerMetrics(id);
          expect(history).toHaveLength(1);
          expect(history[0]).toMatchObject({ worker_id: id, cpu_usage: 0.25, tasks_processed: 7, network_out_mb: 2 });
        },
        TEST_TIMEOUT,
      );
    });

    describe('assignments', () => {
      freshEngines();

      it(
        "lists the live VMs placed on the worker, its running and its scheduled tasks, and no one else's",
        async () => {
          const [a, b] = [await worker(), await worker()];
          const { vm: placed, create } = await placedVm(a);
          const running = await runningVm(a);
          const command = await dispatched(running);
          const start = await dispatchedStart(running);
          await claimed(a, start.id);
          const deleted = await runningVm(a);
          await store.updateVm(deleted.id, { deleted_at: new Date() });
          const elsewhere = await runningVm(b);
          await dispatched(elsewhere);

          const mine = await link.assignments(a);
          expect(mine.vms.map((vm) => vm.id).sort()).toEqual([placed.id, running.id].sort());
          expect(mine.running.map((t) => t.id)).toEqual([start.id]);
          expect(mine.scheduled.map((t) => t.id).sort()).toEqual([create.id, command.id].sort());
        },
        TEST_TIMEOUT,
      );
    });

    // ── tasks ─────────────────────────────────────────────────────────────────────────────────────

    describe('claimTask', () => {
      freshEngines();

      it(
        'gives a scheduled task of this worker, now running, with its VM',
        async () => {
          const id = await worker();
          const { vm, create } = await placedVm(id);
          const claim = await link.claimTask(id, create.id, false);
          expect(claim?.task).toMatchObject({ id: create.id, type: 'vm:create', status: 'running', worker_id: id });
          expect(claim?.task.started_at).toBeInstanceOf(Date);
          expect(claim?.vm).toMatchObject({ id: vm.id, name: vm.name, worker_id: id });
          expect((await row(create.id)).status).toBe('running');
        },
        TEST_TIMEOUT,
      );

      it(
        'a second claim of the same task (a duplicate delivery) gets nothing',
        async () => {
          const id = await worker();
          const command = await dispatched(await runningVm(id));
          expect((await link.claimTask(id, command.id, false))?.task.status).toBe('running');
          expect(await link.claimTask(id, command.id, false)).toBeNull();
          expect((await row(command.id)).status).toBe('running');
        },
        TEST_TIMEOUT,
      );

      it(
        "refuses another worker's task (forbidden), gives nothing for an unknown one or one that is over",
        async () => {
          const [a, b] = [await worker(), await worker()];
          const theirs = await dispatched(await runningVm(b));
          await expectForbidden(link.claimTask(a, theirs.id, false));
          await expectForbidden(link.claimTask(a, theirs.id, true));
          expect((await row(theirs.id)).status).toBe('scheduled');
          expect(await link.claimTask(a, newId(), false)).toBeNull();

          const vm = await runningVm(a);
          for (const status of ['completed', 'failed', 'cancelled'] as const) {
            const over = await dispatched(vm, status);
            expect(await link.claimTask(a, over.id, false)).toBeNull();
            expect(await link.claimTask(a, over.id, true)).toBeNull();
            expect((await row(over.id)).status).toBe(status);
          }
        },
        TEST_TIMEOUT,
      );

      it(
        'with resume, a command that was running is failed, never run again',
        async () => {
          const id = await worker();
          const command = await dispatched(await runningVm(id), 'running');
          expect(await link.claimTask(id, command.id, true)).toBeNull();
          const after = await row(command.id);
          expect(after.status).toBe('failed');
          expect(after.error).toMatch(/restart/i);
          expect(after.completed_at).toBeInstanceOf(Date);
        },
        TEST_TIMEOUT,
      );

      it(
        'with resume, a running create is given back to the worker that holds it',
        async () => {
          const id = await worker();
          const { create } = await placedVm(id);
          const started = await claimed(id, create.id);
          const claim = await link.claimTask(id, create.id, true);
          expect(claim?.task).toMatchObject({ id: create.id, status: 'running' });
          expect(claim?.task.started_at?.getTime()).toBe(started.started_at?.getTime());
        },
        TEST_TIMEOUT,
      );

      it(
        'a create claimed while the worker drains goes back to the scheduler',
        async () => {
          const id = await worker();
          const { vm, create } = await placedVm(id);
          expect(await vmCount(id)).toBe(1);
          await store.startDrain(id, { deadline: null, message: 'maintenance' }, new Date());

          expect(await link.claimTask(id, create.id, false)).toBeNull();
          const after = await row(create.id);
          expect(after.status).toBe('pending');
          expect(after.worker_id).toBeNull();
          expect(after.placement?.moved_from).toContain(id);
          expect(after.placement?.excluded).not.toContain(id);
          expect((await vmRowOf(vm.id)).worker_id).toBeNull();
          expect(await vmCount(id)).toBe(0);
        },
        TEST_TIMEOUT,
      );

      it(
        'a create sent again after a retryable failure, claimed while the worker drains, goes back too',
        async () => {
          const id = await worker();
          const { vm, create } = await placedVm(id);
          await claimed(id, create.id);
          const outcome = { kind: 'failed', error: 'VMM timed out', retryable: true } as const;
          expect(await link.reportOutcome(id, create.id, outcome)).toBe('retrying');
          expect((await row(create.id)).status).toBe('scheduled');
          await store.startDrain(id, { deadline: null, message: 'maintenance' }, new Date());

          // The retry's delivery finds the worker draining: the VM must go elsewhere, not stay here.
          expect(await link.claimTask(id, create.id, false)).toBeNull();
          const after = await row(create.id);
          expect(after.status).toBe('pending');
          expect(after.placement?.moved_from).toContain(id);
          expect((await vmRowOf(vm.id)).worker_id).toBeNull();
          expect(await vmCount(id)).toBe(0);
        },
        TEST_TIMEOUT,
      );

      it(
        'a command for a VM on a draining worker still runs there',
        async () => {
          const id = await worker();
          const command = await dispatched(await runningVm(id));
          await store.startDrain(id, { deadline: null, message: null }, new Date());
          expect((await link.claimTask(id, command.id, false))?.task.status).toBe('running');
        },
        TEST_TIMEOUT,
      );
    });

    describe('reportOutcome', () => {
      freshEngines();

      it(
        'completed: the task is over with its result',
        async () => {
          const id = await worker();
          const command = await dispatched(await runningVm(id));
          await claimed(id, command.id);
          const result = execResult();
          expect(await link.reportOutcome(id, command.id, { kind: 'completed', result })).toBe('final');
          const after = await row(command.id);
          expect(after.status).toBe('completed');
          expect(after.result).toEqual(result);
          expect(after.error).toBeNull();
          expect(after.completed_at).toBeInstanceOf(Date);
        },
        TEST_TIMEOUT,
      );

      it(
        'a task delivered to the worker that moved away before the claim gives nothing, not forbidden',
        async () => {
          const id = await worker();
          const { create: start } = await placedVm(id);
          const claims: unknown[] = [];
          const consumer: QueueConsumer = link.consume(
            id,
            async (t) => {
              if (t.id !== start.id) return;
              try {
                // The scheduler takes it back (the worker was slow, or went offline) before the claim.
                await new Ledger(store, env.events).unplace(await row(start.id), 'moved for the test');
                claims.push(await link.claimTask(id, start.id, false));
              } catch (err) {
                claims.push(err);
              }
            },
            { concurrency: 1 },
          );
          cleanups.push(() => consumer.close());
          await link.register(registration(id)); // sends its scheduled tasks again
          await eventually(() => expect(claims).toHaveLength(1), 5000);
          expect(claims[0]).toBeNull();
          expect((await row(start.id)).status).toBe('pending');
        },
        TEST_TIMEOUT,
      );

      it(
        'failed and retryable with budget left: scheduled again, counted, and delivered again',
        async () => {
          const id = await worker();
          const start = await dispatchedStart(await runningVm(id));
          const received: QueuedTask[] = [];
          const consumer: QueueConsumer = link.consume(id, async (t) => void received.push(t), { concurrency: 1 });
          cleanups.push(() => consumer.close());
          await claimed(id, start.id);

          const sentAt = Date.now();
          expect(
            await link.reportOutcome(id, start.id, { kind: 'failed', error: 'VMM timed out', retryable: true }),
          ).toBe('retrying');
          const after = await row(start.id);
          expect(after.status).toBe('scheduled');
          expect(after.retry_count).toBe(1);
          expect(after.error).toBe('VMM timed out');
          expect(after.worker_id).toBe(id);

          // Sent again after a backoff (about half a second for the first retry).
          await eventually(() => expect(received.map((t) => t.id)).toContain(start.id), 5000);
          expect(Date.now() - sentAt).toBeGreaterThanOrEqual(300);
          expect(received.filter((t) => t.id === start.id)).toHaveLength(1);
          expect(received.find((t) => t.id === start.id)?.attempt).toBe(1);
          // The worker claims the new attempt as any other delivery.
          const again = await claimed(id, start.id);
          expect(again.retry_count).toBe(1);
        },
        TEST_TIMEOUT,
      );

      it(
        'failed and not retryable: the task fails',
        async () => {
          const id = await worker();
          const start = await dispatchedStart(await runningVm(id));
          await claimed(id, start.id);
          const outcome = { kind: 'failed', error: 'no such image', retryable: false } as const;
          expect(await link.reportOutcome(id, start.id, outcome)).toBe('final');
          const after = await row(start.id);
          expect(after.status).toBe('failed');
          expect(after.error).toBe('no such image');
          expect(after.retry_count).toBe(0);
        },
        TEST_TIMEOUT,
      );

      it(
        'failed and retryable but out of budget: the task fails',
        async () => {
          const id = await worker();
          const command = await dispatched(await runningVm(id)); // commands are never retried
          await claimed(id, command.id);
          const outcome = { kind: 'failed', error: 'guest agent lost', retryable: true } as const;
          expect(await link.reportOutcome(id, command.id, outcome)).toBe('final');
          const after = await row(command.id);
          expect(after.status).toBe('failed');
          expect(after.retry_count).toBe(0);
        },
        TEST_TIMEOUT,
      );

      it(
        'a create that fails for good fails its VM and returns its capacity',
        async () => {
          const id = await worker();
          const { vm, create } = await placedVm(id);
          expect(await vmCount(id)).toBe(1);
          await claimed(id, create.id);
          const outcome = { kind: 'failed', error: 'driver unavailable', retryable: false } as const;
          expect(await link.reportOutcome(id, create.id, outcome)).toBe('final');
          expect((await row(create.id)).status).toBe('failed');
          const failed = await vmRowOf(vm.id);
          expect(failed.status).toBe('failed');
          expect(failed.error).toBe('driver unavailable');
          expect(await vmCount(id)).toBe(0);
          expect((await store.getWorker(id))?.used_cpu_cores).toBe(0);
        },
        TEST_TIMEOUT,
      );

      it(
        'refused on a create: back to the scheduler, never to this worker again, capacity returned',
        async () => {
          const id = await worker();
          const { vm, create } = await placedVm(id);
          await claimed(id, create.id);
          expect(await link.reportOutcome(id, create.id, { kind: 'refused', reason: 'no /dev/kvm' })).toBe('final');
          const after = await row(create.id);
          expect(after.status).toBe('pending');
          expect(after.worker_id).toBeNull();
          expect(after.placement?.excluded).toContain(id);
          expect(after.placement?.moved_from).toContain(id);
          expect((await vmRowOf(vm.id)).worker_id).toBeNull();
          expect(await vmCount(id)).toBe(0);
        },
        TEST_TIMEOUT,
      );

      it(
        'cancelled on a create: the task is cancelled and the VM that never was is gone, capacity returned',
        async () => {
          const id = await worker();
          const { vm, create } = await placedVm(id);
          await claimed(id, create.id);
          expect(await link.reportOutcome(id, create.id, { kind: 'cancelled', reason: 'cancelled by request' })).toBe(
            'final',
          );
          expect((await row(create.id)).status).toBe('cancelled');
          expect((await vmRowOf(vm.id)).deleted_at).toBeInstanceOf(Date);
          expect(await vmCount(id)).toBe(0);
        },
        TEST_TIMEOUT,
      );

      it(
        'interrupted: the task goes back as it was, for this worker to claim again',
        async () => {
          const id = await worker();
          const start = await dispatchedStart(await runningVm(id));
          await claimed(id, start.id);
          expect(await link.reportOutcome(id, start.id, { kind: 'interrupted' })).toBe('retrying');
          const after = await row(start.id);
          expect(after.status).toBe('scheduled');
          expect(after.started_at).toBeNull();
          expect(after.worker_id).toBe(id);
          expect(after.retry_count).toBe(0);
          await claimed(id, start.id);
        },
        TEST_TIMEOUT,
      );

      it(
        'an outcome from another worker is forbidden; for an unknown task or an ended one it is stale; neither changes anything',
        async () => {
          const [a, b] = [await worker(), await worker()];
          const command = await dispatched(await runningVm(a));
          await claimed(a, command.id);
          await expectForbidden(link.reportOutcome(b, command.id, { kind: 'completed', result: execResult() }));
          await expectForbidden(link.reportOutcome(b, command.id, { kind: 'failed', error: 'x', retryable: false }));
          await expectForbidden(link.reportOutcome(b, command.id, { kind: 'interrupted' }));
          const still = await row(command.id);
          expect(still.status).toBe('running');
          expect(still.result).toBeNull();
          expect(still.error).toBeNull();
          expect(await link.reportOutcome(a, newId(), { kind: 'interrupted' })).toBe('stale');

          const result = execResult();
          expect(await link.reportOutcome(a, command.id, { kind: 'completed', result })).toBe('final');
          expect(await link.reportOutcome(a, command.id, { kind: 'failed', error: 'late', retryable: true })).toBe(
            'stale',
          );
          const over = await row(command.id);
          expect(over.status).toBe('completed');
          expect(over.result).toEqual(result);
        },
        TEST_TIMEOUT,
      );
    });

    // ── VMs ───────────────────────────────────────────────────────────────────────────────────────

    describe('reportVm', () => {
      freshEngines();

      it(
        'status: a change, a compare-and-set that does not match, and an unknown VM',
        async () => {
          const id = await worker();
          const { vm } = await placedVm(id);
          const starting = await link.reportVm(id, vm.id, { kind: 'status', to: 'starting' });
          expect(starting).toMatchObject({ id: vm.id, status: 'starting' });
          expect((await vmRowOf(vm.id)).status).toBe('starting');

          expect(await link.reportVm(id, vm.id, { kind: 'status', to: 'stopping', from: ['running'] })).toBeNull();
          expect((await vmRowOf(vm.id)).status).toBe('starting');

          const failed = await link.reportVm(id, vm.id, { kind: 'status', to: 'failed', error: 'kernel panic' });
          expect(failed).toMatchObject({ status: 'failed', error: 'kernel panic' });
          expect(await link.reportVm(id, newId(), { kind: 'status', to: 'running' })).toBeNull();
        },
        TEST_TIMEOUT,
      );

      it(
        'booted: the VM is running',
        async () => {
          const id = await worker();
          const { vm } = await placedVm(id);
          await link.reportVm(id, vm.id, { kind: 'status', to: 'starting' });
          const running = await link.reportVm(id, vm.id, { kind: 'booted' });
          expect(running).toMatchObject({ id: vm.id, status: 'running', error: null });
          expect((await vmRowOf(vm.id)).status).toBe('running');
          expect(await vmCount(id)).toBe(1);
        },
        TEST_TIMEOUT,
      );

      it(
        'deleted: the row is closed and its capacity returned exactly once',
        async () => {
          const id = await worker();
          const gone = await runningVm(id);
          const kept = await runningVm(id);
          expect(await vmCount(id)).toBe(2);

          const deleted = await link.reportVm(id, gone.id, { kind: 'deleted', reason: 'deleted by request' });
          expect(deleted?.id).toBe(gone.id);
          expect(deleted?.deleted_at).toBeInstanceOf(Date);
          expect((await vmRowOf(gone.id)).deleted_at).toBeInstanceOf(Date);
          expect(await vmCount(id)).toBe(1);
          expect((await store.getWorker(id))?.used_cpu_cores).toBe(kept.vcpus);

          await link.reportVm(id, gone.id, { kind: 'deleted', reason: 'deleted by request' });
          expect(await vmCount(id)).toBe(1);
          expect((await store.getWorker(id))?.used_memory_mb).toBe(kept.memory_mb);
          // A VM deleted while it booted is not brought back by a late boot report: tear it down.
          expect(await link.reportVm(id, gone.id, { kind: 'booted' })).toBeNull();
          expect((await vmRowOf(gone.id)).deleted_at).toBeInstanceOf(Date);
        },
        TEST_TIMEOUT,
      );

      it(
        'lost: the VM is lost and its capacity is returned once',
        async () => {
          const id = await worker();
          const lost = await runningVm(id);
          await runningVm(id);
          expect(await vmCount(id)).toBe(2);
          const failed = await link.reportVm(id, lost.id, { kind: 'lost', error: 'gone after a host restart' });
          expect(failed).toMatchObject({ id: lost.id, status: 'lost', error: 'gone after a host restart' });
          expect(await vmCount(id)).toBe(1);
          await link.reportVm(id, lost.id, { kind: 'lost', error: 'gone after a host restart' });
          expect(await vmCount(id)).toBe(1);
        },
        TEST_TIMEOUT,
      );

      it(
        'died: the VM is failed with the reason, keeps its capacity until deleted, and is announced once',
        async () => {
          const id = await worker();
          const dead = await runningVm(id);
          expect(await vmCount(id)).toBe(1);
          const reason = "the VM's init exited with signal SIGKILL";
          const failed = await link.reportVm(id, dead.id, { kind: 'died', reason });
          expect(failed).toMatchObject({ id: dead.id, status: 'failed', error: reason });
          // Kept: its files are still on the host until the delete frees them.
          expect(await vmCount(id)).toBe(1);
          // A second report of the same death changes nothing (the compare-and-set matched nothing).
          expect(await link.reportVm(id, dead.id, { kind: 'died', reason })).toBeNull();
          expect(await link.reportVm(id, dead.id, { kind: 'deleted', reason: 'deleted by its owner' })).toMatchObject({
            status: 'stopped',
          });
          expect(await vmCount(id)).toBe(0);
        },
        TEST_TIMEOUT,
      );

      it(
        "a report about another worker's VM is forbidden, and changes nothing",
        async () => {
          const [a, b] = [await worker(), await worker()];
          const theirs = await runningVm(b);
          await expectForbidden(link.reportVm(a, theirs.id, { kind: 'status', to: 'stopped' }));
          await expectForbidden(link.reportVm(a, theirs.id, { kind: 'booted' }));
          await expectForbidden(link.reportVm(a, theirs.id, { kind: 'deleted', reason: 'mine now' }));
          await expectForbidden(link.reportVm(a, theirs.id, { kind: 'lost', error: 'mine now' }));
          await expectForbidden(link.reportVm(a, theirs.id, { kind: 'died', reason: 'mine now' }));
          const after = await vmRowOf(theirs.id);
          expect(after.status).toBe('running');
          expect(after.deleted_at).toBeNull();
          expect(await vmCount(b)).toBe(1);
        },
        TEST_TIMEOUT,
      );
    });

    describe('recordExecution', () => {
      freshEngines();

      it(
        "lands in the VM's executions",
        async () => {
          const id = await worker();
          const vm = await runningVm(id);
          const run = execution(vm.id, 'uname');
          await link.recordExecution(id, run);
          const listed = await store.listExecutions(vm.id);
          expect(listed).toHaveLength(1);
          expect(listed[0]).toMatchObject({
            id: run.id,
            vm_id: vm.id,
            command: 'uname',
            args: ['hello'],
            exit_code: 0,
          });
          expect(listed[0]?.stdout).toBe('hello\n');
        },
        TEST_TIMEOUT,
      );

      it(
        "is forbidden for another worker's VM, and records nothing",
        async () => {
          const [a, b] = [await worker(), await worker()];
          const theirs = await runningVm(b);
          await expectForbidden(link.recordExecution(a, execution(theirs.id)));
          expect(await store.listExecutions(theirs.id)).toEqual([]);
        },
        TEST_TIMEOUT,
      );
    });

    // ── drain ─────────────────────────────────────────────────────────────────────────────────────

    describe('requestDrain', () => {
      freshEngines();

      it(
        'drains with a deadline; drained once the last VM is gone',
        async () => {
          const id = await worker();
          const vm = await runningVm(id);
          const asked = Date.now();
          const progress = await link.requestDrain(id, { deadline_seconds: 600, message: 'kernel upgrade' });
          expect(progress.status).toBe('draining');
          expect(progress.vm_count).toBe(1);
          expect(progress.drain?.message).toBe('kernel upgrade');
          expect(progress.drain?.drained_at).toBeNull();
          const deadline = progress.drain?.deadline;
          expect(deadline).toBeInstanceOf(Date);
          expect(deadline!.getTime()).toBeGreaterThanOrEqual(asked + 599_000);
          expect(deadline!.getTime()).toBeLessThanOrEqual(Date.now() + 601_000);
          expect((await store.getWorker(id))?.eligible).toBe(false);

          const seen = await link.drainProgress(id);
          expect(seen).toMatchObject({ status: 'draining', vm_count: 1 });
          expect(seen?.drain?.deadline?.getTime()).toBe(deadline!.getTime());
          expect(seen?.drain?.drained_at).toBeNull();
          // The VM is still there: the control plane cannot call the drain complete.
          expect(await store.markDrained(id, new Date())).toBe(false);

          await link.reportVm(id, vm.id, { kind: 'deleted', reason: 'drained' });
          expect(await store.markDrained(id, new Date())).toBe(true);
          const done = await link.drainProgress(id);
          expect(done).toMatchObject({ status: 'draining', vm_count: 0 });
          expect(done?.drain?.drained_at).toBeInstanceOf(Date);
        },
        TEST_TIMEOUT,
      );

      it(
        'forced with no VMs: drained at once',
        async () => {
          const id = await worker();
          const asked = Date.now();
          const progress = await link.requestDrain(id, { force: true });
          expect(progress.status).toBe('draining');
          expect(progress.vm_count).toBe(0);
          expect(progress.drain?.deadline?.getTime()).toBeLessThanOrEqual(Date.now());
          expect(progress.drain?.deadline?.getTime()).toBeGreaterThanOrEqual(asked - 1000);
          expect(progress.drain?.drained_at).toBeInstanceOf(Date);
          expect((await link.drainProgress(id))?.drain?.drained_at).toBeInstanceOf(Date);
        },
        TEST_TIMEOUT,
      );

      it(
        'moves the creates still queued for the worker back to the scheduler',
        async () => {
          const id = await worker();
          const { create } = await placedVm(id);
          const progress = await link.requestDrain(id, { no_deadline: true });
          expect(progress.drain?.deadline).toBeNull();
          expect(progress.vm_count).toBe(0);
          const after = await row(create.id);
          expect(after.status).toBe('pending');
          expect(after.placement?.moved_from).toContain(id);
        },
        TEST_TIMEOUT,
      );

      it(
        'moves a create waiting for its retry back to the scheduler too',
        async () => {
          const id = await worker();
          const { create } = await placedVm(id);
          await claimed(id, create.id);
          const outcome = { kind: 'failed', error: 'VMM timed out', retryable: true } as const;
          expect(await link.reportOutcome(id, create.id, outcome)).toBe('retrying');
          const progress = await link.requestDrain(id, { no_deadline: true });
          expect(progress.vm_count).toBe(0);
          const after = await row(create.id);
          expect(after.status).toBe('pending');
          expect(after.placement?.moved_from).toContain(id);
        },
        TEST_TIMEOUT,
      );

      it(
        'an unknown worker has no drain progress, and cannot be drained',
        async () => {
          expect(await link.drainProgress(`w-unknown-${uid()}`)).toBeNull();
          const err = await rejection(link.requestDrain(`w-unknown-${uid()}`, { force: true }));
          expect(err).toBeInstanceOf(AetheriumError);
          expect(err).toMatchObject({ code: 'not_found' });
        },
        TEST_TIMEOUT,
      );
    });

    // ── cancel ────────────────────────────────────────────────────────────────────────────────────

    describe('onCancel', () => {
      freshEngines();

      it(
        "hears the cancels of this worker's tasks only, until unsubscribed",
        async () => {
          const [a, b] = [await worker(), await worker()];
          const ledger = new Ledger(store, env.events);
          const mine = await dispatched(await runningVm(a), 'running');
          const later = await dispatched(await runningVm(a), 'running');
          const theirs = await dispatched(await runningVm(b), 'running');

          const heard: [string, string][] = [];
          const unsubscribe = link.onCancel(a, (taskId, reason) => void heard.push([taskId, reason]));
          // Everything published, in order, as a sentinel: once it saw an event, A's listener had its chance too.
          const published: string[] = [];
          const stop = env.events.subscribe((event) => {
            if (event.type === 'task.cancel_requested') published.push(event.data.task_id);
          });
          cleanups.push(async () => {
            unsubscribe();
            stop();
          });

          expect(await ledger.requestCancel(theirs, 'cancelled by request')).not.toBeNull();
          expect(await ledger.requestCancel(mine, 'drain deadline reached')).not.toBeNull();
          await eventually(() => expect(heard).toEqual([[mine.id, 'drain deadline reached']]));
          await eventually(() => expect(published).toEqual([theirs.id, mine.id]));
          await sleep(100);
          expect(heard).toEqual([[mine.id, 'drain deadline reached']]);

          unsubscribe();
          expect(await ledger.requestCancel(later, 'cancelled by request')).not.toBeNull();
          await eventually(() => expect(published).toContain(later.id));
          await sleep(100);
          expect(heard).toEqual([[mine.id, 'drain deadline reached']]);
        },
        TEST_TIMEOUT,
      );
    });
  });
}
