/**
 * The fast reads stay correct: the worker snapshot behind `GET /workers` and `GET /cluster/stats`
 * (shared reads, thrown away by this replica's writes, by events and by age), the API key records
 * behind authentication (revocation honoured at once here and within RECHECK_MS elsewhere), and the
 * security headers written as data. Cross-replica behaviour is in cluster.read-model.test.ts.
 */
import helmet from '@fastify/helmet';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MemoryEventBus } from '../src/adapters/events/memory-event-bus.ts';
import { type ApiKeyRecord, evt, type Worker } from '../src/domain/index.ts';
import { SECURITY_HEADERS } from '../src/server/auth/browser-safety.ts';
import { KeyRecords, RECHECK_MS } from '../src/server/auth/key-records.ts';
import { AnswerMemo, MEMO_MS } from '../src/server/read-model/answer-memo.ts';
import { MAX_AGE_MS, WorkerSnapshot } from '../src/server/read-model/worker-snapshot.ts';
import { bearer } from './harness/auth.ts';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';

/** A promise and the functions that settle it, for reads held open by a test. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const worker = (id: string): Worker =>
  ({ id, status: 'active', zone: 'z', capabilities: [], labels: {} }) as unknown as Worker;

/** A store whose reads the test answers, and a clock the test moves. */
function fixture() {
  const reads: ReturnType<typeof deferred<Worker[]>>[] = [];
  const store = {
    listWorkers: vi.fn(() => {
      const read = deferred<Worker[]>();
      reads.push(read);
      return read.promise;
    }),
  };
  const bus = new MemoryEventBus();
  let now = 1_000_000;
  const clock = { now: () => now, advance: (ms: number) => (now += ms) };
  const snapshot = new WorkerSnapshot(store, bus, MAX_AGE_MS, clock.now);
  return { store, reads, bus, clock, snapshot };
}

describe('the worker snapshot', () => {
  it('serves requests that arrive together from one read, then from memory until it is MAX_AGE_MS old', async () => {
    const { store, reads, clock, snapshot } = fixture();
    const waiting = [snapshot.current(), snapshot.current(), snapshot.current()];
    expect(store.listWorkers).toHaveBeenCalledTimes(1);
    reads[0]!.resolve([worker('a')]);
    const answers = await Promise.all(waiting);
    expect(new Set(answers).size).toBe(1);
    expect(answers[0]!.workers.map((w) => w.id)).toEqual(['a']);

    clock.advance(MAX_AGE_MS - 1);
    expect(snapshot.current()).toBe(answers[0]); // a value, not a read
    expect(store.listWorkers).toHaveBeenCalledTimes(1);
    clock.advance(1);
    const again = snapshot.current();
    expect(again).toBeInstanceOf(Promise);
    expect(store.listWorkers).toHaveBeenCalledTimes(2);
    reads[1]!.resolve([worker('a'), worker('b')]);
    expect((await again).workers.map((w) => w.id)).toEqual(['a', 'b']);
  });

  it('is read again after an event that may change a worker, not after one that cannot', async () => {
    const { store, reads, bus, snapshot } = fixture();
    const first = snapshot.current();
    reads[0]!.resolve([worker('a')]);
    await first;
    await bus.publish(
      evt.taskStarted({ id: 't', type: 'vm:execute', status: 'running', vm_id: 'v', worker_id: 'a', retry_count: 0 }),
    );
    expect(snapshot.current()).not.toBeInstanceOf(Promise);
    await bus.publish(evt.workerActivated('a'));
    const after = snapshot.current();
    expect(after).toBeInstanceOf(Promise);
    expect(store.listWorkers).toHaveBeenCalledTimes(2);
    reads[1]!.resolve([]);
    expect((await after).workers).toEqual([]);
  });

  it('does not keep a read that was under way when this replica changed a worker', async () => {
    const { store, reads, snapshot } = fixture();
    const before = snapshot.current(); // read 0 begins
    snapshot.invalidate(); // a drain committed while it ran
    const after = snapshot.current(); // must not wait on read 0
    expect(store.listWorkers).toHaveBeenCalledTimes(2);
    reads[0]!.resolve([worker('stale')]);
    reads[1]!.resolve([worker('fresh')]);
    expect((await before).workers[0]!.id).toBe('stale'); // it was asked before the change
    expect((await after).workers[0]!.id).toBe('fresh');
    // Read 0 finished last-but-one and was not kept: what is held now is read 1.
    const held = snapshot.current();
    expect(held).not.toBeInstanceOf(Promise);
    expect((held as Awaited<typeof after>).workers[0]!.id).toBe('fresh');
  });

  it('passes a failed read on, and reads again on the next request', async () => {
    const { store, reads, snapshot } = fixture();
    const failing = snapshot.current();
    reads[0]!.reject(new Error('store away'));
    await expect(failing).rejects.toThrow('store away');
    const retry = snapshot.current();
    expect(store.listWorkers).toHaveBeenCalledTimes(2);
    reads[1]!.resolve([]);
    expect((await retry).workers).toEqual([]);
  });

  it('stops following events when closed', async () => {
    const { store, reads, bus, snapshot } = fixture();
    const first = snapshot.current();
    reads[0]!.resolve([]);
    await first;
    snapshot.close();
    const second = snapshot.current(); // closed: read again, and subscribed again
    reads[1]!.resolve([]);
    await second;
    await bus.publish(evt.workerActivated('a'));
    expect(snapshot.current()).toBeInstanceOf(Promise);
    expect(store.listWorkers).toHaveBeenCalledTimes(3);
  });
});

