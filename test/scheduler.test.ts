import { describe, expect, it } from 'vitest';
import { place, type WorkerSnapshot } from '../src/scheduler/index.ts';

const now = new Date('2026-01-01T00:00:00Z');

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
    const result = place([worker('empty'), worker('half', { used_cpu_cores: 4, used_memory_mb: 4096, vm_count: 4 })], small, options);
    expect(result.placement).toMatchObject({ worker_id: 'half', driver: 'sandbox' });
    expect(result.explanation).toMatchObject({ evaluated: 2, feasible: 2 });
  });

  it('spreads onto the emptiest worker when asked', () => {
    const result = place([worker('empty', { zone: 'b' }), worker('half', { used_cpu_cores: 4, used_memory_mb: 4096, vm_count: 4 })], { ...small, strategy: 'spread' }, options);
    expect(result.placement?.worker_id).toBe('empty');
  });

  it('names every reason it rejects a worker for', () => {
    const now2 = new Date(now.getTime() + 60_000);
    const workers = [
      worker('draining', { status: 'draining' }),
      worker('ineligible', { eligible: false }),
      worker('stale', { last_seen: new Date(now2.getTime() - 31_000) }),
      worker('other-zone', { zone: 'z', last_seen: now2 }),
      worker('no-label', { last_seen: now2 }),
      worker('no-cpu', { used_cpu_cores: 8, labels: { tier: 'gpu' }, last_seen: now2 }),
      worker('no-mem', { used_memory_mb: 8000, labels: { tier: 'gpu' }, last_seen: now2 }),
      worker('no-disk', { used_disk_gb: 100, labels: { tier: 'gpu' }, last_seen: now2 }),
      worker('no-slot', { vm_count: 10, labels: { tier: 'gpu' }, last_seen: now2 }),
      worker('busy', { creates_in_flight: 3, labels: { tier: 'gpu' }, last_seen: now2 }),
      worker('no-driver', { capabilities: [], labels: { tier: 'gpu' }, last_seen: now2 }),
    ];
    const result = place(workers, { ...small, zone: 'a', labels: { tier: { in: ['gpu', 'tpu'] } } }, { ...options, now: now2 });
    expect(result.placement).toBeNull();
    expect(result.explanation.rejected).toEqual({
      'worker draining': 1,
      'worker ineligible': 1,
      'worker unhealthy': 1,
      'zone mismatch': 1,
      'label mismatch': 1,
      'insufficient cpu': 1,
      'insufficient memory': 1,
      'insufficient disk': 1,
      'no vm slots': 1,
      'too many creates in flight': 1,
      'no vm driver': 1,
    });
    expect(result.explanation.reason).toMatch(/^no feasible worker: /);
  });

  it('says "insufficient capacity" when only room is missing', () => {
    const result = place([worker('a', { used_cpu_cores: 8 }), worker('b', { vm_count: 10 })], small, options);
    expect(result.explanation.reason).toBe('insufficient capacity: 1 × insufficient cpu, 1 × no vm slots');
  });

  it('honours a requested driver and otherwise picks firecracker, then sandbox, then qemu', () => {
    const w = worker('w', { capabilities: ['process', 'sandbox', 'qemu'] });
    expect(place([w], small, options).placement?.driver).toBe('sandbox');
    expect(place([worker('q', { capabilities: ['process', 'qemu'] })], small, options).placement?.driver).toBe('qemu');
    expect(place([worker('f', { capabilities: ['firecracker', 'sandbox'] })], small, options).placement?.driver).toBe('firecracker');
    expect(place([w], { ...small, driver: 'sandbox' }, options).placement?.driver).toBe('sandbox');
    expect(place([w], { ...small, driver: 'firecracker' }, options).explanation.rejected).toEqual({ 'driver firecracker unavailable': 1 });
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
    const workers = [...Array.from({ length: 50 }, (_, i) => worker(`a${i}`, { zone: 'a' })), worker('b0', { zone: 'b' })];
    const result = place(workers, { ...small, zone: 'b' }, options);
    expect(result.placement?.worker_id).toBe('b0');
    expect(result.explanation.evaluated).toBe(1);
  });

  it('says so when there are no workers at all', () => {
    expect(place([], small, options).explanation.reason).toBe('no workers registered');
  });
});
