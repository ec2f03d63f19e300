/**
 * The EventBus conformance suite: every implementation of the EventBus port runs these same tests.
 *
 * `make` returns a new, open bus with NO events yet (for a shared engine: a key of its own) whose
 * retention is at most 100 events: the retention test publishes 300 events and expects the oldest
 * ones to be gone. Each test makes its own bus and closes it at the end.
 *
 * Delivery may be synchronous (in publish) or asynchronous (through the engine): the tests wait for
 * it with short deadlines, then check that nothing more arrives.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { eventuallyPasses } from '../harness/eventually.ts';
import { type ClusterEvent, EVENT_SCHEMAS, evt, newTask } from '../../src/domain/index.ts';
import type { EventBus } from '../../src/ports/event-bus.ts';
import { sampleEvent, sampleNumber } from '../harness/sample-events.ts';

const TEST_TIMEOUT = 5_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const eventually = (check: () => void | Promise<void>, timeoutMs = 1500, stepMs = 10) =>
  eventuallyPasses(check, timeoutMs, stepMs);

/** A task.completed with a command's result: nested data, integers, a fraction, booleans, nulls. */
const event = (n: number) => sampleEvent(n, 'task.completed');
const ids = (events: ClusterEvent[]) => events.map((e) => e.id);

export function eventBusConformance(label: string, make: () => Promise<EventBus>): void {
  describe(`EventBus conformance: ${label}`, () => {
    const cleanups: (() => Promise<void>)[] = [];

    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
    });

    async function open(): Promise<EventBus> {
      const bus = await make();
      cleanups.push(() => bus.close());
      return bus;
    }

    function record(bus: EventBus): { events: ClusterEvent[]; stop: () => void } {
      const events: ClusterEvent[] = [];
      const stop = bus.subscribe((e) => events.push(e));
      return { events, stop };
    }

    it(
      'gives strictly increasing integer ids',
      async () => {
        const bus = await open();
        expect(typeof bus.kind).toBe('string');
        const published: ClusterEvent[] = [];
        for (let i = 0; i < 20; i++) published.push(await bus.publish(event(i)));
        published.push(...(await Promise.all(Array.from({ length: 20 }, (_, i) => bus.publish(event(20 + i))))));
        for (const e of published) expect(Number.isSafeInteger(e.id) && e.id > 0).toBe(true);
        const sequential = ids(published.slice(0, 20));
        for (let i = 1; i < sequential.length; i++) expect(sequential[i]!).toBeGreaterThan(sequential[i - 1]!);
        expect(new Set(ids(published)).size).toBe(40);
        expect(Math.min(...ids(published.slice(20)))).toBeGreaterThan(sequential.at(-1)!);
      },
      TEST_TIMEOUT,
    );

    it(
      'returns and delivers the full envelope: id, type, timestamp, data',
      async () => {
        const bus = await open();
        const { events } = record(bus);
        const before = Date.now();
        const result = {
          execution_id: 'e1',
          exit_code: 3,
          stdout: 'héllo\n',
          stderr: '',
          timed_out: true,
          duration_ms: 1.5,
        };
        const task = newTask('vm:execute', { command: 'echo', args: [], env: {} }, { id: 't1', vm_id: 'v1', result });
        const published = await bus.publish(evt.taskCompleted({ ...task, status: 'completed' }));
        expect(Object.keys(published).sort()).toEqual(['data', 'id', 'timestamp', 'type']);
        expect(published.type).toBe('task.completed');
        const data = {
          task_id: 't1',
          type: 'vm:execute',
          status: 'completed',
          vm_id: 'v1',
          worker_id: null,
          retry_count: 0,
          result: {
            execution_id: 'e1',
            exit_code: 3,
            timed_out: true,
            duration_ms: 1.5,
            stdout_bytes: 7,
            stderr_bytes: 0,
          },
        };
        expect(published.data).toEqual(data);
        expect(published.timestamp).toBe(new Date(published.timestamp).toISOString());
        const at = Date.parse(published.timestamp);
        expect(at).toBeGreaterThanOrEqual(before - 1000);
        expect(at).toBeLessThanOrEqual(Date.now() + 1000);
        await eventually(() => expect(events).toHaveLength(1));
        expect(events[0]).toEqual(published);
        // What a subscriber gets is still an event of the catalogue.
        expect(EVENT_SCHEMAS['task.completed'].strict().parse(events[0]!.data)).toEqual(data);
        const replayed = await bus.replay(published.id - 1);
        expect(replayed).toEqual({ events: [published] });
      },
      TEST_TIMEOUT,
    );

    it(
      'delivers each event once, in order, to every subscriber',
      async () => {
        const bus = await open();
        const a = record(bus);
        const b = record(bus);
        const published: ClusterEvent[] = [];
        for (let i = 0; i < 30; i++) published.push(await bus.publish(event(i)));
        published.push(...(await Promise.all(Array.from({ length: 30 }, (_, i) => bus.publish(event(30 + i))))));
        const expected = [...published].sort((x, y) => x.id - y.id);
        await eventually(() => expect(a.events).toHaveLength(60));
        await eventually(() => expect(b.events).toHaveLength(60));
        await sleep(100);
        expect(a.events).toEqual(expected);
        expect(b.events).toEqual(expected);
        // The 30 published one after the other arrive in that order; all 60 arrive once.
        expect(a.events.slice(0, 30).map(sampleNumber)).toEqual(Array.from({ length: 30 }, (_, i) => i));
        expect(new Set(b.events.map(sampleNumber)).size).toBe(60);
      },
      TEST_TIMEOUT,
    );

    it(
      'delivers only events published after subscribing, and none after unsubscribing',
      async () => {
        const bus = await open();
        const early = await bus.publish(event(0));
        const sub = record(bus);
        const other = record(bus);
        const during = await bus.publish(event(1));
        await eventually(() => expect(sub.events).toEqual([during]));
        sub.stop();
        sub.stop(); // twice is harmless
        const after = await bus.publish(event(2));
        await eventually(() => expect(other.events).toEqual([during, after]));
        await sleep(100);
        expect(sub.events).toEqual([during]);
        expect(ids(sub.events)).not.toContain(early.id);
      },
      TEST_TIMEOUT,
    );

    it(
      'replays exactly the events after an id, in order, up to the limit',
      async () => {
        const bus = await open();
        const published: ClusterEvent[] = [];
        for (let i = 0; i < 25; i++) published.push(await bus.publish(event(i)));
        const first = published[0]!.id;
        const last = published.at(-1)!.id;

        expect(await bus.replay(first - 1)).toEqual({ events: published });
        expect(await bus.replay(published[9]!.id)).toEqual({ events: published.slice(10) });
        expect(await bus.replay(published[9]!.id, 5)).toEqual({ events: published.slice(10, 15) });
        expect(await bus.replay(last)).toEqual({ events: [] });
        expect(await bus.replay(last + 1000)).toEqual({ events: [] });
        const more = await bus.publish(event(25));
        expect(await bus.replay(last)).toEqual({ events: [more] });
      },
      TEST_TIMEOUT,
    );

    it(
      'answers a gap when events after the id fell out of the retention window',
      async () => {
        const bus = await open();
        const published: ClusterEvent[] = [];
        for (let i = 0; i < 300; i++) published.push(await bus.publish(event(i)));
        const first = published[0]!.id;
        const last = published.at(-1)!.id;

        const replay = await bus.replay(first - 1);
        expect('gap' in replay && replay.gap).toBe(true);
        if (!('gap' in replay)) return;
        const oldest = replay.oldest!;
        expect(oldest).toBeGreaterThan(first);
        expect(oldest).toBeLessThanOrEqual(last);
        expect(await bus.replay(first + 5)).toEqual({ gap: true, oldest });
        expect(await bus.replay(oldest - 2)).toEqual({ gap: true, oldest });

        // From just before the oldest retained event on, the replay is whole again.
        const kept = published.filter((e) => e.id >= oldest);
        expect(kept.length).toBeGreaterThanOrEqual(1);
        expect(await bus.replay(oldest - 1, 1000)).toEqual({ events: kept });
        expect(await bus.replay(last - 10)).toEqual({ events: published.slice(-10) });
        // Trimming the window does not move the newest id.
        expect(await bus.latestId()).toBe(last);
      },
      TEST_TIMEOUT,
    );

    it(
      'tells the newest id: null before any publish, then the last one published',
      async () => {
        const bus = await open();
        expect(await bus.latestId()).toBeNull();
        const { events, stop } = record(bus);
        let last: ClusterEvent | undefined;
        for (let i = 0; i < 5; i++) {
          last = await bus.publish(event(i));
          // As soon as publish returns: no waiting for the delivery.
          expect(await bus.latestId()).toBe(last.id);
        }
        const together = await Promise.all(Array.from({ length: 20 }, (_, i) => bus.publish(event(5 + i))));
        const latest = await bus.latestId();
        expect(latest).toBe(Math.max(...ids(together)));
        // It is a position: nothing retained is after it, and what comes next is.
        expect(await bus.replay(latest!)).toEqual({ events: [] });
        const next = await bus.publish(event(25));
        expect(next.id).toBeGreaterThan(latest!);
        expect(await bus.replay(latest!)).toEqual({ events: [next] });
        expect(await bus.latestId()).toBe(next.id);
        // Reading it changes nothing for subscribers.
        await eventually(() => expect(events).toHaveLength(26));
        stop();
        await sleep(50);
        expect(await bus.latestId()).toBe(next.id);
      },
      TEST_TIMEOUT,
    );

    it(
      'keeps delivering to the other subscribers when a listener throws',
      async () => {
        const bus = await open();
        const before = record(bus);
        let calls = 0;
        bus.subscribe(() => {
          calls++;
          throw new Error('faulty listener');
        });
        const after = record(bus);
        const published = [await bus.publish(event(1)), await bus.publish(event(2)), await bus.publish(event(3))];
        await eventually(() => expect(after.events).toHaveLength(3));
        await eventually(() => expect(before.events).toHaveLength(3));
        expect(before.events).toEqual(published);
        expect(after.events).toEqual(published);
        expect(calls).toBe(3);
      },
      TEST_TIMEOUT,
    );
  });
}
