import { describe, expect, it } from 'vitest';
import { belowDriverMinimum, DRIVER_MINIMUMS, type DriverMinimum } from '../src/domain/index.ts';
import { BELOW_DRIVER_MINIMUM, meetsDriverMinimum } from '../src/scheduler/checks.ts';
import {
  CHECKS,
  ClusterSnapshot,
  compileQuery,
  cpuFits,
  createsInFlightBelowLimit,
  diskFits,
  driverAvailable,
  FULL_SCAN_LIMIT,
  labelsMatch,
  memoryFits,
  notExcluded,
  place,
  REJECTION_REASONS,
  summarise,
  vmSlotFree,
  workerActive,
  workerEligible,
  workerHealthy,
  zoneMatches,
  type Check,
  type PlacementRequest,
  type RejectionReason,
  type WorkerSnapshot,
} from '../src/scheduler/index.ts';

const now = new Date('2026-01-01T00:00:00Z');
const R = REJECTION_REASONS;

function worker(id: string, fields: Partial<WorkerSnapshot> = {}): WorkerSnapshot {
  return {
    id,
    status: 'active',
    eligible: true,
    last_seen: now,
    ttl_seconds: 30,
    zone: 'a',
    labels: {},
    capabilities: ['sandbox'],
    cpu_cores: 8,
    memory_mb: 8192,
    disk_gb: 100,
    max_vms: 10,
    used_cpu_cores: 0,
    used_memory_mb: 0,
    used_disk_gb: 0,
    vm_count: 0,
    ...fields,
  };
}

const options = { now, strategy: 'binpack' as const, maxCreatesInFlight: 3 };
const small = { vcpus: 1, memory_mb: 512, disk_gb: 1 };

