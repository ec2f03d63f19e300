/**
 * Two control-plane replicas on one Postgres and Redis place 500 VMs at once onto workers with room
 * for exactly 400: exactly 400 run, 100 stay pending with "insufficient capacity", and no worker's
 * used capacity ever exceeds its total (the reservation is one conditional UPDATE).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInProcessCluster, type InProcessCluster } from './harness/in-process-cluster.ts';

const WORKERS = 4;
const CPUS_PER_WORKER = 100;

let c: InProcessCluster;

beforeAll(async () => {
  c = await startInProcessCluster({
    replicas: 2,
    agents: Array.from({ length: WORKERS }, (_, i) => ({
      id: `cw${i}`,
      zone: i % 2 === 0 ? 'zone-a' : 'zone-b',
      resources: { cpu_cores: CPUS_PER_WORKER, memory_mb: 1_000_000, disk_gb: 100_000, max_vms: 1000 },
    })),
  });
}, 120_000);

afterAll(async () => {
  await c?.stop();
}, 60_000);

describe('two replicas placing at once', () => {
  it('places exactly as many VMs as fit: 400 of 500, the rest pending with the reason', async () => {
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 500 }, (_, i) =>
        c.replicas[i % 2]!.http.inject({
          method: 'POST',
          url: '/api/v1/vms',
          payload: {
            name: `c-${i}`,
            vcpus: 1,
            memory_mb: 128,
            disk_gb: 0,
            driver: 'process',
            strategy: i % 3 === 0 ? 'spread' : 'binpack',
          },
        }),
      ),
    );
    for (const answer of answers) expect(answer.statusCode).toBe(202);

    let maxSeenOver = 0;
    for (;;) {
      maxSeenOver = Math.max(
        maxSeenOver,
        await c.count(`SELECT count(*)::int AS n FROM workers WHERE used_cpu_cores > cpu_cores OR vm_count > max_vms`),
      );
      const running = await c.count(`SELECT count(*)::int AS n FROM vms WHERE status = 'running'`);
      const explained = await c.count(
        `SELECT count(*)::int AS n FROM tasks WHERE type = 'vm:create' AND status = 'pending' AND placement->>'reason' LIKE 'insufficient capacity%'`,
      );
      if (running === 400 && explained === 100) break;
      if (Date.now() - started > 120_000)
        throw new Error(`stuck at ${running} running, ${explained} explained pending`);
      await new Promise((r) => setTimeout(r, 250));
    }
    console.log(`400 of 500 VMs running through 2 replicas in ${Date.now() - started} ms`);
    expect(maxSeenOver).toBe(0);

    const { rows: workers } = await c.db.query(
      `SELECT id, used_cpu_cores, cpu_cores, vm_count FROM workers ORDER BY id`,
    );
    for (const w of workers)
      expect(w).toMatchObject({
        used_cpu_cores: CPUS_PER_WORKER,
        cpu_cores: CPUS_PER_WORKER,
        vm_count: CPUS_PER_WORKER,
      });
    expect(
      await c.count(`SELECT count(*)::int AS n FROM tasks WHERE type = 'vm:create' AND status = 'completed'`),
    ).toBe(400);
    expect(await c.count(`SELECT count(*)::int AS n FROM tasks WHERE type = 'vm:create' AND status = 'pending'`)).toBe(
      100,
    );
    const { rows } = await c.db.query(`SELECT placement FROM tasks WHERE status = 'pending' LIMIT 1`);
    expect(rows[0].placement.reason).toBe(`insufficient capacity: ${WORKERS} × insufficient cpu`);
    expect(rows[0].placement.rejected).toEqual({ 'insufficient cpu': WORKERS });

    // Room appears: a delete lets exactly one pending VM in.
    const victim = (await c.db.query(`SELECT id FROM vms WHERE status = 'running' LIMIT 1`)).rows[0].id as string;
    const deleted = await c.replicas[0]!.http.inject({ method: 'DELETE', url: `/api/v1/vms/${victim}?wait=true` });
    expect(JSON.parse(deleted.body).status).toBe('completed');
    for (
      let i = 0;
      i < 100 && (await c.count(`SELECT count(*)::int AS n FROM vms WHERE status = 'running'`)) !== 400;
      i++
    )
      await new Promise((r) => setTimeout(r, 100));
    expect(await c.count(`SELECT count(*)::int AS n FROM vms WHERE status = 'running'`)).toBe(400);
    expect(await c.count(`SELECT count(*)::int AS n FROM tasks WHERE type = 'vm:create' AND status = 'pending'`)).toBe(
      99,
    );
  }, 180_000);
});
