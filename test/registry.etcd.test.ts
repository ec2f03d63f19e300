/**
 * EtcdRegistry against a real etcd (Debian's `etcd-server`, started by test/harness/etcd.ts): the
 * conformance suite with a worker-side and a separate control-plane-side instance, plus what only
 * etcd has: leases, the raw key layout, and surviving an etcd restart.
 */
import { randomUUID } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdRegistry } from '../src/adapters/discovery/etcd-registry.ts';
import {
  eventually,
  registryConformance,
  sleep,
  warmUp,
  watchEvents,
  workerRegistration,
} from './conformance/registry.suite.ts';
import { startEtcd, type EtcdServer } from './harness/etcd.ts';

registryConformance('etcd', async () => {
  const etcd = await startEtcd();
  const prefix = `/aetherium-test/${randomUUID().slice(0, 8)}/workers/`;
  const registry = new EtcdRegistry({ endpoints: [etcd.endpoint], prefix });
  const observer = new EtcdRegistry({ endpoints: [etcd.endpoint], prefix });
  return {
    registry,
    observer,
    ttlSeconds: 2, // etcd's smallest lease TTL with the default 100 ms heartbeat / 1 s election timeout
    expiryGraceMs: 1500, // the leader sweeps expired leases every 500 ms
    afterExpiry: 'removed',
    afterDeregister: 'removed',
    async close() {
      await registry.close();
      await observer.close();
      await etcd.stop();
    },
  };
});

