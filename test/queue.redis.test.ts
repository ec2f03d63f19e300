/**
 * BullmqTaskQueue against a real redis-server (Debian package `redis-server`): the conformance
 * suite, then what only Redis has — aborting one running task, restarts and outages of Redis.
 */
import { randomUUID } from 'node:crypto';
import { eventuallyPasses } from './harness/eventually.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BullmqTaskQueue } from '../src/adapters/queue/bullmq-task-queue.ts';
import type { QueuedTask } from '../src/ports/task-queue.ts';
import { taskQueueConformance } from './conformance/task-queue.suite.ts';
import { startRedis, type RedisServer } from './harness/redis.ts';

let server: RedisServer | undefined;

beforeAll(async () => {
  server = await startRedis(); // --appendonly yes: data survives restart()
}, 30_000);

afterAll(async () => {
  await server?.stop();
}, 30_000);

function redis(): RedisServer {
  if (!server) throw new Error('redis-server did not start');
  return server;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const task = (overrides: Partial<QueuedTask> = {}): QueuedTask => ({
  id: randomUUID(),
  type: 'vm:create',
  ...overrides,
});
const workerId = () => `w-${randomUUID().slice(0, 8)}`;

const eventually = (check: () => void | Promise<void>, timeoutMs = 5000, stepMs = 20) =>
  eventuallyPasses(check, timeoutMs, stepMs);

taskQueueConformance(
  'redis (bullmq)',
  async () => new BullmqTaskQueue({ url: redis().url, prefix: `test-${randomUUID().slice(0, 6)}` }),
);

describe('BullmqTaskQueue on Redis only', () => {
  it('has kind "redis" and keeps one BullMQ queue per worker, with the message id as job id', async () => {
    const prefix = `ids-${randomUUID().slice(0, 6)}`;
    const queue = new BullmqTaskQueue({ url: redis().url, prefix });
    try {
      expect(queue.kind).toBe('redis');
      const w = workerId();
      const t = task({ attempt: 2 });
      await queue.enqueue(w, t);
      const { Redis } = await import('ioredis');
      const client = new Redis(redis().url);
      try {
        const keys = await client.keys(`${prefix}:worker-${w}:*`);
        expect(keys).toContain(`${prefix}:worker-${w}:${t.id}%3A2`);
      } finally {
        client.disconnect();
      }
    } finally {
      await queue.close();
    }
  });

  it('abort(taskId) aborts the signal of that running task only', async () => {
    const queue = new BullmqTaskQueue({ url: redis().url });
    try {
      const w = workerId();
      const signals = new Map<string, AbortSignal>();
      const consumer = queue.consume(
        w,
        (t, signal) =>
          new Promise<void>((resolve) => {
            signals.set(t.id, signal);
            signal.addEventListener('abort', () => resolve());
          }),
        { concurrency: 2 },
      );
      const [a, b] = [task({ attempt: 1 }), task()];
      await queue.enqueue(w, a);
      await queue.enqueue(w, b);
      await eventually(() => expect(signals.size).toBe(2));
      expect(
        consumer
          .running()
          .map((t) => t.id)
          .sort(),
      ).toEqual([a.id, b.id].sort());
      expect(consumer.abort(randomUUID())).toBe(false);
      expect(consumer.abort(a.id, 'cancelled by the user')).toBe(true);
      expect(signals.get(a.id)?.aborted).toBe(true);
      expect(signals.get(a.id)?.reason).toBe('cancelled by the user');
      expect(signals.get(b.id)?.aborted).toBe(false);
      await eventually(() => expect(consumer.running()).toEqual([b]));
      await consumer.close(); // aborts b
      expect(signals.get(b.id)?.aborted).toBe(true);
    } finally {
      await queue.close();
    }
  });

  it('survives a Redis restart: a consumer created before it processes a job enqueued after it', async () => {
    const queue = new BullmqTaskQueue({ url: redis().url, onError: () => {} });
    try {
      const w = workerId();
      const received: QueuedTask[] = [];
      const consumer = queue.consume(w, async (t) => void received.push(t), { concurrency: 1 });
      const before = task();
      await queue.enqueue(w, before);
      await eventually(() => expect(received).toEqual([before]));
      // A delayed job sent before the restart lives in Redis (persisted in the AOF).
      const delayed = task({ attempt: 1 });
      await queue.enqueue(w, delayed, { delayMs: 1500 });

      await redis().restart();

      const after = task();
      await queue.enqueue(w, after);
      await eventually(() => expect(received).toContainEqual(after), 10_000);
      await eventually(() => expect(received).toContainEqual(delayed), 10_000);
      expect(received).toHaveLength(3);
      await queue.ping();
      await consumer.close();
    } finally {
      await queue.close();
    }
  }, 30_000);

  it('while Redis is down, enqueue and ping fail instead of hanging; both work again when it is back', async () => {
    const errors: unknown[] = [];
    const queue = new BullmqTaskQueue({ url: redis().url, onError: (err) => errors.push(err) });
    try {
      const w = workerId();
      const received: QueuedTask[] = [];
      const consumer = queue.consume(w, async (t) => void received.push(t), { concurrency: 1 });
      await queue.enqueue(w, task());
      await eventually(() => expect(received).toHaveLength(1));

      await redis().kill();
      try {
        await eventually(() => expect(queue.ping()).rejects.toThrow(), 5000, 50);
        const started = Date.now();
        await expect(queue.enqueue(w, task())).rejects.toThrow();
        expect(Date.now() - started).toBeLessThan(15_000);
        // Connection errors went to onError (and did not crash the process).
        expect(errors.some((err) => /ECONNREFUSED|max retries/i.test(String(err)))).toBe(true);
      } finally {
        await redis().start();
      }
      await eventually(() => queue.ping(), 10_000, 200);
      const after = task();
      await queue.enqueue(w, after);
      await eventually(() => expect(received).toContainEqual(after), 10_000);
      await consumer.close();
    } finally {
      await queue.close();
    }
  }, 40_000);

  it('a Redis that comes back empty (no persistence) is used again too', async () => {
    const empty = await startRedis({ persistence: 'none' });
    const queue = new BullmqTaskQueue({ url: empty.url, onError: () => {} });
    try {
      const w = workerId();
      const received: QueuedTask[] = [];
      const consumer = queue.consume(w, async (t) => void received.push(t), { concurrency: 1 });
      const lost = task();
      await queue.enqueue(w, lost, { delayMs: 60_000 });
      await empty.restart();
      expect(await queue.waiting(w)).toEqual([]); // the delayed message is gone with the data
      const after = task();
      await queue.enqueue(w, after);
      await eventually(() => expect(received).toEqual([after]), 10_000);
      await consumer.close();
    } finally {
      await queue.close();
      await empty.stop();
    }
  }, 30_000);

  it('close() closes the consumers it started', async () => {
    const queue = new BullmqTaskQueue({ url: redis().url });
    const w = workerId();
    let finished = false;
    queue.consume(
      w,
      async () => {
        await sleep(200);
        finished = true;
      },
      { concurrency: 1 },
    );
    await queue.enqueue(w, task());
    await eventually(async () => expect(await queue.waiting(w)).toEqual([]));
    await sleep(20);
    await queue.close();
    expect(finished).toBe(true);
    await expect(queue.enqueue(w, task())).rejects.toThrow(/closed/);
  });
});
