/**
 * BuiltinRegistry (workers are rows in the store) over an in-memory PGlite store, through the
 * ServiceRegistry conformance suite. The built-in registry never deletes a worker: an expired one
 * stays listed as unhealthy, a deregistered one as offline — declared below, asserted by the suite.
 */
import { describe, expect, it } from 'vitest';
import { BuiltinRegistry } from '../src/adapters/discovery/builtin-registry.ts';
import { openStore } from '../src/adapters/storage/open-store.ts';
import { registryConformance, workerRegistration } from './conformance/registry.suite.ts';

registryConformance('builtin (PGlite in memory)', async () => {
  const store = await openStore({ kind: 'pglite' });
  const registry = new BuiltinRegistry(store, { pollIntervalMs: 100 });
  return {
    registry,
    ttlSeconds: 2,
    expiryGraceMs: 300,
    afterExpiry: 'unhealthy',
    afterDeregister: 'offline',
    async close() {
      await registry.close();
      await store.close();
    },
  };
});

describe('BuiltinRegistry specifics', () => {
  it('judges health by its clock: last_seen + ttl_seconds', async () => {
    const store = await openStore({ kind: 'pglite' });
    let now = new Date('2025-06-01T00:00:00Z');
    const registry = new BuiltinRegistry(store, { now: () => now });
    try {
      const w = workerRegistration({ ttl_seconds: 30 });
      await registry.register(w);
      now = new Date(now.getTime() + 29_000);
      expect((await registry.getWorker(w.id))?.healthy).toBe(true);
      now = new Date(now.getTime() + 1_000);
      expect((await registry.getWorker(w.id))?.healthy).toBe(false);
      await registry.heartbeat(w.id);
      expect(await registry.getWorker(w.id)).toMatchObject({ healthy: true, last_seen: now });
    } finally {
      await registry.close();
      await store.close();
    }
  }, 60_000);
});
