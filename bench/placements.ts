/**
 * `npm run bench:placements`: committed placements per second, one transaction per placement (the
 * scheduler loop's old way: `Store.placeTask` after each decision) against one transaction per
 * batch (`Store.placeTasks` with the loop's batch size, and the whole `SchedulerLoop.pass`: pending
 * list, VMs, snapshot, decisions, commit, events, queue), on a real Postgres started for the run and
 * on PGlite. Every run starts from empty tables, seeded with the same fleet and pending creates, and
 * ends by checking the books: per worker, what its reserved VMs add up to is exactly its `used_*`
 * and `vm_count`, never above its capacity, and each reserved VM has its create scheduled there.
 * A last run has two loops (two replicas) race for a fleet too small for the creates.
 */
import { MemoryEventBus } from '../src/adapters/events/memory-event-bus.ts';
import { MemoryTaskQueue } from '../src/adapters/queue/memory-task-queue.ts';
import { openPg } from '../src/adapters/storage/pg-client.ts';
import { openPglite } from '../src/adapters/storage/pglite-client.ts';
import type { SqlClient } from '../src/adapters/storage/sql-client.ts';
import { SqlStore } from '../src/adapters/storage/sql-store.ts';
import { configSchema } from '../src/config/schema.ts';
import { type CreateTask, newId, newTask, placementRecord, type WorkerRegistration } from '../src/domain/index.ts';
import type { BatchPlacement, Store } from '../src/ports/store.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { ClusterSnapshot, place, type SchedulerOptions } from '../src/scheduler/index.ts';
import { Ledger } from '../src/server/ledger/ledger.ts';
import { requestOf, SchedulerLoop } from '../src/server/scheduler-loop.ts';
import { createDatabase, startPostgres } from '../test/harness/postgres.ts';

const defaults = configSchema.parse({}).scheduler;
const BATCH = defaults.batch_size;
const WORKERS = 100;
/** Room for every create of a run: what is measured is the commit, not what stays pending. */
const ROOMY = { cpu_cores: 256, memory_mb: 1_048_576, disk_gb: 100_000, max_vms: 1000 };

interface Engine {
  label: string;
  /** The migrated database, and the client under its store (for seeding and the books). */
  store: Store;
  client: SqlClient;
  sizes: { single: number; batched: number };
}

function registration(
  i: number,
  resources: Pick<WorkerRegistration, 'cpu_cores' | 'memory_mb' | 'disk_gb' | 'max_vms'>,
) {
  return {
    id: `bw-${String(i).padStart(3, '0')}`,
    hostname: `bench-${i}`,
    address: '127.0.0.1:9100',
    zone: `zone-${i % 3}`,
    labels: {},
    capabilities: ['process'],
    ttl_seconds: 3600,
    metadata: {},
    ...resources,
  };
}

/**
 * The fleet, and `count` pending creates of mixed sizes. Seeding is not what is measured: the VMs
 * and their creates are written by two set-based INSERTs (the rows `insertVmWithTask` writes, one
 * millisecond apart so the pending order is fixed), and the tables analysed, as autovacuum would
 * have done on a database in use.
 */
