/**
 * One fault run: a real cluster (2 replicas, workers in their own network namespaces, Postgres,
 * Redis, etcd), a steady load through the API and a resuming events client; the faults of
 * faults.ts injected in turn, `rounds` times; then the load stops, the cluster is left to
 * settle, whatever the load left is deleted, and the invariants are checked on what was
 * collected. The short form (inside `npm test`) and the long one (`npm run test:faults`) differ
 * only in their profile. See docs/FAULTS.md.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { type Cluster, startCluster, type WorkerSpec } from '../harness/cluster.ts';
import { ResumingEventClient } from './events-client.ts';
import { FAULTS, type Fault, type FaultContext, type Injected, PLANNED_FAULTS } from './faults.ts';
import {
  capacityMatches,
  type CheckResult,
  eventsOnceInOrder,
  noTaskLost,
  noTaskStuck,
  noVmOnTwoHosts,
  noVmStartedTwice,
  processesAlive,
  type VmRow,
  type WorkerUsage,
} from './invariants.ts';
import { Load } from './load.ts';
import { FINAL_TASK, type FaultTimes, measure, type TaskRow } from './measures.ts';
import { type FaultRow, report } from './report.ts';
import { InitSampler, installLaunchRecorder, liveInits } from './vm-launches.ts';

export interface SuiteProfile {
  name: string;
  rounds: number;
  /** Load: create → running → exec → delete cycles started per second, and at most under way. */
  rate: number;
  maxInFlight: number;
  /** How long each VM of the load lives between its two commands. */
  holdMs: number;
  workers: WorkerSpec[];
  /** Load before the first fault. */
  warmupMs: number;
  /** Load after a fault's target is back, before the next fault. */
  settleMs: number;
  /** A task may take this long, after the faults end, to become final. */
  stuckBoundMs: number;
  detectTimeoutMs: number;
  backTimeoutMs: number;
  faults: Fault[];
}

const zones = (n: number): WorkerSpec[] =>
  Array.from({ length: n }, (_, i) => ({
    id: `w${i + 1}`,
    zone: i % 2 === 0 ? 'zone-a' : 'zone-b',
    // The VM faults pin a VM of their own to one worker by this label.
    labels: { host: `w${i + 1}` },
  }));

export const SHORT: SuiteProfile = {
  name: 'short',
  rounds: 1,
  rate: 2,
  maxInFlight: 12,
  holdMs: 2000,
  workers: zones(2),
  warmupMs: 3000,
  settleMs: 3000,
  stuckBoundMs: 60_000,
  detectTimeoutMs: 30_000,
  backTimeoutMs: 60_000,
  faults: FAULTS,
};

export const LONG: SuiteProfile = {
  ...SHORT,
  name: 'long',
  rounds: 3,
  rate: 3,
  maxInFlight: 24,
  holdMs: 3000,
  workers: zones(3),
  warmupMs: 5000,
  settleMs: 8000,
  stuckBoundMs: 120_000,
};

