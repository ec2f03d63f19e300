/**
 * Property tests of the pure scheduler over random clusters and request streams (fast-check, 1,000
 * cases each). Feasibility is checked against an oracle written here from the rules, not with the
 * scheduler's own checks.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DRIVER_MINIMUMS, DRIVER_NAMES, type DriverName } from '../src/domain/vm.ts';
import {
  ClusterSnapshot,
  place,
  type PlacementRequest,
  type SchedulerOptions,
  type WorkerSnapshot,
} from '../src/scheduler/index.ts';

const NOW = new Date('2026-06-01T00:00:00Z');
const ZONES = ['z1', 'z2', 'z3'];
const TIERS = ['gpu', 'cpu', 'io'];
const DRIVERS = ['sandbox', 'qemu', 'firecracker', 'process'] as const;

const workerArb = (id: number) =>
  fc
    .record({
      status: fc.constantFrom('active', 'active', 'active', 'draining', 'offline'),
      eligible: fc.integer({ min: 0, max: 9 }).map((n) => n > 0),
      ageSeconds: fc.integer({ min: 0, max: 60 }),
      zone: fc.constantFrom(...ZONES),
      tier: fc.constantFrom(...TIERS),
      capabilities: fc.subarray([...DRIVERS], { minLength: 0 }),
      cpu_cores: fc.integer({ min: 1, max: 64 }),
      memory_mb: fc.integer({ min: 512, max: 65_536 }),
      disk_gb: fc.integer({ min: 1, max: 500 }),
      max_vms: fc.integer({ min: 1, max: 20 }),
      usedFraction: fc.double({ min: 0, max: 1, noNaN: true }),
      creates_in_flight: fc.integer({ min: 0, max: 4 }),
    })
    .map(
      (w): WorkerSnapshot => ({
        id: `w${String(id).padStart(3, '0')}`,
        status: w.status as WorkerSnapshot['status'],
        eligible: w.eligible,
        last_seen: new Date(NOW.getTime() - w.ageSeconds * 1000),
        ttl_seconds: 30,
        zone: w.zone,
        labels: { tier: w.tier },
        capabilities: w.capabilities,
        cpu_cores: w.cpu_cores,
        memory_mb: w.memory_mb,
        disk_gb: w.disk_gb,
        max_vms: w.max_vms,
        used_cpu_cores: Math.floor(w.cpu_cores * w.usedFraction),
        used_memory_mb: Math.floor(w.memory_mb * w.usedFraction),
        used_disk_gb: Math.floor(w.disk_gb * w.usedFraction),
        vm_count: Math.floor(w.max_vms * w.usedFraction),
        creates_in_flight: w.creates_in_flight,
      }),
    );

const clusterArb = fc
  .integer({ min: 0, max: 40 })
  .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => workerArb(i))));

const requestArb: fc.Arbitrary<PlacementRequest> = fc.record(
  {
    vcpus: fc.integer({ min: 1, max: 16 }),
    memory_mb: fc.integer({ min: 64, max: 16_384 }),
    disk_gb: fc.integer({ min: 0, max: 100 }),
    zone: fc.option(fc.constantFrom(...ZONES), { nil: undefined }),
    labels: fc.option(
      fc.oneof(
        fc.constantFrom(...TIERS).map((t) => ({ tier: t })),
        fc.subarray(TIERS, { minLength: 1 }).map((set) => ({ tier: { in: set } })),
      ),
      { nil: undefined },
    ),
    driver: fc.option(fc.constantFrom(...DRIVERS), { nil: undefined }),
    strategy: fc.option(fc.constantFrom('binpack' as const, 'spread' as const), { nil: undefined }),
    seed: fc.string({ maxLength: 12 }),
  },
  { requiredKeys: ['vcpus', 'memory_mb', 'disk_gb', 'seed'] },
);

const options: SchedulerOptions = { now: NOW, strategy: 'binpack', maxCreatesInFlight: 3 };

/**
 * Clusters here are small enough that by default every candidate is ranked; a forced small sample
 * keeps the early-stopping scan of large clusters under the same properties.
 */
const optionsArb: fc.Arbitrary<SchedulerOptions> = fc
  .constantFrom(undefined, 1, 2, 3)
  .map((sampleSize) => (sampleSize === undefined ? options : { ...options, sampleSize }));