async function seed(
  store: Store,
  client: SqlClient,
  workers: number,
  resources: typeof ROOMY,
  count: number,
  size: (n: number) => number = (n) => 1 + (n % 2),
) {
  const now = new Date();
  for (let i = 0; i < workers; i++) await store.upsertWorker(registration(i, resources), now);
  const ns = Array.from({ length: count }, (_, n) => n);
  const vmIds = ns.map(() => newId());
  const created = ns.map((n) => new Date(now.getTime() - (count - n)).toISOString());
  const payload = JSON.stringify({ worker_labels: {}, strategy: null });
  await client.transaction(async (tx) => {
    await tx.query(
      `INSERT INTO vms (id, name, status, driver, vcpus, memory_mb, disk_gb, created_at, updated_at)
       SELECT id, 'bench-' || id, 'created', 'process', vcpus, memory_mb, disk_gb, created_at, created_at
       FROM unnest($1::uuid[], $2::int[], $3::int[], $4::int[], $5::timestamptz[])
            AS v(id, vcpus, memory_mb, disk_gb, created_at)`,
      [vmIds, ns.map(size), ns.map((n) => 256 * (1 + (n % 4))), ns.map((n) => 1 + (n % 5)), created],
    );
    await tx.query(
      `INSERT INTO tasks (id, type, status, vm_id, payload, max_retries, created_at, updated_at)
       SELECT id, 'vm:create', 'pending', vm_id, $3::jsonb, $4, created_at, created_at
       FROM unnest($1::uuid[], $2::uuid[], $5::timestamptz[]) AS t(id, vm_id, created_at)`,
      [
        ns.map(() => newId()),
        vmIds,
        payload,
        newTask('vm:create', { worker_labels: {}, strategy: null }).max_retries,
        created,
      ],
    );
  });
  await client.exec('ANALYZE workers, vms, tasks');
}

/** The pending creates with their VMs, oldest first (as the loop reads them), and a snapshot. */
async function pendingWork(store: Store, count: number) {
  const tasks = (await store.listPendingTasks(count)) as CreateTask[];
  const vms = new Map((await store.getVms(tasks.map((t) => t.vm_id!))).map((vm) => [vm.id, vm]));
  const snapshot = new ClusterSnapshot((await store.listWorkers()).map((w) => ({ ...w, creates_in_flight: 0 })));
  return { work: tasks.map((task) => ({ task, vm: vms.get(task.vm_id!)! })), snapshot };
}

const options = (): SchedulerOptions => ({ now: new Date(), strategy: defaults.strategy, maxCreatesInFlight: 1e9 });

/** The old loop's commit: decide, then one transaction for that one placement. */
async function oneAtATime(store: Store, count: number): Promise<number> {
  const { work, snapshot } = await pendingWork(store, count);
  let placed = 0;
  const started = performance.now();
  for (const { task, vm } of work) {
    const request = requestOf(task, vm);
    const { placement, explanation } = place(snapshot, request, options());
    if (!placement) continue;
    snapshot.reserve(placement.worker_id, request);
    const record = placementRecord(explanation, null, new Date());
    if ((await store.placeTask(task.id, vm.id, placement.worker_id, placement.driver, record)) === 'placed') placed++;
  }
  return rate(placed, started, count);
}

/** Decide a batch in memory, then one transaction for the whole batch. */
async function batched(store: Store, count: number): Promise<number> {
  const { work, snapshot } = await pendingWork(store, count);
  let placed = 0;
  const started = performance.now();
  for (let offset = 0; offset < work.length; offset += BATCH) {
    const batch: BatchPlacement[] = [];
    for (const { task, vm } of work.slice(offset, offset + BATCH)) {
      const request = requestOf(task, vm);
      const { placement, explanation } = place(snapshot, request, options());
      if (!placement) continue;
      snapshot.reserve(placement.worker_id, request);
      const record = placementRecord(explanation, null, new Date());
      batch.push({
        task_id: task.id,
        vm_id: vm.id,
        worker_id: placement.worker_id,
        driver: placement.driver,
        placement: record,
      });
    }
    placed += (await store.placeTasks(batch, new Date())).filter((o) => o === 'placed').length;
  }
  return rate(placed, started, count);
}

function loop(store: Store, queue = new MemoryTaskQueue()): SchedulerLoop {
  const schedulerOptions = {
    intervalMs: defaults.interval,
    batchSize: BATCH,
    strategy: defaults.strategy,
    // Nothing consumes the queue here: no cap on the creates in flight.
    maxCreatesInFlight: 1e9,
    redeliverAfterMs: defaults.redeliver_after,
  };
  return new SchedulerLoop(new Ledger(store, new MemoryEventBus(1000)), queue, schedulerOptions, silentLogger);
}

