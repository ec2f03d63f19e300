/**
 * `npm run bench:api`: how fast the API answers its busiest reads, against a bare Fastify
 * hello-world measured in the same run (the ratio is what matters: absolute numbers depend on
 * whatever else shares the CPU). Each system is a separate process on loopback, as deployed:
 * - dev: `aetherium dev` (PGlite, in-memory queue and bus, its own local worker);
 * - cluster: `aetherium server` on a real Postgres and Redis started by the test harnesses, with
 *   workers and VMs seeded so the answers have something in them.
 * Both run for the whole measurement, each idle while the other is measured: the bare server is
 * measured before the first route and after each one, and each route's ratio is taken against
 * the bare runs either side of it.
 *
 * Rate limiting stays on (as in production) with a limit too high to refuse anyone, so its cost is
 * measured too. `BENCH_CPU_PROF=<dir>` runs the system under `node --cpu-prof` into that folder
 * (with `SOURCES=1`, from the TypeScript sources, so frames name source files).
 * Environment: SECONDS (per route, default 3), CONNECTIONS (10), MODES (`dev,cluster`), ROUTES
 * (comma-separated paths, default the three below).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore } from '../src/adapters/storage/open-store.ts';
import { createDatabase, startPostgres } from '../test/harness/postgres.ts';
import { CLI, exited, freePort, waitForHttp } from '../test/harness/processes.ts';
import { startRedis } from '../test/harness/redis.ts';

/** The part of autocannon's API used here (the package ships no types). */
interface CannonResult {
  requests: { average: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}
type Autocannon = (options: {
  url: string;
  connections: number;
  duration: number;
  headers?: Record<string, string>;
}) => Promise<CannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export type Mode = 'dev' | 'cluster';

export interface ApiReadsOptions {
  modes?: Mode[];
  /** Per route (default 3). */
  seconds?: number;
  connections?: number;
  /** Workers seeded in cluster mode (dev mode has its one local worker). Default 20. */
  workers?: number;
  /** VMs created through the API before measuring, in both modes. Default 20. */
  vms?: number;
  /** The routes to measure (default READ_ROUTES). */
  routes?: readonly string[];
  /** Run the system under `node --cpu-prof`, writing the profile into this folder. */
  cpuProfDir?: string;
  /** Run the TypeScript sources through tsx rather than the build (frames named by source file). */
  sources?: boolean;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

export interface Row {
  mode: Mode;
  /** `bare fastify` or the route, e.g. `GET /api/v1/cluster/stats`. */
  target: string;
  requests_per_second: number;
  p50_ms: number;
  p99_ms: number;
  /** requests_per_second over the bare server's in the same run (1 for the bare server). */
  ratio: number;
  /** Answers that were not 2xx, plus connection errors and timeouts: should be 0. */
  failed: number;
  /** CPU time (user + system) the serving process spent per request, in microseconds. */
  cpu_us_per_request: number | null;
}

export const READ_ROUTES = ['/api/v1/cluster/stats', '/api/v1/workers', '/api/v1/vms'] as const;

interface Running {
  url: string;
  key: string;
  /** The serving process, for its CPU time. */
  pid: number | null;
  stop(): Promise<void>;
}

/** utime + stime of a process, in microseconds (Linux; null elsewhere). */
function cpuMicros(pid: number | null): number | null {
  if (pid === null) return null;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / 100; // clock ticks of 10 ms
  } catch {
    return null;
  }
}

function child(args: string[], env: NodeJS.ProcessEnv, cwd = ROOT): { process: ChildProcess; output: () => string } {
  const proc = spawn(process.execPath, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout!.on('data', (d) => (output = (output + d).slice(-20_000)));
  proc.stderr!.on('data', (d) => (output = (output + d).slice(-20_000)));
  return { process: proc, output: () => output };
}

async function stopChild(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill('SIGTERM');
  // A graceful stop writes the CPU profile; a hung one is killed.
  await exited(proc, 20_000).catch(() => {
    proc.kill('SIGKILL');
  });
}

/** The baseline: Fastify with nothing but one JSON route, in a process of its own. */
async function startBare(): Promise<Running> {
  const port = await freePort();
  const code = [
    "import Fastify from 'fastify';",
    'const app = Fastify();',
    "app.get('/', async () => ({ hello: 'world' }));",
    `await app.listen({ host: '127.0.0.1', port: ${port} });`,
  ].join('\n');
  const bare = child(['--input-type=module', '-e', code], {});
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(url, () => true, 30_000, bare.output);
  return { url: `${url}/`, key: '', pid: bare.process.pid ?? null, stop: () => stopChild(bare.process) };
}

/** Room for any load: the limiter still runs on every request, it just never refuses. */
const SYSTEM_ENV = {
  AETHERIUM_API_GATEWAY__RATE_LIMIT__MAX: '1000000000',
  AETHERIUM_LOG__LEVEL: 'warn',
};

/** How to start `aetherium`: as installed (the build when fresh), or its sources, for readable profiles. */
function aetherium(options: ApiReadsOptions): string[] {
  const profile = options.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`] : [];
  return options.sources
    ? [...profile, '--import', import.meta.resolve('tsx'), join(ROOT, 'src', 'cli', 'main.ts')]
    : [...profile, CLI];
}

async function startDevSystem(options: ApiReadsOptions): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'aetherium-bench-api-'));
  const port = await freePort();
  const dev = child(
    [...aetherium(options), 'dev', '--port', String(port), '--host', '127.0.0.1', '--data-dir', 'data'],
    SYSTEM_ENV,
    dir,
  );
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${url}/health`, () => true, 120_000, dev.output);
  } catch (err) {
    await stopChild(dev.process);
    throw err;
  }
  const key = readFileSync(join(dir, 'data', 'admin.key'), 'utf8').trim();
  return {
    url,
    key,
    pid: dev.process.pid ?? null,
    stop: async () => {
      await stopChild(dev.process);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startClusterSystem(options: ApiReadsOptions): Promise<Running> {
  const postgres = await startPostgres();
  const redis = await startRedis();
  const stops: (() => Promise<void>)[] = [() => redis.stop(), () => postgres.stop()];
  const stopAll = async () => {
    for (const stop of stops.splice(0)) await stop().catch(() => undefined);
  };
  try {
    const databaseUrl = await createDatabase(postgres.url);
    const port = await freePort();
    const server = child([...aetherium(options), 'server'], {
      ...SYSTEM_ENV,
      AETHERIUM_STORE__KIND: 'postgres',
      DATABASE_URL: databaseUrl,
      AETHERIUM_QUEUE__KIND: 'redis',
      AETHERIUM_EVENTS__KIND: 'redis',
      REDIS_URL: redis.url,
      AETHERIUM_API_GATEWAY__PORT: String(port),
      AETHERIUM_API_GATEWAY__HOST: '127.0.0.1',
    });
    stops.unshift(() => stopChild(server.process));
    const url = `http://127.0.0.1:${port}`;
    await waitForHttp(`${url}/health`, () => true, 120_000, server.output);
    const bootstrap = await fetch(`${url}/api/v1/tokens/bootstrap`, { method: 'POST' });
    const { token } = (await bootstrap.json()) as { token: string };
    await seedWorkers(databaseUrl, options.workers ?? 20);
    return { url, key: token, pid: server.process.pid ?? null, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * Worker rows as registered agents would leave them, written straight to the store (a real agent
 * needs the agent port's mutual TLS, which this benchmark does not exercise). A long TTL keeps
 * them healthy for the whole run.
 */
async function seedWorkers(url: string, count: number): Promise<void> {
  const store = await openStore({ kind: 'postgres', url });
  try {
    for (let i = 0; i < count; i++) {
      await store.upsertWorker(
        {
          id: `bench-worker-${String(i).padStart(3, '0')}`,
          hostname: `bench-host-${i}`,
          address: `10.0.0.${i + 1}`,
          zone: `zone-${i % 3}`,
          labels: { tier: i % 2 ? 'general' : 'compute' },
          capabilities: ['sandbox'],
          cpu_cores: 32,
          memory_mb: 65_536,
          disk_gb: 500,
          max_vms: 50,
          ttl_seconds: 3600,
          metadata: {},
        },
        new Date(),
      );
    }
  } finally {
    await store.close();
  }
}

/** VMs through the API, in a zone no worker has: they stay rows, waiting, costing no driver work. */
async function seedVms(system: Running, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const response = await fetch(`${system.url}/api/v1/vms`, {
      method: 'POST',
      headers: { authorization: `Bearer ${system.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: `bench-vm-${i}`, zone: 'bench-nowhere', vcpus: 1, memory_mb: 256 }),
    });
    if (response.status >= 300)
      throw new Error(`seeding VMs: POST /vms answered ${response.status}: ${await response.text()}`);
  }
}

async function hit(url: string, system: Pick<Running, 'key' | 'pid'>, options: ApiReadsOptions): Promise<Measured> {
  const headers = system.key ? { authorization: `Bearer ${system.key}` } : undefined;
  const connections = options.connections ?? 10;
  // A short warm-up first, so the JIT and the caches are in the state a busy server is in.
  await autocannon({ url, connections, duration: 1, ...(headers ? { headers } : {}) });
  const cpuBefore = cpuMicros(system.pid);
  const result = await autocannon({
    url,
    connections,
    duration: options.seconds ?? 3,
    ...(headers ? { headers } : {}),
  });
  const cpuAfter = cpuMicros(system.pid);
  const requests = result.requests.average * (options.seconds ?? 3);
  return {
    cpu_us_per_request:
      cpuBefore !== null && cpuAfter !== null && requests > 0 ? Math.round((cpuAfter - cpuBefore) / requests) : null,
    requests_per_second: Math.round(result.requests.average),
    p50_ms: result.latency.p50,
    p99_ms: result.latency.p99,
    failed: result.non2xx + result.errors + result.timeouts,
  };
}

type Measured = Omit<Row, 'mode' | 'target' | 'ratio'>;

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;

export async function measureApiReads(options: ApiReadsOptions = {}): Promise<Row[]> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const rows: Row[] = [];
  for (const mode of options.modes ?? (['dev', 'cluster'] as Mode[])) {
    log(`bench:api ${mode}: starting the system and a bare Fastify`);
    const bare = await startBare();
    const bareRuns: Measured[] = [];
    const measured: { target: string; result: Measured; ratio: number }[] = [];
    try {
      const system = mode === 'dev' ? await startDevSystem(options) : await startClusterSystem(options);
      try {
        await seedVms(system, options.vms ?? 20);
        // Bare, route, bare, route, …, bare: each route against the bare runs either side of it,
        // so load that comes and goes on a shared machine weighs on both sides of a ratio alike.
        bareRuns.push(await hit(bare.url, bare, options));
        for (const route of options.routes ?? READ_ROUTES) {
          log(`bench:api ${mode}: GET ${route}`);
          const result = await hit(`${system.url}${route}`, system, options);
          bareRuns.push(await hit(bare.url, bare, options));
          const around = mean(bareRuns.slice(-2).map((r) => r.requests_per_second));
          measured.push({ target: `GET ${route}`, result, ratio: result.requests_per_second / around });
        }
      } finally {
        await system.stop();
      }
    } finally {
      await bare.stop();
    }
    const cpu = bareRuns.map((r) => r.cpu_us_per_request);
    rows.push({
      mode,
      target: 'bare fastify',
      requests_per_second: Math.round(mean(bareRuns.map((r) => r.requests_per_second))),
      p50_ms: Math.round(mean(bareRuns.map((r) => r.p50_ms)) * 100) / 100,
      p99_ms: Math.round(mean(bareRuns.map((r) => r.p99_ms)) * 100) / 100,
      failed: bareRuns.reduce((sum, r) => sum + r.failed, 0),
      cpu_us_per_request: cpu.every((c) => c !== null) ? Math.round(mean(cpu as number[])) : null,
      ratio: 1,
    });
    for (const { target, result, ratio } of measured) {
      rows.push({ mode, target, ...result, ratio: Math.round(ratio * 100) / 100 });
    }
  }
  return rows;
}

export function formatRows(rows: Row[]): string {
  const header = ['mode', 'target', 'req/s', 'p50 ms', 'p99 ms', 'ratio', 'failed', 'server CPU µs/req'];
  const lines = rows.map((r) => [
    r.mode,
    r.target,
    String(r.requests_per_second),
    String(r.p50_ms),
    String(r.p99_ms),
    r.ratio.toFixed(2),
    String(r.failed),
    r.cpu_us_per_request === null ? '-' : String(r.cpu_us_per_request),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  return [header, ...lines].map((cells) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ')).join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const modes = (process.env.MODES ?? 'dev,cluster').split(',').map((m) => m.trim()) as Mode[];
  const rows = await measureApiReads({
    modes,
    seconds: Number(process.env.SECONDS ?? 3),
    connections: Number(process.env.CONNECTIONS ?? 10),
    ...(process.env.ROUTES ? { routes: process.env.ROUTES.split(',') } : {}),
    sources: process.env.SOURCES === '1',
    ...(process.env.BENCH_CPU_PROF ? { cpuProfDir: process.env.BENCH_CPU_PROF } : {}),
  });
  process.stdout.write(`${formatRows(rows)}\n`);
  process.stdout.write('(the CPU is shared with the load generator and anything else running: compare ratios)\n');
}