describe('derived answers', () => {
  it('are the same object for the same question, made again for a new snapshot or after MEMO_MS', () => {
    let now = 0;
    const memo = new AnswerMemo(MEMO_MS, () => now);
    let made = 0;
    const make = () => ({ made: ++made });
    const first = memo.get(1, 'stats', make);
    expect(memo.get(1, 'stats', make)).toBe(first);
    expect(memo.get(1, 'list', make)).not.toBe(first);
    now += MEMO_MS;
    expect(memo.get(1, 'stats', make)).not.toBe(first);
    const current = memo.get(1, 'stats', make);
    expect(memo.get(2, 'stats', make)).not.toBe(current);
  });
});

describe('API key records', () => {
  const record = (over: Partial<ApiKeyRecord> = {}): ApiKeyRecord => ({
    id: 'k1',
    name: 'ci',
    role: 'viewer',
    hash: 'x',
    created_at: new Date(0),
    created_by: null,
    last_used_at: null,
    expires_at: null,
    revoked_at: null,
    ...over,
  });

  function keys() {
    let stored: ApiKeyRecord | null = record();
    let now = 5_000_000;
    const read = vi.fn(async () => stored);
    const records = new KeyRecords(read, RECHECK_MS, 10_000, () => now);
    return {
      records,
      read,
      revoke: () => (stored = record({ revoked_at: new Date() })),
      advance: (ms: number) => (now += ms),
    };
  }

  it('reads a key once per RECHECK_MS, so a revocation elsewhere is seen within that bound', async () => {
    const k = keys();
    expect(await k.records.get('k1')).toMatchObject({ revoked_at: null });
    k.revoke(); // on another replica
    k.advance(RECHECK_MS - 1);
    expect(k.records.get('k1')).toMatchObject({ revoked_at: null }); // still within the bound
    k.advance(1);
    expect((await k.records.get('k1'))?.revoked_at).not.toBeNull();
    expect(k.read).toHaveBeenCalledTimes(2);
  });

  it('shares one read between requests, and forgets everything at once after a local revocation', async () => {
    const k = keys();
    const together = await Promise.all([k.records.get('k1'), k.records.get('k1'), k.records.get('k1')]);
    expect(k.read).toHaveBeenCalledTimes(1);
    expect(together[0]).toBe(together[2]);
    k.revoke();
    k.records.forget();
    expect((await k.records.get('k1'))?.revoked_at).not.toBeNull();
  });

  it('does not keep a read that began before a revocation here', async () => {
    let answer!: (r: ApiKeyRecord) => void;
    const read = vi.fn(() => new Promise<ApiKeyRecord | null>((resolve) => (answer = resolve)));
    const records = new KeyRecords(read);
    const early = records.get('k1');
    records.forget();
    answer(record()); // the record as it was before the revocation
    await early;
    const next = records.get('k1');
    expect(next).toBeInstanceOf(Promise); // read again, not served from the early read
    answer(record({ revoked_at: new Date() }));
    expect((await next)?.revoked_at).not.toBeNull();
  });

  it('does not remember unknown ids: a key made a moment ago works at once', async () => {
    let stored: ApiKeyRecord | null = null;
    const records = new KeyRecords(async () => stored);
    expect(await records.get('k1')).toBeNull();
    stored = record();
    expect(await records.get('k1')).toMatchObject({ id: 'k1' });
  });
});