describe('scheduler', () => {
  it('bin-packs onto the fullest worker that fits', () => {
    const half = worker('half', { used_cpu_cores: 4, used_memory_mb: 4096, vm_count: 4 });
    const result = place([worker('empty'), half], small, options);
    expect(result.placement).toMatchObject({ worker_id: 'half', driver: 'sandbox' });
    expect(result.explanation).toMatchObject({ evaluated: 2, feasible: 2 });
  });

  it('spreads onto the emptiest worker when asked', () => {
    const half = worker('half', { used_cpu_cores: 4, used_memory_mb: 4096, vm_count: 4 });
    const result = place([worker('empty', { zone: 'b' }), half], { ...small, strategy: 'spread' }, options);
    expect(result.placement?.worker_id).toBe('empty');
  });

  it('names every reason it rejects a worker for', () => {
    const now2 = new Date(now.getTime() + 60_000);
    const gpu = { labels: { tier: 'gpu' }, last_seen: now2 };
    const workers = [
      worker('draining', { status: 'draining' }),
      worker('offline', { status: 'offline' }),
      worker('ineligible', { eligible: false }),
      worker('stale', { last_seen: new Date(now2.getTime() - 31_000) }),
      worker('other-zone', { zone: 'z', last_seen: now2 }),
      worker('no-label', { last_seen: now2 }),
      worker('no-cpu', { used_cpu_cores: 8, ...gpu }),
      worker('no-mem', { used_memory_mb: 8000, ...gpu }),
      worker('no-disk', { used_disk_gb: 100, ...gpu }),
      worker('no-slot', { vm_count: 10, ...gpu }),
      worker('busy', { creates_in_flight: 3, ...gpu }),
      worker('no-driver', { capabilities: [], ...gpu }),
    ];
    const request = { ...small, zone: 'a', labels: { tier: { in: ['gpu', 'tpu'] } } };
    const result = place(workers, request, { ...options, now: now2 });
    expect(result.placement).toBeNull();
    expect(result.explanation.rejected).toEqual({
      [R.workerDraining]: 1,
      [R.workerOffline]: 1,
      [R.workerIneligible]: 1,
      [R.workerUnhealthy]: 1,
      [R.zoneMismatch]: 1,
      [R.labelMismatch]: 1,
      [R.insufficientCpu]: 1,
      [R.insufficientMemory]: 1,
      [R.insufficientDisk]: 1,
      [R.noVmSlots]: 1,
      [R.tooManyCreatesInFlight]: 1,
      [R.noVmDriver]: 1,
    });
    expect(result.explanation.reason).toMatch(/^no feasible worker: /);
  });

  it('says "insufficient capacity" when only room is missing', () => {
    const result = place([worker('a', { used_cpu_cores: 8 }), worker('b', { vm_count: 10 })], small, options);
    expect(result.explanation.reason).toBe('insufficient capacity: 1 × insufficient cpu, 1 × no vm slots');
  });

  it('counts the pending explanation by reason name, most frequent first', () => {
    const workers = [worker('w1', { zone: 'b' }), worker('w2', { zone: 'c' }), worker('w3', { status: 'draining' })];
    const { explanation } = place(workers, { ...small, zone: 'a' }, options);
    expect(explanation.rejected).toEqual({ [R.zoneMismatch]: 2, [R.workerDraining]: 1 });
    expect(explanation.reason).toBe('no feasible worker: 2 × zone mismatch, 1 × worker draining');
    expect(summarise(3, { [R.insufficientCpu]: 3 })).toBe('insufficient capacity: 3 × insufficient cpu');
  });

  it('honours a requested driver and otherwise picks firecracker, then sandbox, then qemu', () => {
    const w = worker('w', { capabilities: ['process', 'sandbox', 'qemu'] });
    const driverOn = (capabilities: string[]) =>
      place([worker('x', { capabilities })], small, options).placement?.driver;
    expect(place([w], small, options).placement?.driver).toBe('sandbox');
    expect(driverOn(['process', 'qemu'])).toBe('qemu');
    expect(driverOn(['firecracker', 'sandbox'])).toBe('firecracker');
    expect(place([w], { ...small, driver: 'sandbox' }, options).placement?.driver).toBe('sandbox');
    expect(place([w], { ...small, driver: 'firecracker' }, options).explanation.rejected).toEqual({
      [R.driverUnavailable]: 1,
    });
  });

  it('never picks a worker that refused the VM before', () => {
    const result = place([worker('w1'), worker('w2')], { ...small, exclude: ['w1', 'w2'] }, options);
    expect(result.explanation.rejected).toEqual({ [R.refusedEarlier]: 2 });
  });

  it('is deterministic: the same snapshot and request give the same answer, whatever the input order', () => {
    const a = place([worker('w2'), worker('w1'), worker('w3')], { ...small, seed: 'task-1' }, options);
    const b = place([worker('w3'), worker('w1'), worker('w2')], { ...small, seed: 'task-1' }, options);
    expect(b).toEqual(a);
  });

  it('breaks ties by the smaller id when it looks at every worker', () => {
    const result = place([worker('w2'), worker('w1'), worker('w3')], small, { ...options, sampleSize: 10 });
    expect(result.placement?.worker_id).toBe('w1');
    expect(result.explanation).toMatchObject({ evaluated: 3, feasible: 3, sampled: false });
  });

  it('stops after sampling log2(N) feasible workers in a large cluster', () => {
    const workers = Array.from({ length: 1024 }, (_, i) => worker(`w${String(i).padStart(4, '0')}`));
    const result = place(workers, { ...small, seed: 'x' }, options);
    expect(result.explanation).toMatchObject({ workers: 1024, evaluated: 10, feasible: 10, sampled: true });
  });

  it('scans only the index list of the asked zone', () => {
    const workers = [
      ...Array.from({ length: 50 }, (_, i) => worker(`a${i}`, { zone: 'a' })),
      worker('b0', { zone: 'b' }),
    ];
    const result = place(workers, { ...small, zone: 'b' }, options);
    expect(result.placement?.worker_id).toBe('b0');
    expect(result.explanation.evaluated).toBe(1);
  });

  it('says so when there are no workers at all', () => {
    expect(place([], small, options).explanation.reason).toBe('no workers registered');
  });
});

interface CheckCase {
  check: Check;
  reason: RejectionReason;
  /** The worker the check rejects, and one it lets through, for the same request. */
  fails: Partial<WorkerSnapshot>;
  passes?: Partial<WorkerSnapshot>;
  request?: Partial<PlacementRequest>;
}

