/**
 * The fault suite's checks judge what they are given: each passes on a consistent record and
 * fails, naming the culprit, on one broken the way a fault could break it. (The suite itself runs
 * them on a real cluster: test/faults.cluster.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import type { Connection } from './events-client.ts';
import {
  capacityMatches,
  eventsOnceInOrder,
  noTaskLost,
  noTaskStuck,
  noVmOnTwoHosts,
  noVmStartedTwice,
  type VmRow,
  type WorkerUsage,
} from './invariants.ts';
import type { LoadVm } from './load.ts';
import { measure, recoveredAfter, type TaskRow } from './measures.ts';
import type { Launch } from './vm-launches.ts';

const T0 = 1_000_000;
const vm = (id: string, patch: Partial<VmRow> = {}): VmRow => ({
  id,
  name: `fl-${id}`,
  status: 'running',
  worker_id: 'w1',
  reserved: true,
  deleted_at: null,
  vcpus: 1,
  memory_mb: 64,
  disk_gb: 1,
  ...patch,
});
const task = (id: string, vmId: string, type: string, patch: Partial<TaskRow> = {}): TaskRow => ({
  id,
  type,
  status: 'completed',
  vm_id: vmId,
  worker_id: 'w1',
  retry_count: 0,
  error: null,
  moved_from: [],
  created_at: T0,
  completed_at: T0 + 500,
  updated_at: T0 + 500,
  ...patch,
});
const loadVm = (id: string, tasks: LoadVm['tasks']): LoadVm => ({
  name: `fl-${id}`,
  startedAt: T0,
  id,
  tasks,
  bootStatus: 'running',
  bootMs: 300,
  execOk: true,
  deleteAccepted: true,
});
const launch = (vmId: string, host: string, patch: Partial<Launch> = {}): Launch => ({
  at: T0,
  pid: 100,
  host,
  vmId,
  alongside: [],
  ...patch,
});

describe('no task lost', () => {
  const load = [loadVm('a', { create: ['c1'], exec: ['x1'], delete: ['d1'] })];
  const tasks = [task('c1', 'a', 'vm:create'), task('x1', 'a', 'vm:execute'), task('d1', 'a', 'vm:delete')];
  it('passes when every answered task and VM is stored', () => {
    expect(noTaskLost(load, tasks, [vm('a', { deleted_at: T0 + 600, reserved: false })]).ok).toBe(true);
  });
  it('fails on a task the API answered that the database does not have', () => {
    const result = noTaskLost(load, tasks.slice(0, 2), [vm('a', { deleted_at: T0 + 600 })]);
    expect(result).toMatchObject({ ok: false, detail: expect.stringContaining('d1') });
  });
  it('fails on a completed delete whose VM is still there', () => {
    expect(noTaskLost(load, tasks, [vm('a')]).detail).toContain('delete completed, VM still there: fl-a');
  });
});

describe('no task stuck', () => {
  it('passes when every task became final within the bound', () => {
    expect(noTaskStuck([task('c1', 'a', 'vm:create')], T0 + 100, 10_000, T0 + 20_000).ok).toBe(true);
  });
  it('fails on a task still running, and on one final only after the bound', () => {
    const open = noTaskStuck([task('c1', 'a', 'vm:create', { status: 'running' })], T0, 10_000, T0 + 20_000);
    expect(open).toMatchObject({ ok: false, detail: expect.stringContaining('not final') });
    const late = noTaskStuck([task('c1', 'a', 'vm:create', { completed_at: T0 + 60_000 })], T0 + 100, 10_000, T0);
    expect(late).toMatchObject({ ok: false, detail: expect.stringContaining('after the bound') });
  });
});

describe('VMs on the hosts', () => {
  it('a relaunch after a dead first init passes; a launch beside a live init fails', () => {
    expect(noVmStartedTwice([launch('a', 'w1'), launch('a', 'w1', { at: T0 + 5000 })], [], [vm('a')]).ok).toBe(true);
    const twice = noVmStartedTwice([launch('a', 'w1'), launch('a', 'w1', { alongside: [100, 101] })], [], [vm('a')]);
    expect(twice).toMatchObject({ ok: false, detail: expect.stringContaining('alongside pids 100,101') });
  });
  it('two live inits seen at once fail, and so do two VMs for one create', () => {
    const overlap = {
      at: T0,
      vmId: 'a',
      inits: [
        { vmId: 'a', host: 'w1', pid: 1 },
        { vmId: 'a', host: 'w2', pid: 2 },
      ],
    };
    expect(noVmStartedTwice([], [overlap], [vm('a')]).ok).toBe(false);
    expect(noVmStartedTwice([], [], [vm('a'), vm('b', { name: 'fl-a' })]).detail).toContain('fl-a ×2');
  });
  it('a VM launched on two hosts, off its placement, or left running unknown to the database fails', () => {
    const one = [vm('a', { worker_id: 'w1' })];
    expect(noVmOnTwoHosts([launch('a', 'w1')], new Map(), [{ vmId: 'a', host: 'w1', pid: 1 }], one).ok).toBe(true);
    expect(noVmOnTwoHosts([launch('a', 'w1'), launch('a', 'w2')], new Map(), [], one).detail).toContain(
      'launched on two hosts',
    );
    expect(noVmOnTwoHosts([launch('a', 'w2')], new Map(), [], one).detail).toContain('launched off its placement');
    const deleted = [vm('a', { deleted_at: T0 })];
    expect(noVmOnTwoHosts([], new Map(), [{ vmId: 'a', host: 'w1', pid: 1 }], deleted).detail).toContain('orphan');
    expect(noVmOnTwoHosts([], new Map(), [], one).detail).toContain('missing inits');
  });
});

describe('capacity', () => {
  const usage = (vm_count: number, cpu = vm_count): WorkerUsage => ({
    id: 'w1',
    used_cpu_cores: cpu,
    used_memory_mb: 64 * vm_count,
    used_disk_gb: vm_count,
    vm_count,
  });
  it('passes when the counters are the reservations, in the database and the API', () => {
    expect(capacityMatches([{ label: 'now', sql: [usage(1)], api: [usage(1)], vms: [vm('a')] }]).ok).toBe(true);
  });
  it('fails on a counter off the reservations, and on a deleted VM that still holds one', () => {
    const off = capacityMatches([{ label: 'now', sql: [usage(1, 2)], api: null, vms: [vm('a')] }]);
    expect(off).toMatchObject({ ok: false, detail: expect.stringContaining('used_cpu_cores 2 in the database, 1') });
    const deleted = [vm('a', { deleted_at: T0 })];
    const leak = capacityMatches([{ label: 'now', sql: [usage(1)], api: [usage(1)], vms: deleted }]);
    expect(leak).toMatchObject({ ok: false, detail: expect.stringContaining('deleted VMs still reserved: fl-a') });
    // Under load a delete and its release are two writes apart: seen between them, it passes.
    const passing = capacityMatches([{ label: 'now', sql: [usage(1)], api: null, vms: deleted }]);
    expect(passing).toMatchObject({ ok: true, detail: expect.stringContaining('not yet released under load') });
    const api = capacityMatches([{ label: 'now', sql: [usage(1)], api: [usage(0)], vms: [vm('a')] }]);
    expect(api.detail).toContain('in GET /workers');
  });
});

describe('events', () => {
  const conn = (patch: Partial<Connection> = {}): Connection => ({
    replica: 0,
    since: null,
    openedAt: T0,
    closedAt: null,
    closeCode: null,
    firstEventId: null,
    gap: null,
    ...patch,
  });
  const resumed = [conn({ closedAt: T0 + 1 }), conn({ replica: 1, since: 12 })];
  it('passes on every id once, in order, across a resume', () => {
    expect(eventsOnceInOrder([11, 12, 13, 14], resumed, 10, [11, 12, 13, 14]).ok).toBe(true);
  });
  it('fails on a repeat, on disorder, and on an id of the stream never received', () => {
    expect(eventsOnceInOrder([11, 12, 12, 13], resumed, 10, [11, 12, 13]).detail).toContain('received twice: 12');
    expect(eventsOnceInOrder([11, 13, 12], resumed, 10, [11, 12, 13]).detail).toContain('12 after 13');
    expect(eventsOnceInOrder([11, 13], resumed, 10, [11, 12, 13]).detail).toContain('never received: 12');
  });
  it('excuses what a gap announced, and fails a client that never had to resume', () => {
    const gap = [conn({ closedAt: T0 + 1 }), conn({ since: 11, gap: { since: 11, oldest: 14 }, firstEventId: 14 })];
    expect(eventsOnceInOrder([11, 14], gap, 10, [11, 12, 13, 14]).ok).toBe(true);
    expect(eventsOnceInOrder([11], [conn()], 10, [11]).ok).toBe(false);
  });
});

describe('measures', () => {
  const attempt = (startedAt: number, ok: boolean) => ({
    kind: 'create' as const,
    replica: 0,
    startedAt,
    endedAt: startedAt + 10,
    ok,
    status: ok ? 202 : 503,
  });
  it('recovery is the first success after the last failure of the window', () => {
    expect(recoveredAfter([attempt(T0 + 10, true)], T0, T0 + 1000)).toBe(0);
    const attempts = [attempt(T0 + 100, false), attempt(T0 + 300, false), attempt(T0 + 400, true)];
    expect(recoveredAfter(attempts, T0, T0 + 1000)).toBe(410);
    expect(recoveredAfter([attempt(T0 + 100, false)], T0, T0 + 1000)).toBeNull();
  });
  it('a task is affected when it was alive in the window and did not simply complete', () => {
    const times = {
      fault: 'f',
      target: 't',
      injectedAt: T0,
      noticedAt: T0 + 50,
      healStartedAt: T0 + 100,
      backAt: T0 + 200,
      windowEnd: T0 + 1000,
    };
    const tasks = [
      task('a', 'a', 'vm:create'),
      task('b', 'b', 'vm:create', { moved_from: ['w1'] }),
      task('c', 'c', 'vm:create', { status: 'failed' }),
      task('d', 'd', 'vm:create', { created_at: T0 + 2000, completed_at: T0 + 2100 }),
    ];
    expect(measure(times, [], tasks)).toMatchObject({
      detectedMs: 50,
      backMs: 100,
      tasksAffected: 2,
      tasksInWindow: 3,
    });
  });
});
