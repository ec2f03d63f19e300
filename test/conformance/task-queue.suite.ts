/**
 * The TaskQueue conformance suite: every implementation of the TaskQueue port runs these same tests.
 *
 * `make` returns a new, open queue; each test makes its own and closes it at the end. Worker and
 * task ids are random, so queues on one shared engine (one Redis) do not see each other's messages.
 * Tests wait by polling with short deadlines: every one finishes well within 2 s.
 */
import { randomUUID } from 'node:crypto';
import { eventuallyPasses } from '../harness/eventually.ts';
import { afterEach, describe, expect, it } from 'vitest';
import type { QueueConsumer, QueuedTask, TaskProcessor, TaskQueue } from '../../src/ports/task-queue.ts';

const TEST_TIMEOUT = 5_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const workerId = () => `w-${randomUUID().slice(0, 8)}`;
const task = (overrides: Partial<QueuedTask> = {}): QueuedTask => ({
  id: randomUUID(),
  type: 'vm:create',
  ...overrides,
});

/** Polls until `check` passes (it throws while it does not), or rethrows its last error. */
const eventually = (check: () => void | Promise<void>, timeoutMs = 1500, stepMs = 10) =>
  eventuallyPasses(check, timeoutMs, stepMs);

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const byId = (a: QueuedTask, b: QueuedTask) => `${a.id}:${a.attempt ?? 0}`.localeCompare(`${b.id}:${b.attempt ?? 0}`);