/** Scheduled creates (placed ones) in the database. */
async function scheduledCount(client: SqlClient): Promise<number> {
  const rows = await client.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM tasks WHERE type = 'vm:create' AND status = 'scheduled'`,
  );
  return rows[0]!.n;
}

/** `loops` loops pass side by side until a round in which none of them places anything. */
async function passes(client: SqlClient, loops: SchedulerLoop[]): Promise<{ placed: number; seconds: number }> {
  const started = performance.now();
  let before = -1;
  for (;;) {
    await Promise.all(loops.map((l) => l.pass()));
    const now = await scheduledCount(client);
    if (now === before) break;
    before = now;
  }
  return { placed: before, seconds: (performance.now() - started) / 1000 };
}

function rate(placed: number, started: number, expected: number): number {
  if (placed !== expected) throw new Error(`placed ${placed} of ${expected}: the fleet should hold them all`);
  return placed / ((performance.now() - started) / 1000);
}

/**
 * Throws unless, per worker, its reserved VMs add up to its `used_*` and `vm_count` exactly, which
 * never exceed its capacity, and every reserved VM has exactly one scheduled create on that worker.
 */
async function checkBooks(client: SqlClient): Promise<{ workers: number; reserved: number }> {
  const bad = await client.query<Record<string, unknown>>(
    `SELECT w.id, w.used_cpu_cores, w.used_memory_mb, w.used_disk_gb, w.vm_count, r.cpu, r.memory, r.disk, r.n
     FROM workers w
     LEFT JOIN (
       SELECT worker_id, sum(vcpus)::bigint AS cpu, sum(memory_mb)::bigint AS memory, sum(disk_gb)::bigint AS disk,
              count(*)::bigint AS n
       FROM vms WHERE reserved GROUP BY worker_id
     ) r ON r.worker_id = w.id
     WHERE w.used_cpu_cores <> COALESCE(r.cpu, 0) OR w.used_memory_mb <> COALESCE(r.memory, 0)
        OR w.used_disk_gb <> COALESCE(r.disk, 0) OR w.vm_count <> COALESCE(r.n, 0)
        OR w.used_cpu_cores > w.cpu_cores OR w.used_memory_mb > w.memory_mb OR w.used_disk_gb > w.disk_gb
        OR w.vm_count > w.max_vms`,
  );
  if (bad.length > 0) throw new Error(`overbooked or unbalanced workers: ${JSON.stringify(bad.slice(0, 3))}`);
  const orphans = await client.query<Record<string, unknown>>(
    `SELECT v.id FROM vms v
     WHERE v.reserved AND (SELECT count(*) FROM tasks t
                           WHERE t.vm_id = v.id AND t.type = 'vm:create' AND t.status = 'scheduled'
                             AND t.worker_id = v.worker_id) <> 1
     LIMIT 3`,
  );
  if (orphans.length > 0)
    throw new Error(`reserved VMs without exactly one scheduled create: ${JSON.stringify(orphans)}`);
  const totals = await client.query<{ workers: number; reserved: number }>(
    `SELECT (SELECT count(*)::int FROM workers) AS workers, (SELECT count(*)::int FROM vms WHERE reserved) AS reserved`,
  );
  return totals[0]!;
}

interface Result {
  engine: string;
  mode: string;
  placements: number;
  perSecond: number;
  books: string;
  /** The whole run: seeding, the measured part and the books. */
  seconds: number;
}

/** Every run starts from empty tables (cheaper than a new database, PGlite's above all). */
async function fresh(engine: Engine): Promise<Engine> {
  await engine.client.exec('TRUNCATE tasks, vms, workers CASCADE');
  return engine;
}

async function run(engine: Engine): Promise<Result[]> {
  const results: Result[] = [];
  const measure = async (mode: string, count: number, go: (store: Store, client: SqlClient) => Promise<number>) => {
    const began = performance.now();
    const { store, client } = await fresh(engine);
    await seed(store, client, WORKERS, ROOMY, count);
    const perSecond = await go(store, client);
    const books = await checkBooks(client);
    results.push({
      engine: engine.label,
      mode,
      placements: count,
      perSecond,
      books: `ok (${books.reserved} reserved)`,
      seconds: (performance.now() - began) / 1000,
    });
  };
  await measure('one at a time: placeTask per placement', engine.sizes.single, (store) =>
    oneAtATime(store, engine.sizes.single),
  );
  await measure(`batched: placeTasks, ${BATCH} per transaction`, engine.sizes.batched, (store) =>
    batched(store, engine.sizes.batched),
  );
  await measure(`SchedulerLoop.pass end to end, batch ${BATCH}`, engine.sizes.batched, async (store, client) => {
    const { placed, seconds } = await passes(client, [loop(store)]);
    if (placed !== engine.sizes.batched) throw new Error(`the loop placed ${placed} of ${engine.sizes.batched}`);
    return placed / seconds;
  });

  // Two replicas' loops race for a fleet with room for 20 × 16 one-vcpu VMs of the 500 asked.
  const began = performance.now();
  const { store, client } = await fresh(engine);
  const tight = { cpu_cores: 16, memory_mb: 1_048_576, disk_gb: 100_000, max_vms: 1000 };
  await seed(store, client, 20, tight, 500, () => 1);
  const { placed, seconds } = await passes(client, [loop(store), loop(store)]);
  const books = await checkBooks(client);
  if (placed !== 320 || books.reserved !== 320) throw new Error(`two loops placed ${placed} where exactly 320 fit`);
  results.push({
    engine: engine.label,
    mode: 'two loops racing, room for 320 of 500',
    placements: placed,
    perSecond: placed / seconds,
    books: `ok (${books.reserved} reserved, none over)`,
    seconds: (performance.now() - began) / 1000,
  });
  return results;
}

const fmt = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: 0 });

const started = performance.now();
const server = await startPostgres();
const results: Result[] = [];
try {
  const engines = [
    { label: 'postgres', open: async () => openPg(await createDatabase(server.url, 'aetherium_bench')) },
    { label: 'pglite', open: () => openPglite() },
  ];
  const sizes = { postgres: { single: 600, batched: 4_000 }, pglite: { single: 400, batched: 2_000 } };
  for (const { label, open } of engines) {
    const client = await open();
    const store = new SqlStore(client);
    try {
      await store.migrate();
      results.push(...(await run({ label, store, client, sizes: sizes[label as keyof typeof sizes] })));
    } finally {
      await store.close();
    }
  }
} finally {
  await server.stop();
}

console.log(
  `placements committed per second: ${WORKERS} workers, ${defaults.strategy}, scheduler.batch_size ${BATCH}` +
    ' (decisions included; every run from empty tables, its books checked after)',
);
const widths = [9, 44, 11, 14, 32, 6];
const line = (cells: string[]) =>
  cells.map((c, i) => (i === 0 || i === 1 || i === 4 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
console.log(line(['engine', 'mode', 'placements', 'placements/s', 'books', 'run s']));
for (const r of results)
  console.log(line([r.engine, r.mode, fmt(r.placements), fmt(r.perSecond), r.books, r.seconds.toFixed(1)]));
for (const engine of ['postgres', 'pglite']) {
  const single = results.find((r) => r.engine === engine && r.mode.startsWith('one at a time'))!;
  const batch = results.find((r) => r.engine === engine && r.mode.startsWith('batched'))!;
  const pass = results.find((r) => r.engine === engine && r.mode.startsWith('SchedulerLoop'))!;
  console.log(
    `${engine}: batched is ${(batch.perSecond / single.perSecond).toFixed(1)}× one at a time,` +
      ` the whole pass ${(pass.perSecond / single.perSecond).toFixed(1)}×`,
  );
}
console.log(`(${((performance.now() - started) / 1000).toFixed(1)} s in all)`);
