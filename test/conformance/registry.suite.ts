/**
 * The ServiceRegistry conformance suite: the same tests against every registry (built-in, etcd,
 * Consul).
 *
 *   registryConformance('etcd', async () => ({ registry, observer, ttlSeconds: 2, ... }));
 *
 * `make` is called once for the whole suite. `registry` plays the worker process (register,
 * heartbeat, updates, deregister); `observer` plays a control plane (get, list, watch) and may be a
 * separate instance sharing only the backend, as in production. Every test uses its own worker ids,
 * so tests never see each other's workers through the assertions.
 *
 * Timing: workers are registered with a short `ttlSeconds` (2 s); the suite waits about
 * 8 × TTL in total (~16–20 s). Backends differ in what an expired or deregistered worker looks like (etcd
 * deletes the key; Consul keeps a critical service until its reaper runs; the built-in registry
 * keeps the row): the harness declares it, and the tests assert exactly that.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AetheriumError, type WorkerRegistration } from '../../src/domain/index.ts';
import type { RegisteredWorker, ServiceRegistry, WorkerEvent } from '../../src/ports/service-registry.ts';

export interface RegistryUnderTest {
  /** The worker's side: register, heartbeat, updates, deregister. */
  registry: ServiceRegistry;
  /** The control plane's side: get, list, watch. Defaults to `registry`. */
  observer?: ServiceRegistry;
  /** TTL the suite registers workers with, in seconds (short: 2–3). */
  ttlSeconds: number;
  /** Time past the TTL the backend may need before it reports the expiry (lease sweep, check timer, poll). */
  expiryGraceMs: number;
  /** A worker whose TTL ran out: gone from get/list, or still listed with `healthy: false`. */
  afterExpiry: 'removed' | 'unhealthy';
  /** A deregistered worker: gone, or still listed as `offline` and unhealthy (the built-in registry keeps the row). */
  afterDeregister: 'removed' | 'offline';
  close(): Promise<void>;
}

const TEST_TIMEOUT = 30_000;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it returns true; the elapsed ms, or null at the deadline. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  everyMs = 50,
): Promise<number | null> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started >= timeoutMs) return null;
    await sleep(everyMs);
  }
}

export function workerRegistration(overrides: Partial<WorkerRegistration> = {}): WorkerRegistration {
  return {
    id: `w-${randomUUID().slice(0, 8)}`,
    hostname: 'host-a.example',
    address: '10.0.0.7:9100',
    zone: 'zone-a',
    labels: { tier: 'gold', 'gpu.model': 'a100' },
    capabilities: ['kvm', 'snapshots'],
    cpu_cores: 16,
    memory_mb: 65_536,
    disk_gb: 500,
    max_vms: 20,
    ttl_seconds: 2,
    metadata: { build: 'abc123', nested: { ok: true, n: 3 } },
    started_at: new Date('2025-01-02T03:04:05.678Z'),
    ...overrides,
  };
}

/** Consumes `watch` in the background, collecting its events. */
export function watchEvents(registry: ServiceRegistry) {
  const controller = new AbortController();
  const events: WorkerEvent[] = [];
  let failure: unknown = null;
  const done = (async () => {
    try {
      for await (const event of registry.watch(controller.signal)) events.push(event);
    } catch (err) {
      failure = err;
    }
  })();
  return {
    events,
    of: (id: string) => events.filter((e) => e.worker_id === id),
    typesOf: (id: string) => events.filter((e) => e.worker_id === id).map((e) => e.type),
    /** Waits for an event about `id` matching `type`, after the first `skip` events about it. */
    async next(id: string, type: WorkerEvent['type'], timeoutMs: number, skip = 0): Promise<WorkerEvent> {
      let found: WorkerEvent | undefined;
      const ok = await eventually(() => {
        if (failure) throw failure;
        found = events
          .filter((e) => e.worker_id === id)
          .slice(skip)
          .find((e) => e.type === type);
        return found !== undefined;
      }, timeoutMs);
      if (ok === null || !found)
        throw new Error(
          `no "${type}" event for ${id} within ${timeoutMs} ms; got ${JSON.stringify(events.filter((e) => e.worker_id === id).map((e) => e.type))}`,
        );
      return found;
    },
    async stop() {
      controller.abort();
      await done;
      if (failure) throw failure;
    },
  };
}

/**
 * Makes sure a watch is live (its first listing done) before a test acts: a sentinel worker is
 * changed until the watch reports something about it, then deregistered.
 */
