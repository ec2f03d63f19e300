/**
 * `npm run bench:scheduler`: placements per second of the pure scheduler at 100, 1,000 and 10,000
 * workers (zone and label constraints in the mix), and of the whole placement path — the pure
 * decision plus the reservation's conditional UPDATE — on a real Postgres started for the run.
 */
import { openStore } from '../src/adapters/storage/open-store.ts';
import { newId, newTask, placementRecord, type Task, type Vm } from '../src/domain/index.ts';
import { ClusterSnapshot, place, type SchedulerOptions } from '../src/scheduler/index.ts';
import { createDatabase, startPostgres } from '../test/harness/postgres.ts';
import { makeRequests, makeWorkers } from './cluster-fixture.ts';

const now = new Date();
const options: SchedulerOptions = { now, strategy: 'binpack', maxCreatesInFlight: 1_000_000 };

/**
 * The scheduler loop builds one snapshot per pass and places up to a batch of tasks against it, so
 * the benchmark does the same: a fresh snapshot per batch of 1,000 (its build timed apart).
 */
function pure(workers: number, placements: number, batch = 1000) {
  const fleet = makeWorkers(workers, now);
  const requests = makeRequests(placements);
  const fresh = () => new ClusterSnapshot(fleet.map((w) => ({ ...w })));
  // Warm up the JIT, so the measured run is steady-state.
  const warm = fresh();
  for (const r of requests.slice(0, batch)) place(warm, r, options);

  let placed = 0;
  let placeMs = 0;
  let buildMs = 0;
  for (let offset = 0; offset < requests.length; offset += batch) {
    const buildStart = performance.now();
    const snapshot = fresh();
    buildMs += performance.now() - buildStart;
    const start = performance.now();
    for (const request of requests.slice(offset, offset + batch)) {
      const { placement } = place(snapshot, request, options);
      if (placement) {
        snapshot.reserve(placement.worker_id, request);
        placed++;
      }
    }
    placeMs += performance.now() - start;
  }
  const passes = Math.ceil(requests.length / batch);
  return {
    perSecond: placements / (placeMs / 1000),
    usPerPlacement: (placeMs * 1000) / placements,
    buildMs: buildMs / passes,
    placed,
  };
}

/** A request nothing can hold: the scheduler checks every worker to explain why. */
function pendingCost(workers: number, rounds = 200): number {
  const snapshot = new ClusterSnapshot(makeWorkers(workers, now));
  const request = { vcpus: 1, memory_mb: 512, disk_gb: 1, labels: { tier: 'none-such' as string } };
  for (let i = 0; i < 20; i++) place(snapshot, request, options);
  const start = performance.now();
  for (let i = 0; i < rounds; i++) place(snapshot, { ...request, seed: String(i) }, options);
  return ((performance.now() - start) * 1000) / rounds;
}

async function withPostgres(workers: number, placements: number, concurrency: number) {
  const server = await startPostgres();
  try {
    const store = await openStore({ kind: 'postgres', url: await createDatabase(server.url, 'aetherium_bench') });
    const fleet = makeWorkers(workers, now);
    for (const w of fleet) {
      await store.upsertWorker({ ...w, hostname: w.id, address: '127.0.0.1', metadata: {} }, now);
      await store.setWorkerStatus(w.id, w.status);
    }
    const requests = makeRequests(placements);
    const tasks: { task: Task; vm: Vm }[] = [];
    for (const request of requests) {
      const id = newId();
      const vm: Vm = {
        id,
        name: `bench-${id.slice(0, 12)}`,
        status: 'created',
        driver: null,
        worker_id: null,
        zone: request.zone ?? null,
        labels: {},
        image: null,
        vcpus: request.vcpus,
        memory_mb: request.memory_mb,
        disk_gb: request.disk_gb,
        error: null,
        created_at: now,
        updated_at: now,
        deleted_at: null,
        phases: {},
      };
      const payload = { worker_labels: request.labels ?? {}, strategy: request.strategy ?? null };
      const task = newTask('vm:create', payload, { vm_id: id });
      await store.insertVmWithTask(vm, task);
      tasks.push({ task, vm });
    }
    // The snapshot is read from the store, as the scheduler loop does once per pass.
    const snapshot = new ClusterSnapshot((await store.listWorkers()).map((w) => ({ ...w, creates_in_flight: 0 })));
    let placed = 0;
    let next = 0;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < tasks.length) {
          const i = next++;
          const { task, vm } = tasks[i]!;
          const request = { ...requests[i]!, seed: task.id };
          const { placement, explanation } = place(snapshot, request, options);
          if (!placement) continue;
          snapshot.reserve(placement.worker_id, request);
          const record = placementRecord(explanation, null, now);
          const outcome = await store.placeTask(task.id, vm.id, placement.worker_id, placement.driver, record);
          if (outcome === 'placed') placed++;
        }
      }),
    );
    const seconds = (performance.now() - start) / 1000;
    await store.close();
    return { perSecond: placements / seconds, msPerPlacement: (seconds * 1000) / placements, placed };
  } finally {
    await server.stop();
  }
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** A table row: each text right-aligned to its column's width. */
const row = (cells: [string, number][]) => cells.map(([text, width]) => text.padStart(width)).join('   ');

console.log(
  'pure scheduler: 100,000 placements, zone / label / driver constraints mixed, a snapshot per batch of 1,000',
);
console.log('workers    placements/s   µs/placement   snapshot build ms   placed    µs to explain a pending request');
for (const workers of [100, 1_000, 10_000]) {
  const r = pure(workers, 100_000);
  const pending = pendingCost(workers);
  console.log(
    row([
      [fmt(workers), 7],
      [fmt(r.perSecond), 12],
      [fmt(r.usPerPlacement, 2), 12],
      [fmt(r.buildMs, 2), 17],
      [fmt(r.placed), 7],
      [fmt(pending, 1), 8],
    ]),
  );
}

console.log('\nwith reservation in Postgres (pure decision + one transaction with the conditional UPDATE)');
console.log('workers    concurrency   placements/s   ms/placement   placed');
for (const workers of [100, 1_000, 10_000]) {
  for (const concurrency of [1, 8]) {
    const r = await withPostgres(workers, 2_000, concurrency);
    console.log(
      row([
        [fmt(workers), 7],
        [String(concurrency), 11],
        [fmt(r.perSecond), 12],
        [fmt(r.msPerPlacement, 2), 12],
        [fmt(r.placed), 6],
      ]),
    );
  }
}