/** The rules, written out independently of src/scheduler/checks.ts. */
function couldHold(w: WorkerSnapshot, r: PlacementRequest): boolean {
  const healthy = w.status !== 'offline' && NOW.getTime() - w.last_seen.getTime() < w.ttl_seconds * 1000;
  const labelOk = Object.entries(r.labels ?? {}).every(([k, c]) =>
    typeof c === 'string' ? w.labels[k] === c : c.in.includes(w.labels[k] ?? '\u0000'),
  );
  // A driver is usable when the worker has it and the VM is at least its minimum (DRIVER_MINIMUMS).
  const fitsDriver = (d: DriverName) =>
    w.capabilities.includes(d) && r.memory_mb >= DRIVER_MINIMUMS[d].memory_mb && r.vcpus >= DRIVER_MINIMUMS[d].vcpus;
  const driverOk = r.driver ? fitsDriver(r.driver) : DRIVER_NAMES.some(fitsDriver);
  return (
    w.status === 'active' &&
    w.eligible &&
    healthy &&
    (!r.zone || w.zone === r.zone) &&
    labelOk &&
    driverOk &&
    w.used_cpu_cores + r.vcpus <= w.cpu_cores &&
    w.used_memory_mb + r.memory_mb <= w.memory_mb &&
    w.used_disk_gb + r.disk_gb <= w.disk_gb &&
    w.vm_count < w.max_vms &&
    (w.creates_in_flight ?? 0) < options.maxCreatesInFlight
  );
}

function overCapacity(w: WorkerSnapshot): boolean {
  return (
    w.used_cpu_cores > w.cpu_cores ||
    w.used_memory_mb > w.memory_mb ||
    w.used_disk_gb > w.disk_gb ||
    w.vm_count > w.max_vms
  );
}

const RUNS = { numRuns: 1000 };

describe('scheduler properties', () => {
  it('never puts a worker over capacity, over a whole stream of requests', () => {
    fc.assert(
      fc.property(
        clusterArb,
        fc.array(requestArb, { minLength: 1, maxLength: 60 }),
        optionsArb,
        (workers, requests, opts) => {
          const snapshot = new ClusterSnapshot(
            workers.map((w) => ({ ...w, used_cpu_cores: Math.min(w.used_cpu_cores, w.cpu_cores) })),
          );
          const overBefore = new Set(snapshot.workers.filter(overCapacity).map((w) => w.id));
          for (const request of requests) {
            const { placement } = place(snapshot, request, opts);
            if (!placement) continue;
            expect(couldHold(snapshot.get(placement.worker_id)!, request)).toBe(true);
            snapshot.reserve(placement.worker_id, request);
            for (const w of snapshot.workers) if (!overBefore.has(w.id)) expect(overCapacity(w)).toBe(false);
          }
        },
      ),
      RUNS,
    );
  });

  it('leaves a request pending only when no worker could hold it', () => {
    fc.assert(
      fc.property(clusterArb, requestArb, optionsArb, (workers, request, opts) => {
        const { placement, explanation } = place(workers, request, opts);
        const anyFits = workers.some((w) => couldHold(w, request));
        expect(placement !== null).toBe(anyFits);
        if (!placement) {
          // Every worker is accounted for in the reasons.
          expect(Object.values(explanation.rejected).reduce((a, b) => a + b, 0)).toBe(workers.length);
          expect(explanation.reason).toBeTruthy();
        }
      }),
      RUNS,
    );
  });

  it('spread picks a worker in the least loaded zone that could hold the VM (clusters up to 40 workers)', () => {
    fc.assert(
      fc.property(clusterArb, requestArb, (workers, request) => {
        const { placement } = place(workers, { ...request, strategy: 'spread' }, options);
        if (!placement) return;
        const vmsIn = (zone: string) => workers.filter((w) => w.zone === zone).reduce((n, w) => n + w.vm_count, 0);
        const fitting = workers.filter((w) => couldHold(w, request));
        const chosen = workers.find((w) => w.id === placement.worker_id)!;
        expect(vmsIn(chosen.zone)).toBe(Math.min(...fitting.map((w) => vmsIn(w.zone))));
      }),
      RUNS,
    );
  });

  it('is deterministic for a given snapshot and request, whatever the order of the workers', () => {
    fc.assert(
      fc.property(clusterArb, requestArb, optionsArb, fc.integer(), (workers, request, opts, shuffleSeed) => {
        const first = place(workers, request, opts);
        const again = place(workers, request, opts);
        const shuffled = [...workers].sort((a, b) => (hash(a.id, shuffleSeed) - hash(b.id, shuffleSeed)) | 0);
        expect(again).toEqual(first);
        expect(place(shuffled, request, opts)).toEqual(first);
      }),
      RUNS,
    );
  });
});

function hash(text: string, seed: number): number {
  let h = seed | 0;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h;
}
