/**
 * Drain and cancellation in cluster mode, on real Postgres and Redis: two control-plane replicas
 * and three workers running sandbox VMs. A cancel goes to one replica while the task runs on a
 * worker reached only through the queue and the event bus.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInProcessCluster, type InProcessCluster } from './harness/in-process-cluster.ts';

let c: InProcessCluster;
let turn = 0;

beforeAll(async () => {
  c = await startInProcessCluster({
    replicas: 2,
    agents: [
      // "slow" takes one task at a time, so creates queue up on it.
      { id: 'slow', driver: 'sandbox', concurrency: 1 },
      { id: 'w2', driver: 'sandbox' },
      { id: 'w3', driver: 'sandbox' },
    ],
  });
}, 120_000);

afterAll(async () => {
  await c?.stop();
}, 120_000);

async function api(method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object, replica = turn++ % 2) {
  const res = await c.replicas[replica]!.http.inject({ method, url: `/api/v1${url}`, ...(payload ? { payload } : {}) });
  return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : null };
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await check()) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Host pids whose command line contains `marker`: what really runs, whatever the records say. */
function hostProcesses(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').includes(marker)) pids.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return pids;
}

async function deleteAll(): Promise<void> {
  const { body } = await api('GET', '/vms?limit=1000');
  await Promise.all(body.vms.map((vm: { id: string }) => api('DELETE', `/vms/${vm.id}?wait=true&timeout=60`)));
  await until(
    'every VM to be gone',
    async () => (await c.count(`SELECT count(*)::int AS n FROM vms WHERE deleted_at IS NULL`)) === 0,
    60_000,
  );
}