export function taskQueueConformance(label: string, make: () => Promise<TaskQueue>): void {
  describe(`TaskQueue conformance: ${label}`, () => {
    const cleanups: (() => Promise<void>)[] = [];

    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
    });

    async function open(): Promise<TaskQueue> {
      const queue = await make();
      cleanups.push(() => queue.close());
      return queue;
    }

    /** A consumer that records what it got; `hold` keeps each task in hand until released. */
    function consume(
      queue: TaskQueue,
      worker: string,
      options: { concurrency?: number; hold?: Promise<void>; onTask?: TaskProcessor } = {},
    ) {
      const received: QueuedTask[] = [];
      const consumer: QueueConsumer = queue.consume(
        worker,
        async (t, signal) => {
          received.push(t);
          await options.onTask?.(t, signal);
          await options.hold;
        },
        { concurrency: options.concurrency ?? 1 },
      );
      cleanups.push(() => consumer.close());
      return { consumer, received };
    }

    it(
      'has a kind and answers ping',
      async () => {
        const queue = await open();
        expect(typeof queue.kind).toBe('string');
        expect(queue.kind.length).toBeGreaterThan(0);
        await expect(queue.ping()).resolves.toBeUndefined();
      },
      TEST_TIMEOUT,
    );

    it(
      "delivers to the right worker only: two workers' queues do not mix",
      async () => {
        const queue = await open();
        const [a, b] = [workerId(), workerId()];
        const forA = [task(), task({ type: 'vm:delete' })];
        const forB = [task({ type: 'vm:start' })];
        for (const t of forA) await queue.enqueue(a, t);
        for (const t of forB) await queue.enqueue(b, t);
        expect((await queue.waiting(a)).sort(byId)).toEqual([...forA].sort(byId));
        expect(await queue.waiting(b)).toEqual(forB);

        const onA = consume(queue, a, { concurrency: 2 });
        await eventually(() => expect(onA.received).toHaveLength(2));
        expect(onA.received.sort(byId)).toEqual([...forA].sort(byId));
        await sleep(100);
        expect(onA.received).toHaveLength(2);
        expect(await queue.waiting(b)).toEqual(forB); // A's consumer did not touch B's queue

        const onB = consume(queue, b);
        await eventually(() => expect(onB.received).toEqual(forB));
        expect(onA.received).toHaveLength(2);
      },
      TEST_TIMEOUT,
    );

    it(
      'ignores a second enqueue of the same message while it waits or runs',
      async () => {
        const queue = await open();
        const w = workerId();
        const t = task();
        await queue.enqueue(w, t);
        await queue.enqueue(w, t);
        expect(await queue.waiting(w)).toEqual([t]);

        const release = deferred();
        const { received } = consume(queue, w, { hold: release.promise });
        await eventually(() => expect(received).toHaveLength(1));
        await queue.enqueue(w, t); // while it is in hand
        expect(await queue.waiting(w)).toEqual([]);
        await sleep(150);
        release.resolve();
        await sleep(150);
        expect(received).toEqual([t]);
      },
      TEST_TIMEOUT,
    );

    it(
      'delivers the same message again once the first one is done',
      async () => {
        const queue = await open();
        const w = workerId();
        const t = task();
        const { received } = consume(queue, w);
        await queue.enqueue(w, t);
        await eventually(() => expect(received).toHaveLength(1));
        await sleep(50); // let the consumer finish with it
        await queue.enqueue(w, t);
        await eventually(() => expect(received).toEqual([t, t]));
      },
      TEST_TIMEOUT,
    );

    it(
      'enqueueMany sends each message to its own worker, in order, ignoring the ones already waiting or in hand',
      async () => {
        const queue = await open();
        const [a, b] = [workerId(), workerId()];
        const held = task();
        const release = deferred();
        const onA = consume(queue, a, { hold: release.promise });
        await queue.enqueue(a, held);
        await eventually(() => expect(onA.received).toEqual([held]));
        await onA.consumer.pause();
        const waitingBefore = task({ type: 'vm:stop' });
        await queue.enqueue(b, waitingBefore);

        const forA = [task(), task({ type: 'vm:execute', attempt: 2 })];
        const forB = [task({ type: 'vm:start' }), task()];
        await queue.enqueueMany([
          { workerId: a, task: forA[0]! },
          { workerId: b, task: forB[0]! },
          { workerId: a, task: held }, // in hand: ignored
          { workerId: b, task: waitingBefore }, // waiting already: ignored
          { workerId: a, task: forA[1]! },
          { workerId: b, task: forB[1]! },
          { workerId: b, task: forB[1]! }, // twice in the same call: once
        ]);
        await queue.enqueueMany([]);
        expect(await queue.waiting(a)).toEqual(forA);
        expect(await queue.waiting(b)).toEqual([waitingBefore, ...forB]);

        onA.consumer.resume();
        release.resolve();
        await eventually(() => expect(onA.received).toEqual([held, ...forA]));
        const onB = consume(queue, b, { concurrency: 3 });
        await eventually(() => expect(onB.received).toHaveLength(3));
        expect(onB.received.sort(byId)).toEqual([waitingBefore, ...forB].sort(byId));
        await sleep(100);
        expect(onA.received).toHaveLength(3);
        expect(onB.received).toHaveLength(3);
      },
      TEST_TIMEOUT,
    );

    it(
      'treats another attempt of a task as a separate message, and keeps the attempt',
      async () => {
        const queue = await open();
        const w = workerId();
        const id = randomUUID();
        const first = task({ id });
        const retry1 = task({ id, attempt: 1 });
        const retry2 = task({ id, attempt: 2 });
        for (const t of [first, retry1, retry2, retry1]) await queue.enqueue(w, t);
        expect((await queue.waiting(w)).sort(byId)).toEqual([first, retry1, retry2].sort(byId));
        const { received } = consume(queue, w, { concurrency: 3 });
        await eventually(() => expect(received).toHaveLength(3));
        expect(received.sort(byId)).toEqual([first, retry1, retry2].sort(byId));
        await sleep(100);
        expect(received).toHaveLength(3);
      },
      TEST_TIMEOUT,
    );

    it(
      'delivers a delayed message not before the delay, and after it',
      async () => {
        const queue = await open();
        const w = workerId();
        const delayed = task({ attempt: 1 });
        const now = task();
        const deliveredAt = new Map<string, number>();
        const { received } = consume(queue, w, { onTask: async (t) => void deliveredAt.set(t.id, Date.now()) });
        const sentAt = Date.now();
        await queue.enqueue(w, delayed, { delayMs: 400 });
        await queue.enqueue(w, now);
        expect(await queue.waiting(w)).toContainEqual(delayed); // delayed messages are listed as waiting
        await eventually(() => expect(received.map((t) => t.id)).toContain(now.id));
        await sleep(150);
        expect(received).toEqual([now]);
        await eventually(() => expect(received).toEqual([now, delayed]), 1500);
        expect(deliveredAt.get(delayed.id)! - sentAt).toBeGreaterThanOrEqual(390);
      },
      TEST_TIMEOUT,
    );

    it(
      'removes waiting and delayed messages (any attempt), and only those',
      async () => {
        const queue = await open();
        const w = workerId();
        const waitingTask = task();
        const delayedTask = task({ attempt: 1 });
        const retried = task({ attempt: 2 });
        const kept = task();
        await queue.enqueue(w, waitingTask);
        await queue.enqueue(w, delayedTask, { delayMs: 10_000 });
        await queue.enqueue(w, retried);
        await queue.enqueue(w, kept);

        expect(await queue.remove(w, waitingTask.id)).toBe(true);
        expect(await queue.remove(w, delayedTask.id)).toBe(true);
        expect(await queue.remove(w, retried.id)).toBe(true);
        expect(await queue.remove(w, waitingTask.id)).toBe(false); // already gone
        expect(await queue.remove(w, randomUUID())).toBe(false);
        expect(await queue.remove(workerId(), kept.id)).toBe(false); // another worker's queue
        expect(await queue.waiting(w)).toEqual([kept]);

        const release = deferred();
        const { received } = consume(queue, w, { hold: release.promise });
        await eventually(() => expect(received).toEqual([kept]));
        expect(await queue.remove(w, kept.id)).toBe(false); // taken: no longer waiting
        release.resolve();
        await sleep(100);
        expect(received).toEqual([kept]);
      },
      TEST_TIMEOUT,
    );

    it(
      'lists waiting messages, delayed ones included, and not the ones taken',
      async () => {
        const queue = await open();
        const w = workerId();
        expect(await queue.waiting(w)).toEqual([]);
        const a = task();
        const b = task({ type: 'vm:execute', attempt: 1 });
        const c = task({ type: 'vm:stop' });
        await queue.enqueue(w, a);
        await queue.enqueue(w, b);
        await queue.enqueue(w, c, { delayMs: 10_000 });
        const listed = await queue.waiting(w);
        expect([...listed].sort(byId)).toEqual([a, b, c].sort(byId));
        // Without a delay, messages come in the order they were sent.
        expect(listed.filter((t) => t.id !== c.id)).toEqual([a, b]);

        const release = deferred();
        const { received } = consume(queue, w, { hold: release.promise, concurrency: 2 });
        await eventually(() => expect(received).toHaveLength(2));
        expect(received).toEqual([a, b]);
        expect(await queue.waiting(w)).toEqual([c]);
        release.resolve();
      },
      TEST_TIMEOUT,
    );

    it(
      'never has more than `concurrency` messages in hand, and uses that many',
      async () => {
        const queue = await open();
        const w = workerId();
        let inFlight = 0;
        let most = 0;
        const { received } = consume(queue, w, {
          concurrency: 3,
          onTask: async () => {
            inFlight++;
            most = Math.max(most, inFlight);
            await sleep(60);
            inFlight--;
          },
        });
        const tasks = Array.from({ length: 10 }, () => task());
        await Promise.all(tasks.map((t) => queue.enqueue(w, t)));
        await eventually(() => expect(received).toHaveLength(10));
        await eventually(() => expect(inFlight).toBe(0));
        expect(most).toBe(3);
        expect(received.sort(byId)).toEqual([...tasks].sort(byId));
      },
      TEST_TIMEOUT,
    );

    it(
      'close() waits for the messages in hand, and aborts their signal',
      async () => {
        const queue = await open();
        const w = workerId();
        let finished = false;
        let signal: AbortSignal | undefined;
        const { consumer, received } = consume(queue, w, {
          onTask: async (_t, s) => {
            signal = s;
            await sleep(300); // ignores the signal on purpose: close must still wait
            finished = true;
          },
        });
        await queue.enqueue(w, task());
        await eventually(() => expect(received).toHaveLength(1));
        expect(signal?.aborted).toBe(false);
        const started = Date.now();
        await consumer.close();
        expect(finished).toBe(true);
        expect(signal?.aborted).toBe(true);
        expect(Date.now() - started).toBeGreaterThanOrEqual(150);
      },
      TEST_TIMEOUT,
    );

    it(
      'the abort signal lets a processor stop early when the consumer closes',
      async () => {
        const queue = await open();
        const w = workerId();
        let stopped: unknown = null;
        const { consumer, received } = consume(queue, w, {
          onTask: (_t, signal) =>
            new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, 10_000);
              signal.addEventListener('abort', () => {
                clearTimeout(timer);
                stopped = signal.reason ?? true;
                resolve();
              });
            }),
        });
        await queue.enqueue(w, task());
        await eventually(() => expect(received).toHaveLength(1));
        const started = Date.now();
        await consumer.close();
        expect(stopped).not.toBeNull();
        expect(Date.now() - started).toBeLessThan(1500);
        // Closed: nothing more is taken.
        await queue.enqueue(w, task());
        await sleep(150);
        expect(received).toHaveLength(1);
      },
      TEST_TIMEOUT,
    );

    it(
      'pause() stops taking messages without waiting for the ones in hand; resume() starts again',
      async () => {
        const queue = await open();
        const w = workerId();
        const release = deferred();
        const first = task();
        const { consumer, received } = consume(queue, w, {
          concurrency: 2,
          onTask: async (t) => (t.id === first.id ? release.promise : undefined),
        });
        await queue.enqueue(w, first);
        await eventually(() => expect(received).toEqual([first]));

        const started = Date.now();
        await consumer.pause(); // `first` is still in hand: pause must not wait for it
        expect(Date.now() - started).toBeLessThan(500);

        const second = task();
        await queue.enqueue(w, second);
        await sleep(300);
        expect(received).toEqual([first]);
        expect(await queue.waiting(w)).toEqual([second]);

        consumer.resume();
        await eventually(() => expect(received).toEqual([first, second]));
        release.resolve();
      },
      TEST_TIMEOUT,
    );

    it(
      'a processor that throws does not get its message back, and the consumer goes on',
      async () => {
        const queue = await open();
        const w = workerId();
        const bad = task();
        const good = task();
        const { received } = consume(queue, w, {
          onTask: async (t) => {
            if (t.id === bad.id) throw new Error('processor broke its contract');
          },
        });
        await queue.enqueue(w, bad);
        await eventually(() => expect(received).toEqual([bad]));
        await queue.enqueue(w, good);
        await eventually(() => expect(received).toEqual([bad, good]));
        await sleep(150);
        expect(received).toEqual([bad, good]);
        expect(await queue.waiting(w)).toEqual([]);
      },
      TEST_TIMEOUT,
    );
  });
}
