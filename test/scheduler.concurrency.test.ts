/**
 * Two control-plane replicas on one Postgres and Redis place 500 VMs at once onto workers with room
 * for exactly 400: exactly 400 run, 100 stay pending with "insufficient capacity", and no worker's
 * used capacity ever exceeds its total (the reservation is one conditional UPDATE).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDriver } from '../src/adapters/vmm/create-driver.ts';
import { loadConfig } from '../src/config/load.ts';
import type { DriverName } from '../src/domain/index.ts';
import type { VmDriver } from '../src/ports/vm-driver.ts';
import { openEngines, type Engines } from '../src/runtime/engines.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { ControlPlane } from '../src/server/control-plane.ts';
import { WorkerAgent } from '../src/worker/agent.ts';
import { createDatabase, startPostgres, type PostgresServer } from './harness/postgres.ts';
import { startRedis } from './harness/redis.ts';

const WORKERS = 4;
const CPUS_PER_WORKER = 100;

let postgres: PostgresServer;
let redis: Awaited<ReturnType<typeof startRedis>>;
let db: pg.Pool;
let stateDir: string;
const engines: Engines[] = [];
const replicas: ControlPlane[] = [];
const agents: WorkerAgent[] = [];
const drivers: VmDriver[] = [];

beforeAll(async () => {
  postgres = await startPostgres();
  redis = await startRedis();
  const url = await createDatabase(postgres.url);
  db = new pg.Pool({ connectionString: url, max: 2 });
  stateDir = mkdtempSync(join(tmpdir(), 'aetherium-concurrency-'));
  const config = loadConfig({
    env: {},
    overrides: {
      store: { kind: 'postgres', postgres: { url } },
      queue: { kind: 'redis', redis: { url: redis.url } },
      events: { kind: 'redis', redis: { url: redis.url } },
      scheduler: { interval: '200ms' },
      api_gateway: { rate_limit: { enabled: false } },
      worker: { heartbeat_interval: '1s', ttl: '10s' },
      log: { level: 'silent' },
    },
  });
  for (let i = 0; i < 2; i++) {
    const e = await openEngines(config);
    engines.push(e);
    const replica = new ControlPlane(config, { ...e, log: silentLogger, mode: 'server', version: 'test' });
    await replica.start(false);
    await replica.http.ready();
    replicas.push(replica);
  }
  for (let i = 0; i < WORKERS; i++) {
    const e = await openEngines(config);
    engines.push(e);
    const driver = createDriver('process', { stateDir: join(stateDir, `w${i}`) });
    drivers.push(driver);
    const agent = new WorkerAgent(
      {
        id: `cw${i}`,
        zone: i % 2 === 0 ? 'zone-a' : 'zone-b',
        labels: {},
        capabilities: [],
        resources: { cpu_cores: CPUS_PER_WORKER, memory_mb: 1_000_000, disk_gb: 100_000, max_vms: 1000 },
        heartbeatIntervalMs: 1000,
        ttlMs: 10_000,
        metricsIntervalMs: 60_000,
        concurrency: 8,
        stateDir: join(stateDir, `w${i}`),
      },
      { ...e, drivers: new Map<DriverName, VmDriver>([['process', driver]]), log: silentLogger },
    );
    await agent.start();
    agents.push(agent);
  }
}, 120_000);

afterAll(async () => {
  for (const replica of replicas) await replica.stop();
  for (const agent of agents) await agent.stop();
  for (const driver of drivers) await driver.close();
  for (const e of engines) await e.close();
  await db?.end();
  await redis?.stop();
  await postgres?.stop();
  rmSync(stateDir, { recursive: true, force: true });
}, 60_000);

async function count(sql: string): Promise<number> {
  return (await db.query(sql)).rows[0].n as number;
}

describe('two replicas placing at once', () => {
  it('places exactly as many VMs as fit: 400 of 500, the rest pending with the reason', async () => {
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 500 }, (_, i) =>
        replicas[i % 2]!.http.inject({ method: 'POST', url: '/api/v1/vms', payload: { name: `c-${i}`, vcpus: 1, memory_mb: 128, disk_gb: 0, driver: 'process', strategy: i % 3 === 0 ? 'spread' : 'binpack' } }),
      ),
    );
    for (const answer of answers) expect(answer.statusCode).toBe(202);

    let maxSeenOver = 0;
    for (;;) {
      const over = await count(`SELECT count(*)::int AS n FROM workers WHERE used_cpu_cores > cpu_cores OR vm_count > max_vms`);
      maxSeenOver = Math.max(maxSeenOver, over);
      const running = await count(`SELECT count(*)::int AS n FROM vms WHERE status = 'running'`);
      const explained = await count(`SELECT count(*)::int AS n FROM tasks WHERE type = 'vm:create' AND status = 'pending' AND placement->>'reason' LIKE 'insufficient capacity%'`);
      if (running === 400 && explained === 100) break;
      if (Date.now() - started > 120_000) throw new Error(`stuck at ${running} running, ${explained} explained pending`);
      await new Promise((r) => setTimeout(r, 250));
    }
    console.log(`400 of 500 VMs running through 2 replicas in ${Date.now() - started} ms`);
    expect(maxSeenOver).toBe(0);

    const { rows: workers } = await db.query(`SELECT id, used_cpu_cores, cpu_cores, vm_count FROM workers ORDER BY id`);
    for (const w of workers) expect(w).toMatchObject({ used_cpu_cores: CPUS_PER_WORKER, cpu_cores: CPUS_PER_WORKER, vm_count: CPUS_PER_WORKER });
    expect(await count(`SELECT count(*)::int AS n FROM tasks WHERE type = 'vm:create' AND status = 'completed'`)).toBe(400);
    expect(await count(`SELECT count(*)::int AS n FROM tasks WHERE type = 'vm:create' AND status = 'pending'`)).toBe(100);
    const { rows } = await db.query(`SELECT placement FROM tasks WHERE status = 'pending' LIMIT 1`);
    expect(rows[0].placement.reason).toBe(`insufficient capacity: ${WORKERS} × insufficient cpu`);
    expect(rows[0].placement.rejected).toEqual({ 'insufficient cpu': WORKERS });

    // Room appears: a delete lets exactly one pending VM in.
    const victim = (await db.query(`SELECT id FROM vms WHERE status = 'running' LIMIT 1`)).rows[0].id as string;
    const deleted = await replicas[0]!.http.inject({ method: 'DELETE', url: `/api/v1/vms/${victim}?wait=true` });
    expect(JSON.parse(deleted.body).status).toBe('completed');
    for (let i = 0; i < 100 && (await count(`SELECT count(*)::int AS n FROM vms WHERE status = 'running'`)) !== 400; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await count(`SELECT count(*)::int AS n FROM vms WHERE status = 'running'`)).toBe(400);
    expect(await count(`SELECT count(*)::int AS n FROM tasks WHERE type = 'vm:create' AND status = 'pending'`)).toBe(99);
  }, 180_000);
});
