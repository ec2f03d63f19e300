/**
 * ConsulRegistry against AN EMULATION of Consul's documented HTTP API (test/harness/consul-api.ts),
 * not a real Consul: no Consul binary can run here. The conformance suite runs with ACLs on and a
 * write token; then the Consul specifics: meta layout and limits, ACL errors, the reaper, blocking
 * queries and the index reset, error messages.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsulRegistry, type ConsulRegistryOptions } from '../src/adapters/discovery/consul-registry.ts';
import {
  eventually,
  registryConformance,
  sleep,
  warmUp,
  watchEvents,
  workerRegistration,
} from './conformance/registry.suite.ts';
import { startConsulApi, type ConsulApi } from './harness/consul-api.ts';
import { freePort } from './harness/processes.ts';

const WRITE_TOKEN = 'f3e9c1a2-write-token';
const READ_TOKEN = '77aa01bc-read-token';

function options(api: ConsulApi, overrides: Partial<ConsulRegistryOptions> = {}): ConsulRegistryOptions {
  return {
    address: api.address,
    scheme: 'http',
    datacenter: api.datacenter,
    token: WRITE_TOKEN,
    serviceName: 'aetherium-worker',
    deregisterCriticalServiceAfterMs: 60_000,
    requestTimeoutMs: 5000,
    watchWaitSeconds: 5,
    watchRateLimit: { burst: 2, intervalMs: 50 },
    ...overrides,
  };
}

registryConformance('consul (emulated HTTP API, ACLs on)', async () => {
  const api = await startConsulApi({ aclTokens: { [WRITE_TOKEN]: 'write', [READ_TOKEN]: 'read' } });
  const registry = new ConsulRegistry(options(api));
  const observer = new ConsulRegistry(options(api, { token: READ_TOKEN }));
  return {
    registry,
    observer,
    ttlSeconds: 2,
    expiryGraceMs: 600, // the emulated agent checks TTLs every 50 ms
    // A critical service stays (unhealthy) until DeregisterCriticalServiceAfter (≥ 1 min) reaps it.
    afterExpiry: 'unhealthy',
    afterDeregister: 'removed',
    async close() {
      await registry.close();
      await observer.close();
      await api.stop();
    },
  };
});

describe('ConsulRegistry: Consul specifics (against the emulated API)', () => {
  let api: ConsulApi;
  let registry: ConsulRegistry;

  beforeAll(async () => {
    api = await startConsulApi({ aclTokens: { [WRITE_TOKEN]: 'write', [READ_TOKEN]: 'read' } });
    registry = new ConsulRegistry(options(api));
  });

  afterAll(async () => {
    await registry?.close();
    await api?.stop();
  });

  async function rawHealth(name = 'aetherium-worker', token = WRITE_TOKEN) {
    const response = await fetch(`${api.url}/v1/health/service/${name}`, { headers: { 'X-Consul-Token': token } });
    return (await response.json()) as Array<{
      Service: { ID: string; Address: string; Port: number; Tags: string[]; Meta: Record<string, string> };
      Checks: Array<{ CheckID: string; Status: string }>;
    }>;
  }

  it('registers one service instance: one meta entry per field, Address/Port, Tags, a TTL check', async () => {
    const w = workerRegistration({
      ttl_seconds: 7,
      labels: { tier: 'gold', 'topology.zone/x': 'r1' },
      capabilities: ['kvm', 'gpu'],
    });
    await registry.register(w);

    const entry = (await rawHealth()).find((e) => e.Service.ID === w.id)!;
    expect(entry.Service.Address).toBe('10.0.0.7');
    expect(entry.Service.Port).toBe(9100);
    expect(entry.Service.Tags).toEqual(['zone:zone-a', 'cap:kvm', 'cap:gpu']);
    expect(entry.Service.Meta).toMatchObject({
      aetherium: '1',
      hostname: w.hostname,
      zone: 'zone-a',
      status: 'active',
      eligible: 'true',
      cpu_cores: '16',
      ttl_seconds: '7',
      capabilities: 'kvm,gpu',
      label_tier: 'gold',
      label_topology_2ezone_2fx: 'r1',
      md_build: '"abc123"',
      md_nested: '{"ok":true,"n":3}',
    });
    for (const [key, value] of Object.entries(entry.Service.Meta)) {
      expect(key.length).toBeLessThanOrEqual(64);
      expect(Buffer.byteLength(value)).toBeLessThanOrEqual(512);
    }
    expect(entry.Checks.map((c) => [c.CheckID, c.Status])).toEqual([
      ['serfHealth', 'passing'],
      [`service:${w.id}`, 'passing'],
    ]);

    const body = api.requests.filter((r) => r.path === '/v1/agent/service/register').at(-1)!.body as Record<
      string,
      any
    >;
    expect(body).toMatchObject({ ID: w.id, Name: 'aetherium-worker' });
    expect(body.Check).toMatchObject({
      CheckID: `service:${w.id}`,
      TTL: '7s',
      Status: 'passing',
      DeregisterCriticalServiceAfter: '60s',
    });
    expect(await registry.getWorker(w.id)).toMatchObject({
      labels: { tier: 'gold', 'topology.zone/x': 'r1' },
      address: '10.0.0.7:9100',
    });
    await registry.deregister(w.id);
  });

  it('refuses, before sending anything, a worker whose fields cannot fit in Consul meta', async () => {
    const sent = () => api.requests.filter((r) => r.path.startsWith('/v1/agent/service/register')).length;
    const before = sent();
    const cases: Array<[string, Partial<Parameters<typeof workerRegistration>[0]>, RegExp]> = [
      ['a 600-character label value', { labels: { notes: 'x'.repeat(600) } }, /label "notes" is 600 bytes.*512/],
      ['a hostname of 300 "é" (600 bytes)', { hostname: 'é'.repeat(300) }, /hostname is 600 bytes/],
      [
        'a 70-character label key',
        { labels: { ['k'.repeat(70)]: 'v' } },
        /label "k{70}": its meta key "label_k{70}" is 76 characters \(at most 64\)/,
      ],
      ['metadata too big as JSON', { metadata: { blob: 'y'.repeat(520) } }, /metadata "blob" \(as JSON\) is 522 bytes/],
      [
        'too many labels',
        { labels: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`l${i}`, 'v'])) },
        /75 meta entries.*at most 64/,
      ],
      ['a capability with a comma', { capabilities: ['a,b'] }, /capability must be non-empty and contain no ","/],
    ];
    for (const [what, overrides, message] of cases) {
      const w = workerRegistration(overrides);
      const err = await registry.register(w).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, what).toMatchObject({ code: 'validation_failed', message: expect.stringMatching(message) });
      expect((err as Error).message, what).toContain(w.id);
    }
    expect(sent()).toBe(before);
  });

  it('the emulated agent rejects oversize meta with 400 the way Consul does', async () => {
    const put = (meta: Record<string, string>) =>
      fetch(`${api.url}/v1/agent/service/register`, {
        method: 'PUT',
        headers: { 'X-Consul-Token': WRITE_TOKEN },
        body: JSON.stringify({ ID: 'raw', Name: 'raw', Meta: meta }),
      });
    const longValue = await put({ k: 'v'.repeat(513) });
    expect(longValue.status).toBe(400);
    expect(await longValue.text()).toMatch(
      /^Invalid Service Meta: Couldn't load metadata pair \('k', 'v+'\): Value is too long \(limit: 512 characters\)$/,
    );
    const longKey = await put({ ['k'.repeat(129)]: 'v' });
    expect(longKey.status).toBe(400);
    expect(await longKey.text()).toContain('Key is too long (limit: 128 characters)');
    const badKey = await put({ 'a.b': 'v' });
    expect(await badKey.text()).toContain('Key contains invalid characters');
    expect((await put({ k: 'v'.repeat(512) })).status).toBe(200);
    await fetch(`${api.url}/v1/agent/service/deregister/raw`, {
      method: 'PUT',
      headers: { 'X-Consul-Token': WRITE_TOKEN },
    });
  });

  it('sends the ACL token on every request, and never puts it in an error message', async () => {
    const from = api.requests.length;
    const w = workerRegistration();
    await registry.register(w);
    await registry.heartbeat(w.id);
    await registry.updateStatus(w.id, 'draining');
    await registry.listWorkers();
    await registry.deregister(w.id);
    const mine = api.requests.slice(from);
    expect(mine.length).toBeGreaterThanOrEqual(6);
    expect(mine.every((r) => r.token === WRITE_TOKEN)).toBe(true);
    expect(new Set(mine.map((r) => r.path.split('?')[0]!.replace(/\/[^/]*$/, '')))).toEqual(
      new Set(['/v1/health/service', '/v1/agent/service', '/v1/agent/check/pass', '/v1/agent/service/deregister']),
    );
  });

  it('explains ACL failures: no token, an unknown token, a token without write', async () => {
    const w = workerRegistration();
    await registry.register(w); // something to list

    const anonymous = new ConsulRegistry(options(api, { token: '' }));
    const noWrite = await anonymous.register(workerRegistration()).then(
      () => null,
      (e: unknown) => e,
    );
    expect(noWrite).toMatchObject({
      code: 'forbidden',
      message: expect.stringMatching(
        /Consul denied PUT \/v1\/agent\/service\/register \(403: Permission denied.*no ACL token is configured \(discovery\.consul\.token\)/,
      ),
    });
    const hidden = await anonymous.listWorkers().then(
      () => null,
      (e: unknown) => e,
    );
    expect(hidden).toMatchObject({
      code: 'forbidden',
      message: expect.stringMatching(/hid instances of "aetherium-worker".*ACLs.*anonymous token/),
    });

    const unknownToken = 'deadbeef-not-a-real-token';
    const stranger = new ConsulRegistry(options(api, { token: unknownToken }));
    const notFound = await stranger.listWorkers().then(
      () => null,
      (e: unknown) => e,
    );
    expect(notFound).toMatchObject({
      code: 'forbidden',
      message: expect.stringMatching(/403: ACL not found\): the configured ACL token .* is not known to Consul/),
    });
    expect((notFound as Error).message).not.toContain(unknownToken);
    expect(JSON.stringify(notFound)).not.toContain(unknownToken);

    const reader = new ConsulRegistry(options(api, { token: READ_TOKEN }));
    expect((await reader.listWorkers()).map((x) => x.id)).toContain(w.id);
    const readOnly = await reader.heartbeat(w.id).then(
      () => null,
      (e: unknown) => e,
    );
    expect(readOnly).toMatchObject({
      code: 'forbidden',
      message: expect.stringMatching(/lacks permission 'service:write'.*configured ACL token lacks a permission/),
    });

    for (const r of [anonymous, stranger, reader]) await r.close();
    await registry.deregister(w.id);
  });

  it('turns 5xx, an unreachable agent and an unknown datacenter into clear unavailable errors', async () => {
    api.failNext(1, 500, 'No cluster leader');
    await expect(registry.listWorkers()).rejects.toMatchObject({
      code: 'unavailable',
      message: expect.stringContaining('(500: No cluster leader)'),
    });

    const closedPort = await freePort(); // nothing listens there
    const nowhere = new ConsulRegistry(options(api, { address: `127.0.0.1:${closedPort}`, requestTimeoutMs: 2000 }));
    await expect(nowhere.listWorkers()).rejects.toMatchObject({
      code: 'unavailable',
      message: expect.stringContaining(`cannot reach Consul at http://127.0.0.1:${closedPort} (ECONNREFUSED)`),
    });

    const elsewhere = new ConsulRegistry(options(api, { datacenter: 'dc9' }));
    await expect(elsewhere.listWorkers()).rejects.toMatchObject({
      code: 'unavailable',
      message: expect.stringContaining('No path to datacenter'),
    });
    expect(api.requests.at(-1)!.path).toContain('dc=dc9');
    for (const r of [nowhere, elsewhere]) await r.close();
  });

  it('an older agent answering 500 "does not have associated TTL" to a pass also leads to re-registration', async () => {
    const w = workerRegistration({ ttl_seconds: 30 });
    await registry.register(w);
    const from = api.requests.length;
    api.failNext(1, 500, `CheckID "service:${w.id}" does not have associated TTL`);
    await registry.heartbeat(w.id);
    expect(api.requests.slice(from).map((r) => r.path.split('?')[0])).toEqual([
      `/v1/agent/check/pass/service%3A${w.id}`,
      '/v1/agent/service/register',
      `/v1/agent/check/pass/service%3A${w.id}`,
    ]);
    expect((await registry.getWorker(w.id))?.healthy).toBe(true);
    await registry.deregister(w.id);
  });

  it('watch uses blocking queries (index + wait) instead of polling', async () => {
    const watch = watchEvents(registry);
    try {
      await warmUp(registry, watch);
      await sleep(300);
      const from = api.requests.length;
      await sleep(2000);
      const reads = api.requests.slice(from).filter((r) => r.path.startsWith('/v1/health/service/'));
      expect(reads.length).toBeLessThanOrEqual(1); // one long-poll at most (wait = 5 s), not a loop
      const last = api.requests.filter((r) => r.path.startsWith('/v1/health/service/')).at(-1)!;
      expect(last.path).toMatch(/[?&]index=\d+/);
      expect(last.path).toContain('wait=5s');
      expect(last.path).toContain('dc=dc1');
    } finally {
      await watch.stop();
    }
  });

  it('watch resets its index when X-Consul-Index goes backwards (a snapshot restore) and keeps reporting promptly', async () => {
    const watch = watchEvents(registry);
    try {
      await warmUp(registry, watch);
      api.rewindIndex(1);
      const a = workerRegistration({ ttl_seconds: 60 });
      await registry.register(a);
      // The query blocked on the old, higher index returns at its wait (5 s) with a lower index...
      await watch.next(a.id, 'joined', 10_000);
      // ...after which the adapter starts again from 0 and blocks on the new index: the next change is prompt.
      const b = workerRegistration({ ttl_seconds: 60 });
      const started = Date.now();
      await registry.register(b);
      await watch.next(b.id, 'joined', 10_000);
      expect(Date.now() - started).toBeLessThan(1500);
      await registry.deregister(a.id);
      await registry.deregister(b.id);
    } finally {
      await watch.stop();
    }
  }, 30_000);
});

describe('ConsulRegistry: DeregisterCriticalServiceAfter (emulated reaper, accelerated)', () => {
  let api: ConsulApi;

  beforeAll(async () => {
    // Consul's documented minimum is 1 minute and its reaper runs every 30 s; shortened here.
    api = await startConsulApi({ minDeregisterCriticalServiceAfterMs: 500, reapIntervalMs: 100 });
  });

  afterAll(async () => {
    await api?.stop();
  });

  it('a worker reaped while cut off comes back on its next heartbeat; another instance cannot revive it', async () => {
    const worker = new ConsulRegistry(options(api, { token: '', deregisterCriticalServiceAfterMs: 500 }));
    const plane = new ConsulRegistry(options(api, { token: '', deregisterCriticalServiceAfterMs: 500 }));
    const watch = watchEvents(plane);
    try {
      await warmUp(worker, watch);
      const w = workerRegistration({ ttl_seconds: 1 });
      await worker.register(w);
      await watch.next(w.id, 'joined', 5000);

      expect(await eventually(() => api.checkStatus(`service:${w.id}`) === 'critical', 3000)).not.toBeNull();
      expect(await eventually(() => !api.serviceIds().includes(w.id), 3000)).not.toBeNull();
      expect(await plane.getWorker(w.id)).toBeNull();
      await watch.next(w.id, 'left', 3000);

      await expect(plane.heartbeat(w.id)).rejects.toMatchObject({ code: 'not_found' });
      await worker.heartbeat(w.id);
      expect(await plane.getWorker(w.id)).toMatchObject({ id: w.id, healthy: true, labels: w.labels });
      await watch.next(w.id, 'joined', 5000, 2);
      expect(watch.typesOf(w.id)).toEqual(['joined', 'left', 'joined']);
      await worker.deregister(w.id);
    } finally {
      await watch.stop();
      await worker.close();
      await plane.close();
    }
  }, 30_000);
});