describe('EtcdRegistry: etcd specifics', () => {
  let etcd: EtcdServer;
  let raw: Etcd3;
  let prefix: string;
  let worker: EtcdRegistry;
  let plane: EtcdRegistry;

  beforeAll(async () => {
    etcd = await startEtcd();
    raw = new Etcd3({ hosts: [etcd.endpoint] });
    prefix = `/specifics/${randomUUID().slice(0, 8)}/`;
    worker = new EtcdRegistry({ endpoints: [etcd.endpoint], prefix, requestTimeoutMs: 2000 });
    plane = new EtcdRegistry({ endpoints: [etcd.endpoint], prefix, requestTimeoutMs: 2000 });
  }, 120_000);

  afterAll(async () => {
    await worker?.close();
    await plane?.close();
    raw?.close();
    await etcd?.stop();
  }, 60_000);

  async function leaseOf(id: string): Promise<string> {
    const response = await raw.get(`${prefix}${id}`).exec();
    return String(response.kvs[0]?.lease ?? '0');
  }

  it('stores one JSON value per worker under <prefix><id>, on a lease with the worker TTL', async () => {
    const w = workerRegistration({ ttl_seconds: 7 });
    await worker.register(w);
    const value = (await raw.get(`${prefix}${w.id}`).json()) as Record<string, unknown>;
    expect(value).toMatchObject({
      v: 1,
      id: w.id,
      zone: w.zone,
      labels: w.labels,
      status: 'active',
      eligible: true,
      ttl_seconds: 7,
    });
    expect(typeof value.last_seen).toBe('string');
    const lease = await leaseOf(w.id);
    expect(lease).not.toBe('0');
    const ttl = await raw.leaseClient.leaseTimeToLive({ ID: lease });
    expect(Number(ttl.grantedTTL)).toBe(7);
    await worker.deregister(w.id);
    expect(await raw.get(`${prefix}${w.id}`).string()).toBeNull();
    expect(Number((await raw.leaseClient.leaseTimeToLive({ ID: lease })).TTL)).toBe(-1); // revoked
  }, 30_000);

  it('a heartbeat rewrites last_seen on the same lease; a status written by the control plane survives it', async () => {
    const w = workerRegistration({ ttl_seconds: 30 });
    await worker.register(w);
    const lease = await leaseOf(w.id);
    const before = (await plane.getWorker(w.id))!.last_seen.getTime();
    await plane.updateStatus(w.id, 'draining'); // another process (the control plane) drains it
    await sleep(20);
    await worker.heartbeat(w.id);
    const after = await plane.getWorker(w.id);
    expect(after?.status).toBe('draining');
    expect(after!.last_seen.getTime()).toBeGreaterThan(before);
    expect(await leaseOf(w.id)).toBe(lease);
    await worker.deregister(w.id);
  }, 30_000);

  it('a worker whose lease expired comes back on its next heartbeat with a new lease, and the watch sees it rejoin', async () => {
    const watch = watchEvents(plane);
    try {
      await warmUp(worker, watch);
      const w = workerRegistration({ ttl_seconds: 2 });
      await worker.register(w);
      await watch.next(w.id, 'joined', 5000);
      const oldLease = await leaseOf(w.id);
      expect(await eventually(async () => (await plane.getWorker(w.id)) === null, 5000)).not.toBeNull();
      expect(Number((await raw.leaseClient.leaseTimeToLive({ ID: oldLease })).TTL)).toBe(-1); // expired

      await worker.heartbeat(w.id);
      const back = await plane.getWorker(w.id);
      expect(back).toMatchObject({ id: w.id, healthy: true, labels: w.labels, capabilities: w.capabilities });
      const newLease = await leaseOf(w.id);
      expect(newLease).not.toBe('0');
      expect(newLease).not.toBe(oldLease);
      await watch.next(w.id, 'joined', 5000, 1);
      expect(watch.typesOf(w.id)).toEqual(['joined', 'left', 'joined']);
      await worker.deregister(w.id);
    } finally {
      await watch.stop();
    }
  }, 30_000);

  it('a fresh instance (a restarted worker process) can heartbeat a worker it did not register while it is alive', async () => {
    const w = workerRegistration({ ttl_seconds: 30 });
    await worker.register(w);
    const other = new EtcdRegistry({ endpoints: [etcd.endpoint], prefix });
    try {
      await other.heartbeat(w.id);
      expect((await plane.getWorker(w.id))?.healthy).toBe(true);
      await other.deregister(w.id);
      // deregistered: neither instance brings it back with a heartbeat
      await expect(other.heartbeat(w.id)).rejects.toMatchObject({ code: 'not_found' });
    } finally {
      await other.close();
    }
  }, 30_000);

  it('survives an etcd restart: keys and leases stay, heartbeats and the watch resume', async () => {
    const watch = watchEvents(plane);
    try {
      await warmUp(worker, watch);
      const w = workerRegistration({ ttl_seconds: 10 });
      await worker.register(w);
      await watch.next(w.id, 'joined', 5000);

      await etcd.kill();
      await expect(worker.heartbeat(w.id)).rejects.toMatchObject({
        code: 'unavailable',
        message: expect.stringContaining(etcd.endpoint),
      });
      await etcd.restart();

      // The client reconnects (its circuit breaker may hold the host for a few seconds).
      expect(
        await eventually(
          async () =>
            worker.heartbeat(w.id).then(
              () => true,
              () => false,
            ),
          20_000,
          250,
        ),
      ).not.toBeNull();
      expect(await plane.getWorker(w.id)).toMatchObject({ id: w.id, healthy: true });

      // The watch, which lived through the restart, still reports changes.
      await worker.updateResources(w.id, { cpu_cores: 5, memory_mb: 5, disk_gb: 5, max_vms: 5 });
      const updated = await watch.next(w.id, 'updated', 20_000);
      expect(updated.worker).toMatchObject({ cpu_cores: 5 });
      await worker.deregister(w.id);
      await watch.next(w.id, 'left', 10_000);
    } finally {
      await watch.stop();
    }
  }, 60_000);

  it('reports an unreachable etcd as a clear unavailable error naming the endpoint', async () => {
    const nowhere = new EtcdRegistry({ endpoints: ['http://127.0.0.1:1'], prefix, requestTimeoutMs: 1000 });
    try {
      const err = await nowhere.listWorkers().then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ code: 'unavailable', message: expect.stringContaining('http://127.0.0.1:1') });
    } finally {
      await nowhere.close();
    }
  }, 30_000);

  it('skips values under the prefix that are not worker records', async () => {
    await raw.put(`${prefix}garbage`).value('not json');
    await raw.put(`${prefix}other`).value(JSON.stringify({ hello: 'world' }));
    const w = workerRegistration({ ttl_seconds: 30 });
    await worker.register(w);
    const list = await plane.listWorkers();
    expect(list.map((x) => x.id)).toContain(w.id);
    expect(list.map((x) => x.id)).not.toContain('garbage');
    expect(list.map((x) => x.id)).not.toContain('other');
    expect(await plane.getWorker('garbage')).toBeNull();
    await worker.deregister(w.id);
    await raw.delete().key(`${prefix}garbage`);
    await raw.delete().key(`${prefix}other`);
  }, 30_000);
});