/** FAULTS=long picks the long profile; FAULTS_ROUNDS, FAULTS_RATE and FAULTS_WORKERS override. */
export function profileFromEnv(env: NodeJS.ProcessEnv = process.env): SuiteProfile {
  const base = env.FAULTS === 'long' ? LONG : SHORT;
  const int = (name: string, fallback: number) => {
    const value = env[name];
    if (value === undefined || value === '') return fallback;
    const n = Number.parseInt(value, 10);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name}=${value}: expected a positive integer`);
    return n;
  };
  return {
    ...base,
    rounds: int('FAULTS_ROUNDS', base.rounds),
    rate: int('FAULTS_RATE', base.rate),
    maxInFlight: Math.max(base.maxInFlight, 8 * int('FAULTS_RATE', base.rate)),
    workers: zones(int('FAULTS_WORKERS', base.workers.length)),
  };
}

export interface SuiteResult {
  rows: FaultRow[];
  checks: CheckResult[];
  ok: boolean;
  report: string;
  /** The processes' last output: what a failing run needs. */
  logs: string;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function pollUntil<T>(check: () => Promise<T | null>, timeoutMs: number, stepMs = 100): Promise<T | null> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await check().catch(() => null);
    if (value !== null && value !== false) return value;
    await sleep(stepMs);
  }
  return null;
}

const time = (value: Date | null) => (value === null ? null : value.getTime());

async function readTasks(db: pg.Pool): Promise<TaskRow[]> {
  const { rows } = await db.query(
    `SELECT id, type, status, vm_id, worker_id, retry_count, error,
            COALESCE(placement->'moved_from', '[]'::jsonb) AS moved_from, created_at, updated_at, completed_at
       FROM tasks`,
  );
  return rows.map((r) => ({
    ...r,
    moved_from: Array.isArray(r.moved_from) ? r.moved_from : [],
    created_at: r.created_at.getTime(),
    updated_at: r.updated_at.getTime(),
    completed_at: time(r.completed_at),
  }));
}

async function readVms(db: pg.ClientBase | pg.Pool): Promise<VmRow[]> {
  const { rows } = await db.query(
    'SELECT id, name, status, worker_id, reserved, deleted_at, vcpus, memory_mb, disk_gb FROM vms',
  );
  return rows.map((r) => ({ ...r, deleted_at: time(r.deleted_at) }));
}

const USAGE_SQL =
  'SELECT id, used_cpu_cores, used_memory_mb::int AS used_memory_mb, used_disk_gb::int AS used_disk_gb, vm_count FROM workers ORDER BY id';

/** Workers and VMs read in one snapshot: placements and releases change both in one transaction. */
async function capacitySnapshot(db: pg.Pool): Promise<{ sql: WorkerUsage[]; vms: VmRow[] }> {
  const client = await db.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const sql = (await client.query(USAGE_SQL)).rows as WorkerUsage[];
    const vms = await readVms(client);
    await client.query('COMMIT');
    return { sql, vms };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

export async function runFaultSuite(
  profile: SuiteProfile,
  log: (line: string) => void = console.log,
): Promise<SuiteResult> {
  const dir = mkdtempSync(join(tmpdir(), 'aetherium-faults-'));
  const recorder = installLaunchRecorder(dir);
  const started = Date.now();
  const cluster: Cluster = await startCluster({
    servers: 2,
    workers: profile.workers,
    env: { AETHERIUM_WORKER__DRAIN_DEADLINE: '3s' },
    // Durable commits, as in production: the harness's default (off) loses the last commits of a crash.
    postgres: { settings: { synchronous_commit: 'on' } },
    workerEnv: { PATH: `${recorder.pathDir}:${process.env.PATH ?? '/usr/bin:/bin'}` },
  });
  log(`[faults] cluster up in ${Date.now() - started} ms (${profile.workers.length} workers, 2 replicas)`);
  const hosts = new Map([...cluster.workers.values()].map((w) => [w.stateDir, w.spec.id]));
  const sampler = new InitSampler(hosts);
  const db = new pg.Pool({ connectionString: cluster.databaseUrl, max: 3 });
  db.on('error', () => undefined); // the Postgres fault drops its connections
  const urls = cluster.servers.map((s) => s.url);
  const events = new ResumingEventClient(urls, cluster.adminKey);
  const load = new Load({
    replicas: urls,
    key: cluster.adminKey,
    rate: profile.rate,
    maxInFlight: profile.maxInFlight,
    holdMs: profile.holdMs,
    prefix: 'fl',
  });
  let turn = 0;
  /** Through the first replica that answers without a 5xx, in turn; null when none does. */
  async function request<T>(method: string, path: string, body: object | undefined, timeoutMs: number) {
    for (let i = 0; i < urls.length; i++) {
      const base = urls[turn++ % urls.length]!;
      try {
        const response = await fetch(`${base}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${cluster.adminKey}`,
            ...(body ? { 'content-type': 'application/json' } : {}),
          },
          ...(body ? { body: JSON.stringify(body) } : {}),
          signal: AbortSignal.timeout(timeoutMs),
        });
        if (response.status >= 500) continue;
        return { status: response.status, body: (await response.json()) as T };
      } catch {
        // the next replica
      }
    }
    return null;
  }
  const ctx: FaultContext = {
    cluster,
    events,
    load,
    send<T>(method: string, path: string, body?: object) {
      return request<T>(method, path, body, 90_000);
    },
    // A read answers quickly or not at all: the next replica is asked after 3 s.
    probe<T>(path: string) {
      return request<T>('GET', path, undefined, 3000);
    },
  };
  const logs = () =>
    [...cluster.servers, ...cluster.workers.values()]
      .map((p) => `--- ${p.name}\n${p.output().slice(-4000)}`)
      .join('\n');

  try {
    sampler.start();
    await events.start();
    load.start();
    await sleep(profile.warmupMs);

    const times: FaultTimes[] = [];
    const snapshots: { label: string; sql: WorkerUsage[]; api: WorkerUsage[] | null; vms: VmRow[] }[] = [];
    for (let round = 0; round < profile.rounds; round++) {
      for (const fault of profile.faults) {
        const preparedAt = Date.now();
        // A fault that cannot even be set up (no room for its own VM, say) is a finding too: it
        // goes into the table as never noticed, and the invariants are still checked and printed.
        const injected = await fault.inject(ctx, round).catch(
          (err: unknown): Injected => ({
            target: '-',
            note: `could not inject: ${(err as Error).message.slice(0, 200)}`,
            heal: async () => undefined,
          }),
        );
        if (injected.note?.startsWith('could not inject')) {
          log(`[faults] round ${round + 1} ${fault.name}: ${injected.note}`);
          times.push({
            fault: fault.name,
            target: '-',
            note: injected.note,
            injectedAt: preparedAt,
            noticedAt: null,
            healStartedAt: preparedAt,
            backAt: null,
            windowEnd: Date.now(),
          });
          continue;
        }
        const injectedAt = injected.at ?? preparedAt;
        const noticedAt = await pollUntil(() => fault.noticed(ctx, injected, injectedAt), profile.detectTimeoutMs);
        if (fault.holdMs > 0) await sleep(fault.holdMs);
        const healStartedAt = Date.now();
        await injected.heal();
        const backAt = await pollUntil(
          async () => ((await fault.healthy(ctx, injected)) ? Date.now() : null),
          profile.backTimeoutMs,
        );
        await sleep(profile.settleMs);
        const row = {
          fault: fault.name,
          target: injected.target,
          ...(injected.note ? { note: injected.note } : {}),
          injectedAt,
          noticedAt,
          healStartedAt,
          backAt,
          windowEnd: Date.now(),
        };
        times.push(row);
        log(
          `[faults] round ${round + 1} ${fault.name} on ${row.target}: noticed after ${noticedAt === null ? 'never' : noticedAt - injectedAt} ms, back ${backAt === null ? 'never' : backAt - healStartedAt} ms after heal`,
        );
        // Mid-run, under load: only the database's own snapshot can be compared.
        const snapshot = await capacitySnapshot(db);
        snapshots.push({ label: `after ${fault.name}#${round + 1}`, sql: snapshot.sql, api: null, vms: snapshot.vms });
      }
    }
    const faultsEndedAt = Date.now();
    await load.stop();
    const quietBy = faultsEndedAt + profile.stuckBoundMs;
    const openTasks = async () =>
      (await readTasks(db)).filter((t) => !FINAL_TASK.has(t.status)).length === 0 ? true : null;
    await pollUntil(openTasks, Math.max(0, quietBy - Date.now()), 500);
    const tasksAtQuiet = await readTasks(db);
    const stuck = noTaskStuck(tasksAtQuiet, faultsEndedAt, profile.stuckBoundMs, Date.now());

    // At rest: the API's view of the workers must match too.
    const rest = await capacitySnapshot(db);
    const apiWorkers = (await ctx.probe<{ workers: WorkerUsage[] }>('/api/v1/workers'))?.body.workers ?? [];
    snapshots.push({ label: 'at rest', sql: rest.sql, api: apiWorkers, vms: rest.vms });

    // Whatever the load could not delete (a delete that failed during a fault) goes now.
    for (const vm of rest.vms.filter((v) => v.deleted_at === null)) {
      for (let attempt = 0; attempt < 3; attempt++) {
        const answer = await fetch(`${urls[attempt % urls.length]}/api/v1/vms/${vm.id}?wait=true&timeout=60`, {
          method: 'DELETE',
          headers: { authorization: `Bearer ${cluster.adminKey}` },
        }).catch(() => null);
        if (
          answer &&
          (answer.status === 404 ||
            (answer.ok && ((await answer.json()) as { status?: string }).status === 'completed'))
        )
          break;
      }
    }
    await pollUntil(openTasks, 30_000, 500);
    const leftover = rest.vms.filter((v) => v.deleted_at === null).length;

    const tasks = await readTasks(db);
    const end = await capacitySnapshot(db);
    const endApi = (await ctx.probe<{ workers: WorkerUsage[] }>('/api/v1/workers'))?.body.workers ?? [];
    snapshots.push({ label: 'at the end', sql: end.sql, api: endApi, vms: end.vms });
    sampler.sample();
    sampler.stop();
    const finalInits = liveInits(hosts);
    const launches = recorder.read(hosts);

    const redis = new Redis(cluster.redis.url, { lazyConnect: true, maxRetriesPerRequest: 3 });
    await redis.connect();
    const entries = (await redis.xrange('aetherium:events', `${(events.baseline ?? 0) + 1}-0`, '+')) as [
      string,
      string[],
    ][];
    await redis.quit();
    const streamIds = entries.map(([id]) => Number(id.split('-')[0]));
    await events.caughtUp(Math.max(0, ...streamIds), 15_000);
    events.stop();

    const checks: CheckResult[] = [
      noTaskLost(load.vms, tasks, end.vms),
      // Judged at the moment the bound ran out, not after the clean-up.
      {
        ...stuck,
        ok: stuck.ok && tasks.every((t) => FINAL_TASK.has(t.status)),
        detail: tasks.every((t) => FINAL_TASK.has(t.status))
          ? stuck.detail
          : `${stuck.detail}; after the clean-up still open: ${tasks.filter((t) => !FINAL_TASK.has(t.status)).length}`,
      },
      noVmStartedTwice(launches, sampler.overlaps, end.vms),
      noVmOnTwoHosts(launches, sampler.seenOn, finalInits, end.vms),
      capacityMatches(snapshots),
      eventsOnceInOrder(events.received, events.connections, events.baseline ?? 0, streamIds),
      processesAlive(
        [...cluster.servers, ...cluster.workers.values()].map((p) => ({
          name: p.name,
          alive: p.child !== null && p.child.exitCode === null && p.child.signalCode === null,
          tail: p.output(),
        })),
      ),
    ];
    const rows: FaultRow[] = times.map((t) => ({ ...t, ...measure(t, load.attempts, tasks) }));
    const failedOps = load.attempts.filter((a) => !a.ok).length;
    const boots = load.vms
      .filter((v) => v.bootStatus === 'running' && v.bootMs !== null)
      .map((v) => v.bootMs!)
      .sort((a, b) => a - b);
    const perHost = new Map<string, number>();
    for (const l of launches) perHost.set(l.host ?? '?', (perHost.get(l.host ?? '?') ?? 0) + 1);
    const text = report({
      title: `fault suite (${profile.name}): ${profile.rounds} round(s) of ${profile.faults.length} faults, ${profile.workers.length} workers, 2 replicas`,
      rows,
      checks,
      planned: PLANNED_FAULTS,
      summary: [
        `load: ${profile.rate} cycles/s, each VM ${profile.holdMs / 1000} s between its two commands (at most ${profile.maxInFlight} under way, ${load.skipped} starts skipped): ${load.vms.length} VMs created, ${load.cycles()} deleted by the load, ${leftover} by the clean-up; ${load.attempts.length} ops (${failedOps} failed); ${tasks.length} tasks`,
        `boots: median ${boots[Math.floor(boots.length / 2)] ?? '-'} ms, slowest ${boots.at(-1) ?? '-'} ms; launches per host: ${[...perHost].map(([h, n]) => `${h} ${n}`).join(', ')}; ${sampler.samples} samples of the hosts; ${Math.round((Date.now() - started) / 1000)} s in all`,
      ].join('\n'),
    });
    return { rows, checks, ok: checks.every((c) => c.ok), report: text, logs: logs() };
  } catch (err) {
    (err as Error).message += `\n${logs()}`;
    throw err;
  } finally {
    sampler.stop();
    events.stop();
    await load.stop().catch(() => undefined);
    await db.end().catch(() => undefined);
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
