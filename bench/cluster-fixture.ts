/** Random but reproducible clusters and requests for the scheduler benchmarks. */
import type { PlacementRequest, WorkerSnapshot } from '../src/scheduler/index.ts';

export const ZONES = Array.from({ length: 10 }, (_, i) => `zone-${i}`);
export const TIERS = ['general', 'compute', 'memory', 'gpu'];

/** A small deterministic PRNG (mulberry32), so every run benchmarks the same cluster. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function makeWorkers(count: number, now: Date, seed = 1): WorkerSnapshot[] {
  const rand = prng(seed);
  const pick = <T>(items: readonly T[]) => items[Math.floor(rand() * items.length)]!;
  return Array.from({ length: count }, (_, i) => ({
    id: `worker-${String(i).padStart(5, '0')}`,
    status: rand() < 0.97 ? 'active' : 'draining',
    eligible: true,
    last_seen: now,
    ttl_seconds: 30,
    zone: pick(ZONES),
    labels: { tier: pick(TIERS), rack: `r${Math.floor(rand() * 40)}` },
    capabilities: rand() < 0.5 ? ['sandbox', 'qemu'] : ['firecracker', 'sandbox'],
    cpu_cores: 64,
    memory_mb: 262_144,
    disk_gb: 2000,
    max_vms: 200,
    used_cpu_cores: Math.floor(rand() * 32),
    used_memory_mb: Math.floor(rand() * 131_072),
    used_disk_gb: Math.floor(rand() * 1000),
    vm_count: Math.floor(rand() * 100),
    creates_in_flight: 0,
  }));
}

/** A mix: a third with a zone, a third with a label constraint (exact or a set), some with a driver. */
export function makeRequests(count: number, seed = 2): PlacementRequest[] {
  const rand = prng(seed);
  const pick = <T>(items: readonly T[]) => items[Math.floor(rand() * items.length)]!;
  return Array.from({ length: count }, (_, i) => {
    const kind = i % 3;
    return {
      vcpus: 1 + Math.floor(rand() * 2),
      memory_mb: 256 + Math.floor(rand() * 768),
      disk_gb: 1,
      ...(kind === 0 ? { zone: pick(ZONES) } : {}),
      ...(kind === 1
        ? { labels: rand() < 0.5 ? { tier: pick(TIERS) } : { tier: { in: [pick(TIERS), pick(TIERS)] } } }
        : {}),
      ...(rand() < 0.25 ? { driver: pick(['qemu', 'firecracker'] as const) } : {}),
      ...(rand() < 0.3 ? { strategy: 'spread' as const } : {}),
      seed: `task-${i}`,
    };
  });
}
