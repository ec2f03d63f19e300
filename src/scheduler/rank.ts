/**
 * Ranking among feasible workers. Scores are in [0, 1], higher is better.
 * - binpack fills the fullest worker that still fits, leaving whole hosts free for big VMs;
 * - spread puts the VM in the zone with the fewest VMs, on the emptiest worker there, to limit the
 *   blast radius of losing a zone first and a host second.
 */
import type { PlacementRequest, Strategy, WorkerSnapshot } from './types.ts';

/** CPU and memory used after the VM is added, averaged; 0 is empty, 1 is full. */
function utilisationAfter(w: WorkerSnapshot, r: PlacementRequest): number {
  const cpu = w.cpu_cores > 0 ? (w.used_cpu_cores + r.vcpus) / w.cpu_cores : 1;
  const memory = w.memory_mb > 0 ? (w.used_memory_mb + r.memory_mb) / w.memory_mb : 1;
  return (cpu + memory) / 2;
}

/**
 * Zone first, worker second, as one number: zone VMs count in whole steps of 1/(T + 0.5), and the
 * worker's emptiness adds at most half a step, so no empty host in a busier zone beats the least
 * loaded zone (a weighted sum would let it: a big empty host outscores a small half-full one).
 * Among workers in equally loaded zones, the emptiest wins.
 */
function spreadScore(zoneVms: number, totalVms: number, fill: number): number {
  const emptiness = Math.min(1, Math.max(0, 1 - fill));
  return (totalVms - zoneVms + emptiness / 2) / (totalVms + 0.5);
}

export function score(
  worker: WorkerSnapshot,
  request: PlacementRequest,
  strategy: Strategy,
  zoneLoad: ReadonlyMap<string, number>,
  totalVms: number,
): number {
  const fill = utilisationAfter(worker, request);
  if (strategy === 'binpack') return fill;
  return spreadScore(zoneLoad.get(worker.zone) ?? 0, totalVms, fill);
}
