/**
 * RedisEventBus against a real redis-server (Debian package `redis-server`): the conformance suite,
 * then what only a shared engine has — several instances on one Redis, restarts with and without
 * persistence, outages.
 *
 * The main server runs with `--appendonly yes` (see test/harness/redis.ts): a restart keeps the
 * stream and the counter. One test runs a second server with no persistence at all, which comes
 * back empty: the counter "goes backwards" there.
 */
import { randomUUID } from 'node:crypto';
import { eventuallyPasses } from './harness/eventually.ts';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisEventBus } from '../src/adapters/events/redis-event-bus.ts';
import type { ClusterEvent } from '../src/domain/index.ts';
import { eventBusConformance } from './conformance/event-bus.suite.ts';
import { startRedis, type RedisServer } from './harness/redis.ts';
import { sampleEvent, sampleNumber } from './harness/sample-events.ts';

let server: RedisServer | undefined;

beforeAll(async () => {
  server = await startRedis();
}, 30_000);

afterAll(async () => {
  await server?.stop();
}, 30_000);

function redis(): RedisServer {
  if (!server) throw new Error('redis-server did not start');
  return server;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const newKey = () => `test:events:${randomUUID().slice(0, 8)}`;

const eventually = (check: () => void | Promise<void>, timeoutMs = 5000, stepMs = 20) =>
  eventuallyPasses(check, timeoutMs, stepMs);

function record(bus: RedisEventBus): ClusterEvent[] {
  const events: ClusterEvent[] = [];
  bus.subscribe((e) => events.push(e));
  return events;
}

const byId = (a: ClusterEvent, b: ClusterEvent) => a.id - b.id;

function expectIncreasing(events: ClusterEvent[]): void {
  for (let i = 1; i < events.length; i++) expect(events[i]!.id).toBeGreaterThan(events[i - 1]!.id);
}

eventBusConformance('redis', async () => {
  const bus = new RedisEventBus({ url: redis().url, key: newKey(), retention: 100 });
  await bus.ready();
  return bus;
});

describe('RedisEventBus on Redis only', () => {
  const buses: RedisEventBus[] = [];
  afterEach(async () => {
    await Promise.all(buses.splice(0).map((b) => b.close()));
  });

  function bus(url: string, key: string, retention = 10_000): RedisEventBus {
    const b = new RedisEventBus({ url, key, retention, onError: () => {} });
    buses.push(b);
    return b;
  }

  it('is of kind "redis", and two instances on one Redis share the ids and see each other\'s events once', async () => {
    const key = newKey();
    const a = bus(redis().url, key);
    const b = bus(redis().url, key);
    expect(a.kind).toBe('redis');
    await Promise.all([a.ready(), b.ready()]);
    const onA = record(a);
    const onB = record(b);
    const published: ClusterEvent[] = [];
    for (let i = 0; i < 10; i++) published.push(await (i % 2 ? b : a).publish(sampleEvent(i, 'worker.joined')));
    expectIncreasing(published);
    expect(published.map((e) => e.id)).toEqual(Array.from({ length: 10 }, (_, i) => published[0]!.id + i));
    await eventually(() => expect(onA).toHaveLength(10));
    await eventually(() => expect(onB).toHaveLength(10));
    await sleep(100);
    expect(onA).toEqual(published);
    expect(onB).toEqual(published);
    expect(onB.map(sampleNumber)).toEqual(Array.from({ length: 10 }, (_, i) => i));
    expect(await b.replay(published[4]!.id)).toEqual({ events: published.slice(5) });
  });

  it("latestId on one instance sees the other's publishes at once, and on an instance that saw none", async () => {
    const key = newKey();
    const a = bus(redis().url, key);
    const b = bus(redis().url, key);
    await Promise.all([a.ready(), b.ready()]);
    expect(await a.latestId()).toBeNull();
    expect(await b.latestId()).toBeNull();
    const first = await a.publish(sampleEvent(0, 'vm.created'));
    expect(await b.latestId()).toBe(first.id);
    const second = await b.publish(sampleEvent(1, 'vm.created'));
    expect(await a.latestId()).toBe(second.id);
    const together = await Promise.all(
      Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).publish(sampleEvent(i, 'vm.deleted'))),
    );
    const top = Math.max(...together.map((e) => e.id));
    expect(await a.latestId()).toBe(top);
    expect(await b.latestId()).toBe(top);
    // A third instance, started after all of it, with nothing delivered to it.
    const c = bus(redis().url, key);
    await c.ready();
    expect(await c.latestId()).toBe(top);
    expect(await c.replay(top)).toEqual({ events: [] });
  });

  it('1,000 events published at once from two instances reach every subscriber on both once, in id order', async () => {
    const key = newKey();
    const a = bus(redis().url, key);
    const b = bus(redis().url, key);
    await Promise.all([a.ready(), b.ready()]);
    const subscribers = [record(a), record(a), record(b), record(b)];
    const published = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        (i % 2 ? b : a).publish(sampleEvent(i, 'task.completed', { worker_id: i % 2 ? 'b' : 'a' })),
      ),
    );
    expect(new Set(published.map((e) => e.id)).size).toBe(1000);
    const expected = [...published].sort(byId);
    for (const events of subscribers) await eventually(() => expect(events).toHaveLength(1000));
    await sleep(200);
    for (const events of subscribers) {
      expect(events).toHaveLength(1000);
      expect(events).toEqual(expected);
    }
  }, 20_000);

  it('survives a Redis restart with persistence: delivery resumes after the last id, ids keep increasing', async () => {
    const key = newKey();
    const a = bus(redis().url, key);
    const b = bus(redis().url, key);
    await Promise.all([a.ready(), b.ready()]);
    const onA = record(a);
    const onB = record(b);
    const before: ClusterEvent[] = [];
    for (let i = 0; i < 5; i++) before.push(await (i % 2 ? b : a).publish(sampleEvent(i, 'vm.created')));
    await eventually(() => expect(onB).toHaveLength(5));

    await redis().restart();

    const after: ClusterEvent[] = [];
    for (let i = 0; i < 5; i++) after.push(await (i % 2 ? a : b).publish(sampleEvent(i, 'vm.deleted')));
    const all = [...before, ...after];
    expectIncreasing(all);
    await eventually(() => expect(onA).toHaveLength(10), 10_000);
    await eventually(() => expect(onB).toHaveLength(10), 10_000);
    await sleep(200);
    expect(onA).toEqual(all);
    expect(onB).toEqual(all);
    expect(await a.replay(before[0]!.id - 1)).toEqual({ events: all });
  }, 30_000);

  it('survives a Redis that comes back empty (no persistence): ids never go back, the loss is a gap', async () => {
    const empty = await startRedis({ persistence: 'none' });
    try {
      const key = newKey();
      const a = bus(empty.url, key);
      const b = bus(empty.url, key);
      await Promise.all([a.ready(), b.ready()]);
      const onA = record(a);
      const onB = record(b);
      const before: ClusterEvent[] = [];
      for (let i = 0; i < 5; i++) before.push(await (i % 2 ? b : a).publish(sampleEvent(i, 'task.started')));
      await eventually(() => expect(onA).toHaveLength(5));
      await eventually(() => expect(onB).toHaveLength(5));

      await empty.restart(); // the stream, the counter and the epoch are gone

      const first = await a.publish(sampleEvent(1001, 'task.failed'));
      expect(first.id).toBeGreaterThan(before.at(-1)!.id);
      const second = await b.publish(sampleEvent(1002, 'task.failed'));
      expect(second.id).toBeGreaterThan(first.id);
      await eventually(() => expect(onA).toHaveLength(7), 10_000);
      await eventually(() => expect(onB).toHaveLength(7), 10_000);
      await sleep(300);
      expect(onA).toEqual([...before, first, second]);
      expect(onB).toEqual([...before, first, second]);

      // The newest id did not go back with the data either.
      expect(await a.latestId()).toBe(second.id);
      // The events before the restart are gone: resuming from before them is a gap.
      expect(await b.replay(before[1]!.id)).toEqual({ gap: true, oldest: first.id });
      expect(await b.replay(before.at(-1)!.id)).toEqual({ events: [first, second] });
    } finally {
      await Promise.all(buses.splice(0).map((x) => x.close()));
      await empty.stop();
    }
  }, 30_000);

  it('after Redis lost its latest writes (crash), the counter is raised past the ids already delivered', async () => {
    const key = newKey();
    const a = bus(redis().url, key);
    await a.ready();
    const onA = record(a);
    const before: ClusterEvent[] = [];
    for (let i = 0; i < 10; i++) before.push(await a.publish(sampleEvent(i, 'worker.updated')));
    await eventually(() => expect(onA).toHaveLength(10));

    // What an `appendfsync everysec` crash looks like: the last 3 events and INCRs never happened.
    const admin = new Redis(redis().url);
    try {
      const kept = before[6]!.id;
      for (const e of before.slice(7)) await admin.xdel(key, `${e.id}-0`);
      await admin.call('XSETID', key, `${kept}-0`);
      await admin.set(`${key}:seq`, kept);
      await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes'); // everyone reconnects
      // A's loop resynchronises on reconnection and raises the counter past what it delivered.
      await eventually(async () => expect(Number(await admin.get(`${key}:seq`))).toBe(before.at(-1)!.id), 5000, 50);
      expect(Number(await admin.get(`${key}:lost`))).toBe(before.at(-1)!.id);
    } finally {
      admin.disconnect();
    }
    // So an instance that saw none of the lost ids does not reuse them, nor tell an older newest id.
    const b = bus(redis().url, key);
    await b.ready();
    expect(await b.latestId()).toBe(before.at(-1)!.id);
    const next = await b.publish(sampleEvent(1000, 'worker.updated'));
    expect(next.id).toBeGreaterThan(before.at(-1)!.id);
    await eventually(() => expect(onA).toEqual([...before, next]), 10_000);
    expect(await a.replay(before[7]!.id)).toEqual({ gap: true, oldest: before[0]!.id });
  }, 30_000);

  it('a counter that lost its key does not reuse the ids still in the stream', async () => {
    const key = newKey();
    const a = bus(redis().url, key);
    const b = bus(redis().url, key); // saw nothing: its own floor cannot help
    await Promise.all([a.ready(), b.ready()]);
    const onA = record(a);
    const before = [await a.publish(sampleEvent(0, 'vm.created')), await a.publish(sampleEvent(1, 'vm.created'))];
    const admin = new Redis(redis().url);
    try {
      await admin.del(`${key}:seq`);
    } finally {
      admin.disconnect();
    }
    // The stream still says where it stands.
    expect(await b.latestId()).toBe(before[1]!.id);
    const next = await b.publish(sampleEvent(0, 'vm.deleted'));
    expect(next.id).toBe(before[1]!.id + 1);
    await eventually(() => expect(onA).toEqual([...before, next]));
  });

  it('while Redis is down publish fails fast, close() does not wait for it, and delivery resumes after', async () => {
    const key = newKey();
    const errors: unknown[] = [];
    const a = new RedisEventBus({ url: redis().url, key, onError: (err) => errors.push(err) });
    buses.push(a);
    const doomed = bus(redis().url, key);
    await Promise.all([a.ready(), doomed.ready()]);
    const onA = record(a);
    const first = await a.publish(sampleEvent(0, 'worker.left'));
    await eventually(() => expect(onA).toEqual([first]));

    await redis().kill();
    try {
      const started = Date.now();
      await expect(a.publish(sampleEvent(1, 'worker.left'))).rejects.toThrow();
      expect(Date.now() - started).toBeLessThan(15_000);
      const closing = Date.now();
      await doomed.close();
      expect(Date.now() - closing).toBeLessThan(1000);
      expect(errors.length).toBeGreaterThan(0);
    } finally {
      await redis().start();
    }
    let next: ClusterEvent | undefined;
    await eventually(async () => void (next = await a.publish(sampleEvent(2, 'worker.joined'))), 10_000, 200);
    expect(next!.id).toBeGreaterThan(first.id);
    await eventually(() => expect(onA.at(-1)).toEqual(next), 10_000);
    expectIncreasing(onA);
  }, 40_000);
});