describe('drain', () => {
  it('places nothing on a draining worker after the call returns, moves its queued creates, and empties it by the deadline', async () => {
    for (let i = 0; i < 3; i++)
      expect(
        (
          await api('POST', '/vms?wait=true&timeout=30', {
            name: `resident-${i}`,
            worker_labels: {},
            strategy: 'spread',
          })
        ).body.vm.status,
      ).toBe('running');
    // Make sure "slow" holds VMs before the drain.
    await api('POST', '/workers/w2/eligibility', { eligible: false });
    await api('POST', '/workers/w3/eligibility', { eligible: false });
    for (let i = 0; i < 2; i++)
      expect((await api('POST', '/vms?wait=true&timeout=30', { name: `on-slow-${i}` })).body.vm.worker_id).toBe('slow');
    await api('POST', '/workers/w2/eligibility', { eligible: true });
    await api('POST', '/workers/w3/eligibility', { eligible: true });

    const taskIds: string[] = [];
    let drainReturnedAt = 0;
    let deadline = 0;
    const stream = (async () => {
      for (let i = 0; i < 50; i++) {
        const res = await api('POST', '/vms', { name: `stream-${i}`, strategy: 'spread' });
        expect(res.status).toBe(202);
        taskIds.push(res.body.task_id);
        if (i === 20) {
          const drained = await api('POST', '/workers/slow/drain', { deadline_seconds: 4, message: 'test drain' });
          drainReturnedAt = Date.now();
          expect(drained.body).toMatchObject({ status: 'draining', worker: { eligible: false } });
          deadline = new Date(drained.body.worker.drain.deadline).getTime();
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await stream;

    await until(
      'all 50 creates to finish',
      async () =>
        (await c.count(`SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1) AND status = 'completed'`, [
          taskIds,
        ])) === 50,
      90_000,
    );
    const { rows } = await c.db.query(`SELECT id, worker_id, started_at, placement FROM tasks WHERE id = ANY($1)`, [
      taskIds,
    ]);
    // Nothing started on the draining worker after the drain call returned.
    const lateOnSlow = rows.filter((t) => t.worker_id === 'slow' && new Date(t.started_at).getTime() > drainReturnedAt);
    expect(lateOnSlow).toEqual([]);
    const moved = rows.filter((t) => (t.placement.moved_from ?? []).includes('slow'));
    console.log(`drain: ${moved.length} queued creates moved off the draining worker`);
    expect(moved.length).toBeGreaterThan(0);
    for (const t of moved) expect(['w2', 'w3']).toContain(t.worker_id);

    // By the deadline (plus the time to delete) the draining worker holds no VM, and says so once.
    await until(
      'the drain to complete',
      async () => (await api('GET', '/workers/slow')).body.drain?.drained_at != null,
      20_000,
    );
    const slow = (await api('GET', '/workers/slow')).body;
    const drainedAt = new Date(slow.drain.drained_at).getTime();
    console.log(`drain: complete ${drainedAt - deadline} ms after the deadline`);
    expect(drainedAt).toBeGreaterThanOrEqual(deadline);
    expect(drainedAt - deadline).toBeLessThan(5000);
    expect(slow.vm_count).toBe(0);
    expect(await c.count(`SELECT count(*)::int AS n FROM vms WHERE worker_id = 'slow' AND deleted_at IS NULL`)).toBe(0);
    const deletes = await c.db.query(`SELECT payload FROM tasks WHERE worker_id = 'slow' AND type = 'vm:delete'`);
    expect(deletes.rows.length).toBeGreaterThan(0);
    for (const d of deletes.rows)
      expect(d.payload.reason).toMatch(/drain deadline reached on worker slow \(test drain\)/);

    expect((await api('POST', '/workers/slow/activate')).body).toMatchObject({
      worker_id: 'slow',
      status: 'active',
      worker: { eligible: true, drain: null },
    });
    await deleteAll();
  }, 180_000);
});

describe('cancel', () => {
  it('kills a running `sleep 600` within 2 s, on the host, and records the task as cancelled', async () => {
    const vm = (await api('POST', '/vms?wait=true&timeout=30', { name: 'sleeper' })).body.vm;
    const marker = `600.${Date.now() % 100_000}`;
    // The exec blocks its request: fire it on replica 0 and cancel through replica 1.
    const exec = api('POST', `/vms/${vm.id}/exec`, { command: 'sleep', args: [marker] }, 0);
    await until('the command to run on the host', async () => hostProcesses(marker).length > 0, 15_000);
    const { rows } = await c.db.query(
      `SELECT id FROM tasks WHERE vm_id = $1 AND type = 'vm:execute' AND status = 'running'`,
      [vm.id],
    );
    const taskId = rows[0].id as string;

    const started = Date.now();
    const cancelled = await api('POST', `/tasks/${taskId}/cancel`, undefined, 1);
    expect([200, 202]).toContain(cancelled.status);
    const goneAfter = await until(
      'the process to be gone from the host',
      async () => hostProcesses(marker).length === 0,
      2000,
    );
    console.log(`cancel: process gone ${goneAfter} ms after the cancel request`);
    await until(
      'the task to be cancelled',
      async () => (await api('GET', `/tasks/${taskId}`)).body.status === 'cancelled',
      2000 - (Date.now() - started) + 1000,
    );
    // The waiting exec learns why it ended: cancelled (409), not a driver failure.
    const answer = await exec;
    expect(answer.status).toBe(409);
    expect(answer.body.error.code).toBe('cancelled');

    // Cancelling again is a no-op; the VM is still usable.
    expect(await api('POST', `/tasks/${taskId}/cancel`)).toMatchObject({
      status: 200,
      body: { status: 'cancelled', outcome: 'already' },
    });
    expect((await api('POST', `/vms/${vm.id}/exec`, { command: 'echo', args: ['still here'] })).body.stdout).toBe(
      'still here\n',
    );
    const done = (await api('GET', `/tasks?vm_id=${vm.id}&type=vm:execute&status=completed`)).body.tasks[0];
    const conflict = await api('POST', `/tasks/${done.id}/cancel`);
    expect(conflict.status).toBe(409);
    expect(conflict.body.error.message).toMatch(/already completed/);
    await deleteAll();
  }, 60_000);

  it('a cancelled pending task never runs', async () => {
    for (const id of ['slow', 'w2', 'w3']) await api('POST', `/workers/${id}/eligibility`, { eligible: false });
    const { body } = await api('POST', '/vms', { name: 'never' });
    await until(
      'the scheduler to look at it',
      async () => (await api('GET', `/tasks/${body.task_id}`)).body.placement != null,
      10_000,
    );
    const res = await api('POST', `/tasks/${body.task_id}/cancel`);
    expect(res.body).toMatchObject({ status: 'cancelled', outcome: 'cancelled' });
    for (const id of ['slow', 'w2', 'w3']) await api('POST', `/workers/${id}/eligibility`, { eligible: true });
    await new Promise((r) => setTimeout(r, 2000));
    const task = (await api('GET', `/tasks/${body.task_id}`)).body;
    expect(task).toMatchObject({ status: 'cancelled', worker_id: null, started_at: null });
    expect((await api('GET', `/vms/${body.vm.id}`)).status).toBe(404);
    for (const id of ['slow', 'w2', 'w3']) expect(existsSync(join(c.driverDir(id), body.vm.id))).toBe(false);
  }, 60_000);

  it('100 random cancels in random states under load: one final state each, no capacity drift', async () => {
    const taskIds: string[] = [];
    const cancels: Promise<unknown>[] = [];
    const random = (n: number) => Math.floor(Math.random() * n);
    // Creates (some will not fit at first: big ones), and commands of random length on running VMs.
    const creates = await Promise.all(
      Array.from({ length: 40 }, (_, i) => api('POST', '/vms', { name: `load-${i}`, vcpus: i % 7 === 0 ? 40 : 1 })),
    );
    for (const res of creates) taskIds.push(res.body.task_id);
    // Bounded by count, with a deadline only as a safety net: on a busy machine each round takes
    // longer, and a 10 s budget sent fewer than the 100 cancels the test counts on.
    const deadline = Date.now() + 60_000;
    let extra = 0;
    while (Date.now() < deadline && cancels.length < 100) {
      const running = (await api('GET', '/vms?status=running&limit=100')).body.vms as { id: string }[];
      if (running.length > 0) {
        const vm = running[random(running.length)]!;
        // Fire and forget: the exec request waits for its command.
        void api('POST', `/vms/${vm.id}/exec`, { command: 'sleep', args: [String(1 + random(4))] }).catch(
          () => undefined,
        );
      }
      if (Math.random() < 0.3)
        void api('POST', '/vms', { name: `extra-${extra++}`, vcpus: Math.random() < 0.2 ? 40 : 1 }).catch(
          () => undefined,
        );
      const all = (await api('GET', '/tasks?limit=1000')).body.tasks as { id: string; status: string }[];
      for (const t of all) if (!taskIds.includes(t.id)) taskIds.push(t.id);
      // Mostly tasks still in flight (pending, scheduled, running), sometimes finished ones.
      const open = all.filter((t) => !['completed', 'failed', 'cancelled'].includes(t.status));
      const pool = open.length > 0 && Math.random() < 0.8 ? open.map((t) => t.id) : taskIds;
      const victim = pool[random(pool.length)]!;
      cancels.push(api('POST', `/tasks/${victim}/cancel`).then((r) => r.status));
      await new Promise((r) => setTimeout(r, 60));
    }
    const statuses = (await Promise.all(cancels)) as number[];
    console.log(`random cancels: ${statuses.length} sent, answers ${JSON.stringify(countBy(statuses))}`);
    expect(statuses.length).toBe(100);
    for (const s of statuses) expect([200, 202, 409]).toContain(s);

    // Everything settles: pending creates that fit nowhere are cancelled too, so all can end.
    for (const t of (await api('GET', '/tasks?status=pending&limit=1000')).body.tasks)
      await api('POST', `/tasks/${t.id}/cancel`);
    await until(
      'every task to reach a final state',
      async () =>
        (await c.count(
          `SELECT count(*)::int AS n FROM tasks WHERE status NOT IN ('completed','failed','cancelled')`,
        )) === 0,
      60_000,
    );
    const finals = await c.db.query(`SELECT status, completed_at, cancel_requested_at FROM tasks`);
    for (const t of finals.rows) {
      expect(['completed', 'failed', 'cancelled']).toContain(t.status);
      expect(t.completed_at).not.toBeNull();
    }
    console.log(`random cancels: final states ${JSON.stringify(countBy(finals.rows.map((r) => r.status)))}`);

    await deleteAll();
    const workers = (await api('GET', '/workers')).body.workers;
    for (const w of workers)
      expect(w).toMatchObject({ vm_count: 0, used_cpu_cores: 0, used_memory_mb: 0, used_disk_gb: 0 });
  }, 180_000);
});

function countBy(values: (string | number)[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[String(v)] = (out[String(v)] ?? 0) + 1;
  return out;
}
