/**
 * Cluster mode on real engines, as separate processes on separate network hosts: Postgres, Redis
 * and etcd; two `aetherium server` replicas; three `aetherium worker`s in two zones, each in its
 * own network namespace. The sandbox driver runs real VMs.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisEventBus } from '../src/adapters/events/redis-event-bus.ts';
import type { ClusterEvent } from '../src/domain/index.ts';
import { apiCall, startCluster, type Cluster } from './harness/cluster.ts';
import { merged, parseSamples, type Samples, sumOf } from './harness/prometheus-text.ts';

let cluster: Cluster;
let db: pg.Pool;
let turn = 0;

/** Alternates between the replicas, as a load balancer would. */
function replica(): string {
  return cluster.servers[turn++ % cluster.servers.length]!.url;
}

function api<T = any>(method: string, path: string, body?: unknown, base = replica()) {
  return apiCall<T>(base, cluster.adminKey, method, path, body);
}

async function until(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  explain?: () => Promise<string>,
): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await check().catch(() => false)) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${explain ? `\n${await explain().catch((e) => String(e))}` : ''}`,
  );
}

/** The tasks that are not final yet, and the processes' last words: what a stuck test needs. */
async function stuck(taskIds: string[]): Promise<string> {
  const { rows } = await db.query(
    `SELECT id, type, status, worker_id, retry_count, error, placement->>'reason' AS reason, updated_at FROM tasks WHERE id = ANY($1) AND status NOT IN ('completed','failed','cancelled')`,
    [taskIds],
  );
  const logs = [...cluster.servers, ...cluster.workers.values()]
    .map((p) => `--- ${p.name}\n${p.output().slice(-2500)}`)
    .join('\n');
  return `${JSON.stringify(rows, null, 1)}\n${logs}`;
}

const WORKERS = [
  { id: 'w1', zone: 'zone-a' },
  { id: 'w2', zone: 'zone-a' },
  { id: 'w3', zone: 'zone-b' },
];

beforeAll(async () => {
  cluster = await startCluster({ servers: 2, workers: WORKERS, env: { AETHERIUM_WORKER__DRAIN_DEADLINE: '3s' } });
  db = new pg.Pool({ connectionString: cluster.databaseUrl, max: 2 });
  db.on('error', () => undefined);
}, 180_000);

afterAll(async () => {
  await db?.end();
  await cluster?.stop();
}, 120_000);

describe('cluster mode', () => {
  it('runs 30 VMs created through alternating replicas, execs on each, frees all capacity on delete', async () => {
    const names = Array.from({ length: 30 }, (_, i) => `vm-${i + 1}`);
    // A third subscriber on the bus, like another replica: it must see what both replicas caused.
    const bus = new RedisEventBus({ url: cluster.redis.url });
    await bus.ready();
    const seen: ClusterEvent[] = [];
    bus.subscribe((event) => seen.push(event));
    for (let i = 0; i < names.length; i += 6) {
      const batch = await Promise.all(
        names
          .slice(i, i + 6)
          .map((name) => api('POST', '/vms?wait=true&timeout=60', { name, driver: 'sandbox', strategy: 'spread' })),
      );
      for (const res of batch) expect(res.body.vm?.status, JSON.stringify(res.body)).toBe('running');
    }

    const distribution = await api('GET', '/cluster/distribution');
    expect(distribution.body.total_vms).toBe(30);
    const placed = distribution.body.distribution
      .flatMap((d: { vms: { name: string }[] }) => d.vms.map((v) => v.name))
      .sort();
    expect(placed).toEqual([...names].sort());
    // Spread used both zones and all three hosts.
    const perWorker = Object.fromEntries(
      distribution.body.distribution.map((d: { worker_id: string; vm_count: number }) => [d.worker_id, d.vm_count]),
    );
    for (const { id } of WORKERS) expect(perWorker[id]).toBeGreaterThan(0);

    // The other replica sees the same VMs.
    const other = await api('GET', '/vms?limit=1000', undefined, cluster.servers[1]!.url);
    expect(other.body.vms.filter((v: { status: string }) => v.status === 'running')).toHaveLength(30);

    for (let i = 0; i < names.length; i += 10) {
      const results = await Promise.all(
        names
          .slice(i, i + 10)
          .map((name) => api('POST', `/vms/${name}/exec`, { command: 'sh', args: ['-c', `echo $(hostname)`] })),
      );
      for (const [j, res] of results.entries()) {
        expect(res.body).toMatchObject({ exit_code: 0, stdout: `${names[i + j]}\n` });
      }
    }

    for (let i = 0; i < names.length; i += 10) {
      const results = await Promise.all(
        names.slice(i, i + 10).map((name) => api('DELETE', `/vms/${name}?wait=true&timeout=60`)),
      );
      for (const res of results) expect(res.body.status).toBe('completed');
    }
    const workers = await api('GET', '/workers');
    for (const w of workers.body.workers)
      expect(w).toMatchObject({ vm_count: 0, used_cpu_cores: 0, used_memory_mb: 0, used_disk_gb: 0 });

    await until(
      'the deletions to reach the bus',
      async () => seen.filter((e) => e.type === 'vm.deleted').length >= 30,
      10_000,
    );
    await bus.close();
    const created = seen
      .filter((e) => e.type === 'vm.created')
      .map((e) => e.data.name)
      .sort();
    expect(created).toEqual([...names].sort());
    const ids = seen.map((e) => e.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(ids.length);
  }, 240_000);

  it('every worker and every replica serves /metrics behind a token; they move with a create, exec and delete', async () => {
    const scrape = async (url: string, token: string): Promise<Samples> => {
      const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status, url).toBe(200);
      return parseSamples(await res.text());
    };
    const workers = [...cluster.workers.values()];
    const everyWorker = async () =>
      merged(await Promise.all(workers.map((w) => scrape(w.metricsUrl, cluster.workerMetricsToken))));
    const everyReplica = async () =>
      merged(await Promise.all(cluster.servers.map((s) => scrape(`${s.url}/metrics`, cluster.adminKey))));

    // A worker's listener refuses a scrape without its token, and with the wrong one.
    expect((await fetch(workers[0]!.metricsUrl)).status).toBe(401);
    const wrong = await fetch(workers[0]!.metricsUrl, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe('unauthorized');

    const [w0, r0] = [await everyWorker(), await everyReplica()];
    expect(sumOf(w0, 'process_cpu_user_seconds_total')).toBeGreaterThan(0); // a process of its own
    const names = ['metered-1', 'metered-2', 'metered-3'];
    for (const res of await Promise.all(
      names.map((name) => api('POST', '/vms?wait=true&timeout=60', { name, driver: 'sandbox' })),
    ))
      expect(res.body.vm?.status, JSON.stringify(res.body)).toBe('running');
    for (const name of names)
      expect((await api('POST', `/vms/${name}/exec`, { command: 'true' })).body.exit_code).toBe(0);
    for (const res of await Promise.all(names.map((name) => api('DELETE', `/vms/${name}?wait=true&timeout=60`))))
      expect(res.body.status).toBe('completed');
    const [w1, r1] = [await everyWorker(), await everyReplica()];

    const moved = (before: Samples, after: Samples, name: string, labels: Record<string, string> = {}) =>
      sumOf(after, name, labels) - sumOf(before, name, labels);
    for (const type of ['vm:create', 'vm:execute', 'vm:delete'])
      expect(moved(w0, w1, 'aetherium_worker_tasks_total', { type, outcome: 'completed' }), type).toBe(3);
    expect(
      moved(w0, w1, 'aetherium_worker_driver_operation_duration_seconds_count', {
        driver: 'sandbox',
        operation: 'create',
      }),
    ).toBe(3);
    expect(moved(w0, w1, 'aetherium_worker_link_request_duration_seconds_count')).toBeGreaterThan(0);
    // The replicas saw each boot through its phases: one observation per phase per VM.
    for (const phase of ['placed', 'delivered', 'driver_started', 'agent_ready', 'running'])
      expect(moved(r0, r1, 'aetherium_vm_boot_phase_duration_seconds_count', { phase, driver: 'sandbox' }), phase).toBe(
        3,
      );
    expect(moved(r0, r1, 'aetherium_vm_boot_duration_seconds_count', { driver: 'sandbox' })).toBe(3);
    expect(moved(r0, r1, 'aetherium_placements_total', { outcome: 'placed' })).toBeGreaterThanOrEqual(3);
    expect(moved(r0, r1, 'aetherium_engine_request_duration_seconds_count', { engine: 'store' })).toBeGreaterThan(0);
    expect(sumOf(r1, 'aetherium_engine_up', { engine: 'store' })).toBe(cluster.servers.length);

    // The boot waterfall is on the VM, in order.
    const vm = await api('POST', '/vms?wait=true&timeout=60', { name: 'waterfall', driver: 'sandbox' });
    const { phases } = (await api('GET', '/vms/waterfall')).body;
    const order = ['accepted', 'placed', 'delivered', 'driver_started', 'agent_ready', 'running'];
    const times = order.map((p) => Date.parse(phases[p]));
    for (const [i, t] of times.entries())
      expect(Number.isNaN(t), `${order[i]} in ${JSON.stringify(phases)}`).toBe(false);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect(vm.body.vm.status).toBe('running');
    expect((await api('DELETE', '/vms/waterfall?wait=true&timeout=60')).body.status).toBe('completed');
  }, 120_000);

  it('a worker killed with SIGKILL goes offline within its TTL; its queued creates finish elsewhere, none lost or run twice', async () => {
    const dead = cluster.workers.get('w3')!;
    // Only w3 may take placements, so the creates below are queued on it while it is already dead.
    for (const id of ['w1', 'w2']) expect((await api('POST', `/workers/${id}/drain`, {})).status).toBe(200);
    await dead.kill('SIGKILL');
    const killedAt = Date.now();
    // Three: the scheduler caps creates in flight per worker at three by default.
    const created = await Promise.all(
      Array.from({ length: 3 }, (_, i) => api('POST', '/vms', { name: `orphan-${i}`, driver: 'sandbox' })),
    );
    const taskIds = created.map((res) => res.body.task_id as string);
    await until(
      'the creates to be queued on w3',
      async () => {
        const { rows } = await db.query(
          `SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1) AND worker_id = 'w3' AND status = 'scheduled'`,
          [taskIds],
        );
        return rows[0].n === 3;
      },
      10_000,
      () => stuck(taskIds),
    );
    for (const id of ['w1', 'w2']) expect((await api('POST', `/workers/${id}/activate`)).status).toBe(200);

    const offlineAfter = await until(
      'w3 to be offline',
      async () => (await api('GET', '/workers/w3')).body.status === 'offline',
      20_000,
    );
    const ttlMs = 4000;
    console.log(`w3 offline ${Date.now() - killedAt} ms after SIGKILL (TTL ${ttlMs} ms)`);
    const bus = new RedisEventBus({ url: cluster.redis.url });
    const replay = await bus.replay(0, 100_000);
    await bus.close();
    expect(
      'events' in replay && replay.events.filter((e) => e.type === 'worker.left' && e.data.worker_id === 'w3'),
    ).toHaveLength(1);
    expect(Date.now() - killedAt).toBeLessThan(ttlMs + 3000);
    expect(offlineAfter).toBeGreaterThanOrEqual(0);

    await until(
      'the moved creates to complete',
      async () => {
        const { rows } = await db.query(
          `SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1) AND status = 'completed'`,
          [taskIds],
        );
        return rows[0].n === 3;
      },
      60_000,
      () => stuck(taskIds),
    );
    const { rows: tasks } = await db.query(
      `SELECT id, status, worker_id, vm_id, placement FROM tasks WHERE id = ANY($1)`,
      [taskIds],
    );
    for (const task of tasks) {
      expect(task.status).toBe('completed');
      expect(['w1', 'w2']).toContain(task.worker_id);
      // It really was queued on the dead worker first, then moved.
      expect(task.placement.moved_from).toContain('w3');
      // Run once: the VM exists on its worker's host and on no other.
      expect(existsSync(join(cluster.workers.get(task.worker_id)!.stateDir, 'sandbox', task.vm_id))).toBe(true);
      for (const other of ['w1', 'w2', 'w3'].filter((w) => w !== task.worker_id)) {
        expect(existsSync(join(cluster.workers.get(other)!.stateDir, 'sandbox', task.vm_id))).toBe(false);
      }
    }
    const { rows: events } = await db.query(
      `SELECT count(*)::int AS n FROM vms WHERE name LIKE 'orphan-%' AND deleted_at IS NULL AND status = 'running'`,
    );
    expect(events[0].n).toBe(3);

    // w3 comes back: it registers again and takes work.
    dead.start();
    await cluster.waitForWorkers(['w3']);
    const back = await api('POST', '/vms?wait=true&timeout=60', {
      name: 'after-return',
      worker_labels: {},
      zone: 'zone-b',
      driver: 'sandbox',
    });
    expect(back.body.vm).toMatchObject({ status: 'running', worker_id: 'w3' });
    for (const name of ['after-return', ...Array.from({ length: 3 }, (_, i) => `orphan-${i}`)]) {
      expect((await api('DELETE', `/vms/${name}?wait=true&timeout=60`)).body.status).toBe('completed');
    }
  }, 180_000);

  it('recovers by itself when Redis and then Postgres restart during a stream of creates', async () => {
    const accepted: string[] = [];
    const refused: number[] = [];
    const stream = (async () => {
      for (let i = 0; i < 40; i++) {
        try {
          const res = await api('POST', '/vms', { name: `storm-${i}`, driver: 'sandbox' });
          if (res.status === 202) accepted.push(res.body.task_id);
          else refused.push(res.status);
        } catch {
          refused.push(0);
        }
        await new Promise((r) => setTimeout(r, 150));
      }
    })();
    await new Promise((r) => setTimeout(r, 1200));
    await cluster.redis.restart();
    await new Promise((r) => setTimeout(r, 1500));
    await cluster.postgres.restart(500);
    await stream;
    // Every process rode out the restarts.
    for (const p of [...cluster.servers, ...cluster.workers.values()]) {
      expect(p.child?.exitCode ?? null, `${p.name} exited:\n${p.output().slice(-4000)}`).toBeNull();
    }
    console.log(
      `storm: ${accepted.length} creates accepted, ${refused.length} refused (${[...new Set(refused)].join(',')})`,
    );
    expect(accepted.length).toBeGreaterThan(20);
    // A refusal is a clear 503, never a 500.
    for (const status of refused) expect([0, 503]).toContain(status);

    await until(
      'every accepted create to end',
      async () => {
        const { rows } = await db.query(
          `SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1) AND status IN ('completed', 'failed', 'cancelled')`,
          [accepted],
        );
        return rows[0].n === accepted.length;
      },
      120_000,
      () => stuck(accepted),
    );
    const { rows } = await db.query(`SELECT status, error FROM tasks WHERE id = ANY($1)`, [accepted]);
    for (const row of rows) {
      if (row.status !== 'completed') expect(row.error, 'a failed task carries its reason').toBeTruthy();
    }
    console.log(
      `storm outcome: ${rows.filter((r) => r.status === 'completed').length} completed, ${rows.filter((r) => r.status !== 'completed').length} failed`,
    );

    const vms = await api('GET', '/vms?limit=1000');
    await Promise.all(vms.body.vms.map((vm: { id: string }) => api('DELETE', `/vms/${vm.id}?wait=true&timeout=60`)));
    await until(
      'all capacity to be free',
      async () => {
        const workers = await api('GET', '/workers');
        return workers.body.workers.every(
          (w: { vm_count: number; used_cpu_cores: number }) => w.vm_count === 0 && w.used_cpu_cores === 0,
        );
      },
      60_000,
    );
  }, 240_000);

  it('SIGTERM drains a worker with the configured deadline, then it deregisters and exits 0', async () => {
    for (const id of ['w1', 'w3']) await api('POST', `/workers/${id}/eligibility`, { eligible: false });
    for (let i = 0; i < 2; i++)
      expect(
        (await api('POST', '/vms?wait=true&timeout=60', { name: `leaving-${i}`, driver: 'sandbox' })).body.vm.worker_id,
      ).toBe('w2');
    for (const id of ['w1', 'w3']) await api('POST', `/workers/${id}/eligibility`, { eligible: true });

    const w2 = cluster.workers.get('w2')!;
    const started = Date.now();
    const code = await w2.kill('SIGTERM', 30_000);
    console.log(`w2 drained and exited ${Date.now() - started} ms after SIGTERM (drain deadline 3 s)`);
    expect(code).toBe(0);
    const { rows } = await db.query(`SELECT count(*)::int AS n FROM vms WHERE worker_id = 'w2' AND deleted_at IS NULL`);
    expect(rows[0].n).toBe(0);
    const worker = (await api('GET', '/workers/w2')).body;
    expect(worker).toMatchObject({ status: 'offline', vm_count: 0 });
    expect(worker.drain.drained_at).not.toBeNull();
    for (const i of [0, 1]) expect((await api('GET', `/vms/leaving-${i}`)).status).toBe(404);
    // Nothing is left on the host either.
    const { rows: gone } = await db.query(`SELECT id FROM vms WHERE name LIKE 'leaving-%'`);
    for (const vm of gone) expect(existsSync(join(w2.stateDir, 'sandbox', vm.id))).toBe(false);
  }, 60_000);
});
