/**
 * The fast reads across replicas, on a real Postgres and Redis: what one replica writes, another
 * serves within the documented bounds (a revoked key refused within RECHECK_MS, a worker change
 * shown within MAX_AGE_MS), and the rate limit's shared count in Redis stays one count for the
 * whole cluster without a Redis round trip on every request.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RECHECK_MS } from '../src/server/auth/key-records.ts';
import { FLUSH_MS, sharedRateCountStore } from '../src/server/auth/shared-rate-count.ts';
import { MAX_AGE_MS } from '../src/server/read-model/worker-snapshot.ts';
import { bearer } from './harness/auth.ts';
import { type InProcessCluster, startInProcessCluster } from './harness/in-process-cluster.ts';

let c: InProcessCluster;
const clients: Redis[] = [];

beforeAll(async () => {
  c = await startInProcessCluster({ replicas: 2, agents: [{ id: 'rm-worker', zone: 'zone-a' }] });
}, 180_000);

afterAll(async () => {
  for (const client of clients) client.disconnect();
  await c?.stop();
}, 120_000);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitForWorker(replica: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const res = await c.replicas[replica]!.http.inject({ method: 'GET', url: '/api/v1/workers' });
    if (res.json().workers.some((w: { id: string; is_healthy: boolean }) => w.id === 'rm-worker' && w.is_healthy))
      return;
    await sleep(100);
  }
  throw new Error('rm-worker never showed up healthy');
}

describe('across replicas', () => {
  it('refuses a key revoked on another replica within RECHECK_MS', async () => {
    const [a, b] = c.replicas as [(typeof c.replicas)[0], (typeof c.replicas)[0]];
    const { token } = await a.tokens.create({ name: 'cross-revoke', role: 'viewer' }, null);
    const read = { method: 'GET' as const, url: '/api/v1/cluster/stats', headers: bearer(token) };
    expect((await b.http.inject(read)).statusCode).toBe(200); // replica b holds its record now
    expect((await a.http.inject({ method: 'DELETE', url: '/api/v1/tokens/cross-revoke' })).statusCode).toBe(200);
    expect((await a.http.inject(read)).statusCode).toBe(401); // at once where it was revoked
    await sleep(RECHECK_MS + 50);
    const refused = await b.http.inject(read);
    expect(refused.statusCode).toBe(401);
    expect(refused.json().error.message).toMatch(/revoked/);
  });

  it('shows a drain made on another replica within MAX_AGE_MS, and its own activate at once', async () => {
    await waitForWorker(0);
    await waitForWorker(1);
    const stats = async (replica: number) =>
      (await c.replicas[replica]!.http.inject({ method: 'GET', url: '/api/v1/cluster/stats' })).json();
    expect((await stats(0)).draining_workers).toBe(0); // replica 0 holds a snapshot now
    const drained = await c.replicas[1]!.http.inject({
      method: 'POST',
      url: '/api/v1/workers/rm-worker/drain',
      payload: { no_deadline: true },
    });
    expect(drained.statusCode).toBe(200);
    expect((await stats(1)).draining_workers).toBe(1); // the replica that wrote: at once
    await sleep(MAX_AGE_MS + 20);
    expect((await stats(0)).draining_workers).toBe(1);
    const activated = await c.replicas[0]!.http.inject({ method: 'POST', url: '/api/v1/workers/rm-worker/activate' });
    expect(activated.statusCode).toBe(200);
    expect((await stats(0)).active_workers).toBe(1);
    await sleep(MAX_AGE_MS + 20);
    expect((await stats(1)).draining_workers).toBe(0);
  });
});

describe('the shared rate count', () => {
  /** One store per "replica", each on its own Redis connection, as separate processes would be. */
  function replicaStores(prefix: string) {
    return [0, 1].map(() => {
      const client = new Redis(c.redis.url, { lazyConnect: false });
      clients.push(client);
      const Store = sharedRateCountStore(client, prefix);
      return { client, store: new Store() };
    });
  }
  type Store = InstanceType<ReturnType<typeof sharedRateCountStore>>;
  const incr = (store: Store, key: string, windowMs: number, max: number) =>
    new Promise<{ current: number; ttl: number }>((resolve, reject) =>
      store.incr(
        key,
        (err, result) => (err || !result ? reject(err ?? new Error('no result')) : resolve(result)),
        windowMs,
        max,
      ),
    );

  it('counts exactly near the limit, whichever replica is asked', async () => {
    const [a, b] = replicaStores('rl-exact:');
    const max = 10;
    const answers: number[] = [];
    for (let i = 0; i < max + 3; i++) answers.push((await incr((i % 2 ? b : a)!.store, 'caller', 60_000, max)).current);
    expect(answers.slice(0, max).every((n) => n <= max)).toBe(true);
    expect(answers.slice(max).every((n) => n > max)).toBe(true);
  });

  it('far below the limit, counts here and sends the counts in batches that add up', async () => {
    const [a, b] = replicaStores('rl-batch:');
    const max = 1_000_000;
    await Promise.all([
      ...Array.from({ length: 200 }, () => incr(a!.store, 'busy', 60_000, max)),
      ...Array.from({ length: 100 }, () => incr(b!.store, 'busy', 60_000, max)),
    ]);
    // Answered before being sent: Redis has not seen them all yet…
    expect(Number(await a!.client.get('rl-batch:busy'))).toBeLessThan(300);
    await sleep(FLUSH_MS * 3);
    // …and one flush later it has every one of them.
    expect(Number(await a!.client.get('rl-batch:busy'))).toBe(300);
    const ttl = await a!.client.pttl('rl-batch:busy');
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it('over the limit refuses until the window ends, then counts afresh', async () => {
    const [a, b] = replicaStores('rl-window:');
    const max = 3;
    const windowMs = 400;
    for (let i = 0; i < max; i++) expect((await incr(a!.store, 'w', windowMs, max)).current).toBeLessThanOrEqual(max);
    expect((await incr(b!.store, 'w', windowMs, max)).current).toBeGreaterThan(max);
    expect((await incr(a!.store, 'w', windowMs, max)).current).toBeGreaterThan(max);
    await sleep(windowMs + 50);
    expect((await incr(b!.store, 'w', windowMs, max)).current).toBe(1);
  });

  it('passes a Redis failure on to the plugin (which then serves rather than refuses)', async () => {
    const [a] = replicaStores('rl-down:');
    a!.client.disconnect();
    await expect(incr(a!.store, 'nobody', 60_000, 10)).rejects.toThrow();
  });
});