const CHECK_CASES: Record<string, CheckCase> = {
  notExcluded: {
    check: notExcluded,
    reason: R.refusedEarlier,
    fails: { id: 'refused' },
    request: { exclude: ['refused'] },
  },
  'workerActive (draining)': { check: workerActive, reason: R.workerDraining, fails: { status: 'draining' } },
  'workerActive (offline)': { check: workerActive, reason: R.workerOffline, fails: { status: 'offline' } },
  workerEligible: { check: workerEligible, reason: R.workerIneligible, fails: { eligible: false } },
  workerHealthy: {
    check: workerHealthy,
    reason: R.workerUnhealthy,
    fails: { last_seen: new Date(now.getTime() - 30_000) },
  },
  zoneMatches: { check: zoneMatches, reason: R.zoneMismatch, fails: { zone: 'b' }, request: { zone: 'a' } },
  'labelsMatch (exact)': {
    check: labelsMatch,
    reason: R.labelMismatch,
    fails: { labels: { tier: 'cpu' } },
    passes: { labels: { tier: 'gpu', rack: 'r1' } },
    request: { labels: { tier: 'gpu' } },
  },
  'labelsMatch (one of a set)': {
    check: labelsMatch,
    reason: R.labelMismatch,
    fails: { labels: {} },
    passes: { labels: { tier: 'tpu' } },
    request: { labels: { tier: { in: ['gpu', 'tpu'] } } },
  },
  'driverAvailable (asked for)': {
    check: driverAvailable,
    reason: R.driverUnavailable,
    fails: { capabilities: ['sandbox'] },
    passes: { capabilities: ['firecracker'] },
    request: { driver: 'firecracker' },
  },
  'driverAvailable (none asked for)': { check: driverAvailable, reason: R.noVmDriver, fails: { capabilities: [] } },
  cpuFits: { check: cpuFits, reason: R.insufficientCpu, fails: { used_cpu_cores: 8 }, passes: { used_cpu_cores: 7 } },
  memoryFits: { check: memoryFits, reason: R.insufficientMemory, fails: { used_memory_mb: 7681 } },
  diskFits: { check: diskFits, reason: R.insufficientDisk, fails: { used_disk_gb: 100 }, passes: { used_disk_gb: 99 } },
  vmSlotFree: { check: vmSlotFree, reason: R.noVmSlots, fails: { vm_count: 10 }, passes: { vm_count: 9 } },
  createsInFlightBelowLimit: {
    check: createsInFlightBelowLimit,
    reason: R.tooManyCreatesInFlight,
    fails: { creates_in_flight: 3 },
    passes: { creates_in_flight: 2 },
  },
};

describe('feasibility checks', () => {
  it.each(Object.entries(CHECK_CASES))('%s rejects with its named reason', (_name, c) => {
    const query = compileQuery({ ...small, ...c.request }, options);
    expect(c.check(worker('w', c.fails), query)).toBe(c.reason);
    expect(c.check(worker('w', c.passes), query)).toBeNull();
  });

  it('runs in order: exclusion, state, placement constraints, then room', () => {
    expect(CHECKS).toEqual([
      notExcluded,
      workerActive,
      workerEligible,
      workerHealthy,
      zoneMatches,
      labelsMatch,
      driverAvailable,
      cpuFits,
      memoryFits,
      diskFits,
      vmSlotFree,
      createsInFlightBelowLimit,
    ]);
  });
});

