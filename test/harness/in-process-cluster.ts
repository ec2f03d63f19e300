/**
 * Cluster mode in one test process: real Postgres and Redis started by the harness, any number of
 * control-plane replicas (each with its own connections, as separate processes would have) and
 * worker agents with real drivers. Faster to drive and inspect than separate processes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createDriver } from '../../src/adapters/vmm/create-driver.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import type { DriverName, WorkerResources } from '../../src/domain/index.ts';
import type { VmDriver } from '../../src/ports/vm-driver.ts';
import { openEngines, type Engines } from '../../src/runtime/engines.ts';
import { linkOverEngines } from '../../src/runtime/worker-link.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { ControlPlane } from '../../src/server/control-plane.ts';
import { WorkerAgent, type WorkerAgentOptions } from '../../src/worker/agent.ts';
import { carryKey } from './auth.ts';
import { createDatabase, startPostgres, type PostgresServer } from './postgres.ts';
import { startRedis } from './redis.ts';

export interface AgentSpec {
  id: string;
  zone?: string;
  driver?: DriverName;
  resources?: Partial<WorkerResources>;
  concurrency?: number;
}

export interface InProcessCluster {
  config: Config;
  postgres: PostgresServer;
  redis: Awaited<ReturnType<typeof startRedis>>;
  db: pg.Pool;
  stateDir: string;
  replicas: ControlPlane[];
  /** The replicas' base URLs when started with `listen` (real sockets, for WebSocket clients). */
  urls: string[];
  agents: Map<string, WorkerAgent>;
  /** The admin key every replica's inject() carries; WebSocket clients send it themselves. */
  adminKey: string;
  /** The state folder of an agent's driver. */
  driverDir(agentId: string): string;
  /** One SQL count, for assertions. */
  count(sql: string, params?: unknown[]): Promise<number>;
  stop(): Promise<void>;
}

export async function startInProcessCluster(options: {
  replicas: number;
  agents: AgentSpec[];
  config?: Record<string, unknown>;
  listen?: boolean;
}): Promise<InProcessCluster> {
  const postgres = await startPostgres();
  const redis = await startRedis();
  const url = await createDatabase(postgres.url);
  const db = new pg.Pool({ connectionString: url, max: 3 });
  db.on('error', () => undefined);
  const stateDir = mkdtempSync(join(tmpdir(), 'aetherium-inproc-'));
  const base: Record<string, Record<string, unknown>> = {
    store: { kind: 'postgres', postgres: { url } },
    queue: { kind: 'redis', redis: { url: redis.url } },
    events: { kind: 'redis', redis: { url: redis.url } },
    scheduler: { interval: '200ms', redeliver_after: '5s' },
    api_gateway: { rate_limit: { enabled: false }, host: '127.0.0.1', port: 0 },
    worker: { heartbeat_interval: '1s', ttl: '10s' },
    log: { level: 'silent' },
  };
  // Sections given by a test are merged into the cluster's, not put in their place.
  for (const [section, values] of Object.entries(options.config ?? {}))
    base[section] = { ...base[section], ...(values as Record<string, unknown>) };
  const config = loadConfig({ env: {}, overrides: base });
  const engines: Engines[] = [];
  const drivers: VmDriver[] = [];
  const replicas: ControlPlane[] = [];
  const urls: string[] = [];
  const agents = new Map<string, WorkerAgent>();
  const driverDir = (id: string) => join(stateDir, id);

  let adminKey: string | undefined;
  for (let i = 0; i < options.replicas; i++) {
    const e = await openEngines(config);
    engines.push(e);
    const replica = new ControlPlane(config, { ...e, log: silentLogger, mode: 'server', version: 'test' });
    const address = await replica.startAndListen(options.listen ?? false);
    // One admin key for the whole cluster: it lives in the shared store, so every replica knows it.
    adminKey ??= (await replica.tokens.create({ name: 'test-admin', role: 'admin' }, null)).token;
    carryKey(replica.http, adminKey);
    replicas.push(replica);
    if (address) urls.push(address);
  }
  for (const spec of options.agents) {
    const e = await openEngines(config);
    engines.push(e);
    const name = spec.driver ?? 'process';
    const driver = createDriver(name, { stateDir: driverDir(spec.id) });
    drivers.push(driver);
    const agentOptions: WorkerAgentOptions = {
      id: spec.id,
      zone: spec.zone ?? 'zone-a',
      labels: {},
      capabilities: [],
      resources: { cpu_cores: 32, memory_mb: 65_536, disk_gb: 1000, max_vms: 100, ...spec.resources },
      heartbeatIntervalMs: config.worker.heartbeat_interval,
      ttlMs: config.worker.ttl,
      metricsIntervalMs: 60_000,
      concurrency: spec.concurrency ?? 8,
      stateDir: driverDir(spec.id),
    };
    const own = new Map<DriverName, VmDriver>([[name, driver]]);
    const link = linkOverEngines(e, silentLogger);
    const agent = new WorkerAgent(agentOptions, { link, channels: e.channels, drivers: own, log: silentLogger });
    await agent.start();
    agents.set(spec.id, agent);
  }

  return {
    config,
    postgres,
    redis,
    db,
    stateDir,
    replicas,
    urls,
    agents,
    adminKey: adminKey ?? '',
    driverDir,
    count: async (sql, params = []) => Number((await db.query(sql, params)).rows[0]?.n ?? 0),
    async stop() {
      for (const replica of replicas) await replica.stop();
      for (const agent of agents.values()) await agent.stop();
      for (const driver of drivers) {
        // Sandboxes outlive their agent by design: remove what the tests left.
        for (const vm of await driver.list().catch(() => [])) await driver.delete(vm.id).catch(() => undefined);
        await driver.close();
      }
      for (const e of engines) await e.close();
      await db.end();
      await redis.stop();
      await postgres.stop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