export async function warmUp(registry: ServiceRegistry, watch: ReturnType<typeof watchEvents>): Promise<void> {
  const sentinel = workerRegistration({ ttl_seconds: 60 });
  await registry.register(sentinel);
  let cpu = 1;
  const live = await eventually(
    async () => {
      if (watch.of(sentinel.id).length > 0) return true;
      await registry.updateResources(sentinel.id, { cpu_cores: cpu++, memory_mb: 1024, disk_gb: 10, max_vms: 1 });
      return false;
    },
    15_000,
    150,
  );
  await registry.deregister(sentinel.id);
  if (live === null) throw new Error('watch produced no event for its warm-up worker within 15 s');
}

async function errorCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return err instanceof AetheriumError ? err.code : `not an AetheriumError: ${String(err)}`;
  }
  return 'resolved';
}

export function registryConformance(label: string, make: () => Promise<RegistryUnderTest>): void {
  describe(`ServiceRegistry conformance: ${label}`, () => {
    let sut: RegistryUnderTest;
    let registry: ServiceRegistry;
    let observer: ServiceRegistry;
    let ttlMs: number;

    beforeAll(async () => {
      sut = await make();
      registry = sut.registry;
      observer = sut.observer ?? sut.registry;
      ttlMs = sut.ttlSeconds * 1000;
    }, 120_000);

    afterAll(async () => {
      await sut?.close();
    }, 60_000);

    const reg = (overrides: Partial<WorkerRegistration> = {}) =>
      workerRegistration({ ttl_seconds: sut.ttlSeconds, ...overrides });
    const get = (id: string) => observer.getWorker(id);
    const listed = async (id: string) => (await observer.listWorkers()).find((w) => w.id === id);
    const ids = (workers: RegisteredWorker[], among: string[]) =>
      workers
        .map((w) => w.id)
        .filter((id) => among.includes(id))
        .sort();

    /** True once the worker reads as expired, in the way this backend shows it. */
    async function looksExpired(id: string): Promise<boolean> {
      const w = await get(id);
      return sut.afterExpiry === 'removed' ? w === null : w !== null && !w.healthy;
    }

    it(
      'registers a worker: get and list show it healthy, with what it registered',
      async () => {
        const w = reg();
        const before = Date.now();
        await registry.register(w);

        const got = await get(w.id);
        expect(got).not.toBeNull();
        expect(got).toMatchObject({
          id: w.id,
          hostname: w.hostname,
          address: w.address,
          zone: w.zone,
          labels: w.labels,
          capabilities: w.capabilities,
          cpu_cores: w.cpu_cores,
          memory_mb: w.memory_mb,
          disk_gb: w.disk_gb,
          max_vms: w.max_vms,
          ttl_seconds: w.ttl_seconds,
          metadata: w.metadata,
          status: 'active',
          eligible: true,
          healthy: true,
        });
        expect(got!.started_at?.getTime()).toBe(w.started_at!.getTime());
        expect(got!.last_seen).toBeInstanceOf(Date);
        expect(got!.last_seen.getTime()).toBeGreaterThanOrEqual(before - 1000);
        expect(got!.last_seen.getTime()).toBeLessThanOrEqual(Date.now() + 1000);

        const inList = await listed(w.id);
        expect(inList).toMatchObject({ id: w.id, healthy: true, zone: w.zone, labels: w.labels });
        await registry.deregister(w.id);
      },
      TEST_TIMEOUT,
    );

    it(
      'knows nothing of an unknown worker: get is null, heartbeat and updates fail with not_found',
      async () => {
        const id = `w-unknown-${randomUUID().slice(0, 8)}`;
        expect(await get(id)).toBeNull();
        expect(await errorCode(registry.heartbeat(id))).toBe('not_found');
        expect(await errorCode(registry.updateStatus(id, 'draining'))).toBe('not_found');
        expect(
          await errorCode(registry.updateResources(id, { cpu_cores: 1, memory_mb: 1, disk_gb: 1, max_vms: 1 })),
        ).toBe('not_found');
        expect(await get(id)).toBeNull();
      },
      TEST_TIMEOUT,
    );

    it(
      'heartbeats keep a worker healthy past its TTL and move last_seen',
      async () => {
        const w = reg();
        await registry.register(w);
        const first = (await get(w.id))!.last_seen.getTime();
        const until = Date.now() + ttlMs * 1.75;
        while (Date.now() < until) {
          await sleep(ttlMs / 4);
          await registry.heartbeat(w.id);
        }
        const after = await get(w.id);
        expect(after?.healthy).toBe(true);
        expect(after?.status).toBe('active');
        expect(after!.last_seen.getTime()).toBeGreaterThan(first);
        await registry.deregister(w.id);
      },
      TEST_TIMEOUT,
    );

    it(
      'a worker that stops heartbeating stops being healthy after its TTL, not before',
      async () => {
        const w = reg();
        await registry.register(w);
        const registeredAt = Date.now();
        await sleep(ttlMs / 2);
        expect((await get(w.id))?.healthy).toBe(true);

        const took = await eventually(() => looksExpired(w.id), ttlMs + sut.expiryGraceMs, 50);
        expect(took, `still healthy ${ttlMs + sut.expiryGraceMs} ms after the TTL should have run out`).not.toBeNull();
        expect(Date.now() - registeredAt).toBeGreaterThanOrEqual(ttlMs - 250);
        const after = await get(w.id);
        if (sut.afterExpiry === 'removed') {
          expect(after).toBeNull();
          expect(await listed(w.id)).toBeUndefined();
        } else {
          expect(after).toMatchObject({ id: w.id, healthy: false });
          expect(await listed(w.id)).toMatchObject({ id: w.id, healthy: false });
        }
        await registry.deregister(w.id);
      },
      TEST_TIMEOUT,
    );

    it(
      'a worker cut off longer than its TTL comes back healthy on its next heartbeat, record intact',
      async () => {
        const w = reg({ labels: { tier: 'silver' } });
        await registry.register(w);
        await registry.updateStatus(w.id, 'draining');
        expect(await eventually(() => looksExpired(w.id), ttlMs + sut.expiryGraceMs)).not.toBeNull();

        await registry.heartbeat(w.id);
        const back = await get(w.id);
        expect(back).toMatchObject({
          id: w.id,
          healthy: true,
          status: 'draining',
          labels: { tier: 'silver' },
          cpu_cores: w.cpu_cores,
        });
        await sleep(ttlMs / 2);
        await registry.heartbeat(w.id);
        await sleep(ttlMs * 0.75);
        expect((await get(w.id))?.healthy).toBe(true); // the new lease / check is kept alive too
        await registry.deregister(w.id);
      },
      TEST_TIMEOUT,
    );

    it(
      're-registering after expiry brings the worker back healthy with the new registration',
      async () => {
        const w = reg();
        await registry.register(w);
        expect(await eventually(() => looksExpired(w.id), ttlMs + sut.expiryGraceMs)).not.toBeNull();

        await registry.register({ ...w, cpu_cores: 4, labels: { tier: 'bronze' } });
        expect(await get(w.id)).toMatchObject({
          id: w.id,
          healthy: true,
          status: 'active',
          cpu_cores: 4,
          labels: { tier: 'bronze' },
        });
        await registry.heartbeat(w.id);
        expect((await get(w.id))?.healthy).toBe(true);
        await registry.deregister(w.id);
      },
      TEST_TIMEOUT,
    );

    it(
      'updateStatus and updateResources are visible, and the status filter follows them',
      async () => {
        const w = reg({ ttl_seconds: 60 });
        await registry.register(w);

        await registry.updateStatus(w.id, 'draining');
        expect(await get(w.id)).toMatchObject({ status: 'draining', healthy: true, labels: w.labels });
        expect(ids(await observer.listWorkersWithFilter({ status: 'draining' }), [w.id])).toEqual([w.id]);
        expect(ids(await observer.listWorkersWithFilter({ status: 'active' }), [w.id])).toEqual([]);

        await registry.updateResources(w.id, { cpu_cores: 32, memory_mb: 131_072, disk_gb: 1000, max_vms: 40 });
        expect(await get(w.id)).toMatchObject({
          cpu_cores: 32,
          memory_mb: 131_072,
          disk_gb: 1000,
          max_vms: 40,
          status: 'draining',
          zone: w.zone,
        });

        await registry.updateStatus(w.id, 'active');
        expect(ids(await observer.listWorkersWithFilter({ status: 'active' }), [w.id])).toEqual([w.id]);

        await registry.updateStatus(w.id, 'offline');
        expect(await get(w.id)).toMatchObject({ status: 'offline', healthy: false });
        expect(ids(await observer.listWorkersWithFilter({ status: 'offline' }), [w.id])).toEqual([w.id]);
        await registry.deregister(w.id);
      },
      TEST_TIMEOUT,
    );

    it(
      'filters by zone, labels (equality, all given) and capabilities (containment)',
      async () => {
        const tag = randomUUID().slice(0, 6);
        const za = `za-${tag}`;
        const zb = `zb-${tag}`;
        const w1 = reg({
          id: `w1-${tag}`,
          ttl_seconds: 60,
          zone: za,
          labels: { tier: 'gold', disk: 'ssd' },
          capabilities: ['kvm', 'gpu'],
        });
        const w2 = reg({
          id: `w2-${tag}`,
          ttl_seconds: 60,
          zone: za,
          labels: { tier: 'silver' },
          capabilities: ['kvm'],
        });
        const w3 = reg({ id: `w3-${tag}`, ttl_seconds: 60, zone: zb, labels: { tier: 'gold' }, capabilities: [] });
        for (const w of [w1, w2, w3]) await registry.register(w);
        const all = [w1.id, w2.id, w3.id];
        const f = async (filter: Parameters<ServiceRegistry['listWorkersWithFilter']>[0]) =>
          ids(await observer.listWorkersWithFilter(filter), all);

        expect(await f({})).toEqual(all);
        expect(await f({ zone: za })).toEqual([w1.id, w2.id]);
        expect(await f({ zone: zb })).toEqual([w3.id]);
        expect(await f({ labels: { tier: 'gold' } })).toEqual([w1.id, w3.id]);
        expect(await f({ labels: { tier: 'gold', disk: 'ssd' } })).toEqual([w1.id]);
        expect(await f({ labels: { tier: 'platinum' } })).toEqual([]);
        expect(await f({ capabilities: ['kvm'] })).toEqual([w1.id, w2.id]);
        expect(await f({ capabilities: ['kvm', 'gpu'] })).toEqual([w1.id]);
        expect(await f({ capabilities: ['gpu', 'tpu'] })).toEqual([]);
        expect(await f({ zone: za, capabilities: ['kvm'], labels: { tier: 'silver' } })).toEqual([w2.id]);
        expect(await f({ zone: zb, capabilities: ['kvm'] })).toEqual([]);
        expect(await f({ status: 'active', zone: za })).toEqual([w1.id, w2.id]);
        for (const w of [w1, w2, w3]) await registry.deregister(w.id);
      },
      TEST_TIMEOUT,
    );

    it(
      'deregister removes the worker (idempotently)',
      async () => {
        const w = reg({ ttl_seconds: 60 });
        await registry.register(w);
        expect((await get(w.id))?.healthy).toBe(true);
        await registry.deregister(w.id);
        const after = await get(w.id);
        if (sut.afterDeregister === 'removed') {
          expect(after).toBeNull();
          expect(await listed(w.id)).toBeUndefined();
        } else {
          expect(after).toMatchObject({ id: w.id, status: 'offline', healthy: false });
        }
        await expect(registry.deregister(w.id)).resolves.toBeUndefined();
      },
      TEST_TIMEOUT,
    );

    it('watch: joined, updated, no event for heartbeats, left on deregister and left on TTL expiry', async () => {
      const watch = watchEvents(observer);
      try {
        await warmUp(registry, watch);
        const a = reg({ ttl_seconds: 60 });
        const b = reg();
        const quick = 5000;

        await registry.register(a);
        const joined = await watch.next(a.id, 'joined', quick);
        expect(joined.worker).toMatchObject({ id: a.id, healthy: true, zone: a.zone, capabilities: a.capabilities });

        for (let i = 0; i < 3; i++) await registry.heartbeat(a.id);
        await sleep(500);
        expect(watch.typesOf(a.id)).toEqual(['joined']);

        await registry.updateResources(a.id, { cpu_cores: 3, memory_mb: 3072, disk_gb: 30, max_vms: 3 });
        const updated = await watch.next(a.id, 'updated', quick);
        expect(updated.worker).toMatchObject({ id: a.id, cpu_cores: 3, max_vms: 3, healthy: true });

        await registry.updateStatus(a.id, 'draining');
        const drained = await watch.next(a.id, 'updated', quick, 2);
        expect(drained.worker).toMatchObject({ id: a.id, status: 'draining' });

        await registry.deregister(a.id);
        const left = await watch.next(a.id, 'left', quick);
        expect(left.worker_id).toBe(a.id);
        expect(watch.typesOf(a.id)).toEqual(['joined', 'updated', 'updated', 'left']);

        await registry.register(b);
        await watch.next(b.id, 'joined', quick);
        const registeredAt = Date.now();
        const expired = await watch.next(b.id, 'left', ttlMs + sut.expiryGraceMs + quick);
        expect(Date.now() - registeredAt).toBeGreaterThanOrEqual(ttlMs - 250);
        expect(expired.worker === null || expired.worker.healthy === false).toBe(true);
        expect(watch.typesOf(b.id)).toEqual(['joined', 'left']);

        // It joins again when it comes back.
        await registry.heartbeat(b.id);
        await watch.next(b.id, 'joined', quick, 2);
        await registry.deregister(b.id);
        await watch.next(b.id, 'left', quick, 3);
      } finally {
        await watch.stop();
      }
    }, 45_000);

    it(
      'watch ends when its signal aborts',
      async () => {
        const controller = new AbortController();
        const iterator = observer.watch(controller.signal)[Symbol.asyncIterator]();
        const pending = iterator.next();
        await sleep(200);
        controller.abort();
        const outcome = await Promise.race([pending, sleep(5000).then(() => 'still running' as const)]);
        expect(outcome).toEqual({ done: true, value: undefined });
      },
      TEST_TIMEOUT,
    );
  });
}