/** A small deterministic PRNG (mulberry32): the 200 runs are random-looking but the same every time. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed shaped like the scheduler loop's (a task id, a UUID). */
function taskIdLike(rand: () => number): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(rand() * 16).toString(16)).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function shuffled<T>(items: readonly T[], rand: () => number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

/** Places `count` VMs one after another into one snapshot, as the scheduler loop does in a pass. */
function placeAll(workers: WorkerSnapshot[], count: number, request: PlacementRequest, rand: () => number) {
  const snapshot = new ClusterSnapshot(workers);
  // No limit on creates in flight: the spread has to come from the ranking, not from workers filling up.
  const roomy = { ...options, maxCreatesInFlight: 100 };
  for (let i = 0; i < count; i++) {
    const { placement } = place(snapshot, { ...request, seed: taskIdLike(rand) }, roomy);
    if (!placement) throw new Error(`VM ${i} stayed pending`);
    snapshot.reserve(placement.worker_id, request);
  }
  return snapshot;
}

function vmsPerZone(snapshot: ClusterSnapshot): Record<string, number> {
  return Object.fromEntries([...snapshot.zoneLoad.entries()].sort());
}

const spread = { ...small, strategy: 'spread' as const };

describe('spread', () => {
  it('places five VMs on three workers in three zones 2/2/1, in 200 runs with shuffled workers and seeds', () => {
    const rand = prng(42);
    for (let run = 0; run < 200; run++) {
      const workers = shuffled(
        [worker('w-a', { zone: 'a' }), worker('w-b', { zone: 'b' }), worker('w-c', { zone: 'c' })],
        rand,
      );
      const perZone = Object.values(vmsPerZone(placeAll(workers, 5, spread, rand)));
      expect(perZone.sort((x, y) => x - y)).toEqual([1, 2, 2]);
    }
  });

  it('fills the least loaded zone first when zones have different numbers of workers', () => {
    const rand = prng(7);
    const zones = { a: 3, b: 1, c: 2 };
    for (let run = 0; run < 200; run++) {
      const workers = Object.entries(zones).flatMap(([zone, n]) =>
        Array.from({ length: n }, (_, i) => worker(`${zone}${i}`, { zone })),
      );
      const snapshot = placeAll(shuffled(workers, rand), 9, spread, rand);
      expect(vmsPerZone(snapshot)).toEqual({ a: 3, b: 3, c: 3 });
      // Within a zone, the emptiest worker first: zone a's three workers got one VM each.
      expect(snapshot.workers.filter((w) => w.zone === 'a').map((w) => w.vm_count)).toEqual([1, 1, 1]);
    }
  });

  it('prefers a fuller worker in the least loaded zone to an empty one in a busier zone', () => {
    const big = { cpu_cores: 64, memory_mb: 262_144 };
    const workers = [
      worker('a1', { zone: 'a', ...big, vm_count: 2, used_cpu_cores: 2, used_memory_mb: 1024 }),
      worker('a2', { zone: 'a', ...big }),
      worker('b1', { zone: 'b', cpu_cores: 2, memory_mb: 2048, vm_count: 1, used_cpu_cores: 1, used_memory_mb: 512 }),
    ];
    expect(place(workers, spread, options).placement?.worker_id).toBe('b1');
  });

  it('still bin-packs a small cluster onto one worker', () => {
    const workers = [worker('w-a', { zone: 'a' }), worker('w-b', { zone: 'b' }), worker('w-c', { zone: 'c' })];
    const snapshot = placeAll(workers, 5, small, prng(1));
    expect(snapshot.workers.map((w) => w.vm_count).sort((x, y) => x - y)).toEqual([0, 0, 5]);
  });

  it(`scores every candidate up to ${FULL_SCAN_LIMIT}, and samples log2(N) beyond`, () => {
    const cluster = (n: number) => Array.from({ length: n }, (_, i) => worker(`w${String(i).padStart(3, '0')}`));
    expect(place(cluster(FULL_SCAN_LIMIT), spread, options).explanation).toMatchObject({
      evaluated: FULL_SCAN_LIMIT,
      sampled: false,
    });
    expect(place(cluster(FULL_SCAN_LIMIT + 1), spread, options).explanation).toMatchObject({
      evaluated: 7,
      sampled: true,
    });
  });
});

describe('driver minimums', () => {
  const tiny = { vcpus: 1, memory_mb: 32, disk_gb: 1 };

  it('never places a VM on a driver it is below the minimum of, and says why', () => {
    const qemuOnly = worker('q', { capabilities: ['qemu'] });
    const result = place([qemuOnly], { ...tiny, driver: 'qemu' }, options);
    expect(result.placement).toBeNull();
    expect(result.explanation.rejected).toEqual({ [BELOW_DRIVER_MINIMUM]: 1 });
    expect(result.explanation.reason).toBe(`no feasible worker: 1 × ${BELOW_DRIVER_MINIMUM}`);
    // At the minimum it fits.
    expect(
      place([qemuOnly], { ...tiny, memory_mb: DRIVER_MINIMUMS.qemu.memory_mb, driver: 'qemu' }, options).placement,
    ).toMatchObject({ worker_id: 'q', driver: 'qemu' });
  });

  it('without a driver asked for, picks the strongest driver the VM is big enough for', () => {
    const both = worker('both', { capabilities: ['qemu', 'sandbox'] });
    expect(place([both], tiny, options).placement).toMatchObject({ worker_id: 'both', driver: 'sandbox' });
    const workers = [worker('q', { capabilities: ['qemu'] }), worker('s', { capabilities: ['sandbox'] })];
    expect(place(workers, tiny, options).placement).toMatchObject({ worker_id: 's', driver: 'sandbox' });
    const result = place([worker('q', { capabilities: ['qemu'] })], tiny, options);
    expect(result.placement).toBeNull();
    expect(result.explanation.rejected).toEqual({ [BELOW_DRIVER_MINIMUM]: 1 });
    expect(driverAvailable(worker('none', { capabilities: [] }), compileQuery(tiny, options))).toBe(R.noVmDriver);
  });

  it('knows each driver minimum, memory and vCPUs: at it fits, below it does not', () => {
    for (const [driver, min] of Object.entries(DRIVER_MINIMUMS) as [keyof typeof DRIVER_MINIMUMS, DriverMinimum][]) {
      expect(meetsDriverMinimum(driver, min)).toBe(true);
      expect(meetsDriverMinimum(driver, { ...min, memory_mb: min.memory_mb - 1 })).toBe(false);
      expect(meetsDriverMinimum(driver, { ...min, vcpus: min.vcpus / 2 })).toBe(false);
    }
  });

  it('in 500 random placements, the chosen driver always meets its minimum', () => {
    const rand = prng(7);
    const all = ['firecracker', 'qemu', 'sandbox', 'process'] as const;
    for (let i = 0; i < 500; i++) {
      const workers = Array.from({ length: 4 }, (_, w) =>
        worker(`w${w}`, { capabilities: all.filter(() => rand() < 0.5) }),
      );
      const request = {
        vcpus: 1,
        memory_mb: 16 + Math.floor(rand() * 200),
        disk_gb: 1,
        driver: rand() < 0.3 ? all[Math.floor(rand() * all.length)] : undefined,
      };
      const placement = place(workers, request, options).placement;
      if (placement) expect(belowDriverMinimum(placement.driver, request)).toBeNull();
    }
  });
});
