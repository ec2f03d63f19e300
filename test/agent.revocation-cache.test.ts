/**
 * The agent sessions' shared revocation cache: one store read for all sessions at most every
 * `maxAgeMs`, concurrent checks sharing it, and a revocation written seen by the next read.
 */
import { describe, expect, it } from 'vitest';
import { RevocationCache } from '../src/server/agent/revocation-cache.ts';

function fakeStore(rows: Map<string, Date>) {
  let reads = 0;
  return {
    get reads() {
      return reads;
    },
    async listWorkerCertificateRevocations() {
      reads++;
      await new Promise((resolve) => setTimeout(resolve, 5));
      return new Map(rows);
    },
  };
}

describe('RevocationCache', () => {
  it('reads once for many sessions, and again once the answer is older than its bound', async () => {
    const rows = new Map<string, Date>();
    const store = fakeStore(rows);
    const cache = new RevocationCache(store, 2000);
    const t0 = Date.now();
    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => cache.cutoff(`w${i}`, t0)));
    expect(answers.every((a) => a === null)).toBe(true);
    expect(store.reads).toBe(1);

    const revokedAt = new Date();
    rows.set('w7', revokedAt);
    // Within the bound: the cached answer (the bound is what REVOCATION_CHECK_MS promises).
    expect(await cache.cutoff('w7', t0 + 1999)).toBeNull();
    expect(store.reads).toBe(1);
    // Past it: read again, and the revocation is seen.
    expect(await cache.cutoff('w7', Date.now() + 2000)).toEqual(revokedAt);
    expect(store.reads).toBe(2);
    expect(await cache.cutoff('w8', Date.now() + 2000)).toBeNull();
  });
});
