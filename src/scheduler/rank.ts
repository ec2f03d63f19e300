/**
 * Ranking among feasible workers. Scores are in [0, 1], higher is better.
 * - binpack fills the fullest worker that still fits, leaving whole hosts free for big VMs;
 * - spread prefers the emptiest worker, in the zone with the fewest VMs, to limit the blast radius.
 */
import type { PlacementRequest, Strategy, WorkerSnapshot } from './types.ts';

function utilisationAfter(w: WorkerSnapshot, r: PlacementRequest): number {
  const cpu = w.cpu_cores > 0 ? (w.used_cpu_cores + r.vcpus) / w.cpu_cores : 1;
  const memory = w.memory_mb > 0 ? (w.used_memory_mb + r.memory_mb) / w.memory_mb : 1;
  return (cpu + memory) / 2;
}

export function score(worker: WorkerSnapshot, request: PlacementRequest, strategy: Strategy, zoneLoad: ReadonlyMap<string, number>, totalVms: number): number {
  const fill = utilisationAfter(worker, request);
  if (strategy === 'binpack') return fill;
  const zoneShare = totalVms > 0 ? (zoneLoad.get(worker.zone) ?? 0) / totalVms : 0;
  return (1 - fill) * 0.5 + (1 - zoneShare) * 0.5;
}
