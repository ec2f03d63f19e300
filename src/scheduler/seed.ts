/**
 * Deterministic "randomness": where a scan starts is a hash of the request's seed (the task id),
 * so the same snapshot and request always give the same placement, while different requests start
 * in different places and spread the load of scanning.
 */
export function hashSeed(seed: string): number {
  // FNV-1a, 32 bit: fast, good enough to pick a starting offset.
  let hash = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) {
    hash ^= seed.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