describe('on the embedded system', () => {
  let t: TestSystem;
  beforeAll(async () => {
    t = await startTestSystem();
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
  });

  const get = async (url: string) => (await t.app.inject({ method: 'GET', url })).json();
  const post = async (url: string, payload: object = {}) =>
    (await t.app.inject({ method: 'POST', url, payload })).statusCode;

  it('shows this replica’s own writes on the next read: drain, eligibility, activate', async () => {
    expect((await get('/api/v1/cluster/stats')).active_workers).toBe(1); // the snapshot is held now
    expect(await post('/api/v1/workers/test-worker/drain', { no_deadline: true })).toBe(200);
    expect((await get('/api/v1/workers')).workers[0]).toMatchObject({ status: 'draining', eligible: false });
    expect(await get('/api/v1/cluster/stats')).toMatchObject({ draining_workers: 1, available_vm_slots: 0 });
    expect((await get('/api/v1/workers?status=draining')).total).toBe(1);
    expect(await post('/api/v1/workers/test-worker/activate')).toBe(200);
    expect((await get('/api/v1/workers')).workers[0]).toMatchObject({ status: 'active', eligible: true });
    expect(await post('/api/v1/workers/test-worker/eligibility', { eligible: false })).toBe(200);
    expect((await get('/api/v1/workers?zone=test-zone')).workers[0].eligible).toBe(false);
    expect((await get('/api/v1/cluster/stats')).available_vm_slots).toBe(0);
    expect(await post('/api/v1/workers/test-worker/eligibility', { eligible: true })).toBe(200);
    expect((await get('/api/v1/cluster/stats')).available_vm_slots).toBeGreaterThan(0);
  });

  it('answers a burst of reads from a handful of store reads, and the answers agree with the store', async () => {
    const store = t.system.engines.store;
    const spy = vi.spyOn(store, 'listWorkers');
    const getKey = vi.spyOn(store, 'getApiKey');
    try {
      const answers = await Promise.all(Array.from({ length: 200 }, () => get('/api/v1/cluster/stats')));
      // Reads are shared: at most one per MAX_AGE_MS while the burst lasts, plus the scheduler's.
      expect(spy.mock.calls.length).toBeLessThan(20);
      expect(getKey.mock.calls.length).toBeLessThan(20);
      const workers = await store.listWorkers();
      expect(answers.at(-1)).toMatchObject({ total_workers: workers.length, total_cpu_cores: 8 });
    } finally {
      spy.mockRestore();
      getKey.mockRestore();
    }
  });

  it('sees a worker change made without an event once the snapshot is MAX_AGE_MS old', async () => {
    expect((await get('/api/v1/workers')).workers[0].max_vms).toBe(10); // held now
    // Written straight to the store: nothing announces it, as nothing announces a heartbeat.
    await t.system.engines.store.updateWorkerResources('test-worker', { max_vms: 11 });
    try {
      await new Promise((resolve) => setTimeout(resolve, MAX_AGE_MS + 20));
      expect((await get('/api/v1/workers')).workers[0].max_vms).toBe(11);
      expect((await get('/api/v1/cluster/stats')).max_vms).toBe(11);
    } finally {
      await t.system.engines.store.updateWorkerResources('test-worker', { max_vms: 10 });
    }
  });

  it('refuses a key revoked through this replica on its very next request', async () => {
    const { token } = await t.system.controlPlane.tokens.create({ name: 'read-model-revoke', role: 'viewer' }, null);
    const asKey = { method: 'GET' as const, url: '/api/v1/cluster/stats', headers: bearer(token) };
    expect((await t.rawInject(asKey)).statusCode).toBe(200); // its record is held now
    const revoked = await t.app.inject({ method: 'DELETE', url: '/api/v1/tokens/read-model-revoke' });
    expect(revoked.statusCode).toBe(200);
    const refused = await t.rawInject(asKey);
    expect(refused.statusCode).toBe(401);
    expect(refused.json().error.message).toMatch(/revoked/);
  });

  it('still records when a key was last used', async () => {
    const { token } = await t.system.controlPlane.tokens.create({ name: 'read-model-used', role: 'viewer' }, null);
    for (let i = 0; i < 3; i++) await t.rawInject({ method: 'GET', url: '/api/v1/workers', headers: bearer(token) });
    const deadline = Date.now() + 5000;
    let used: string | null = null;
    while (!used && Date.now() < deadline) {
      const keys = (await get('/api/v1/tokens')).tokens as { name: string; last_used_at: string | null }[];
      used = keys.find((k) => k.name === 'read-model-used')?.last_used_at ?? null;
      if (!used) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(used).not.toBeNull();
  });

  it('sends the security headers @fastify/helmet sent, on answers and on refusals', async () => {
    const reference = Fastify();
    await reference.register(helmet, { contentSecurityPolicy: false, crossOriginEmbedderPolicy: false });
    reference.get('/', async () => ({}));
    const bare = Fastify();
    bare.get('/', async () => ({}));
    const withHelmet = (await reference.inject('/')).headers;
    const without = (await bare.inject('/')).headers;
    const helmetHeaders = Object.fromEntries(Object.entries(withHelmet).filter(([name]) => !(name in without)));
    expect(helmetHeaders).toEqual(SECURITY_HEADERS);
    await Promise.all([reference.close(), bare.close()]);

    const ok = await t.app.inject({ method: 'GET', url: '/api/v1/workers' });
    const refused = await t.rawInject({ method: 'GET', url: '/api/v1/workers' });
    expect(refused.statusCode).toBe(401);
    for (const res of [ok, refused]) expect(res.headers).toMatchObject(SECURITY_HEADERS);
  });
});
