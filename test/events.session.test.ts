/**
 * One client session of the event stream, on its own (no HTTP, no timers): the hello comes before
 * everything, a `subscribed` answered before it waits for it, live events the hello covers are not
 * sent, and a `position` is due only when the filter skipped events the client was not told of.
 * The WebSocket round trip, across replicas and with the hub's interval, is in events.ws.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { MemoryEventBus } from '../src/adapters/events/memory-event-bus.ts';
import { EventHub, EventSession } from '../src/server/events/event-hub.ts';
import { subscriptionOf } from '../src/server/events/subscription.ts';
import { sampleEvent, sampleNumber } from './harness/sample-events.ts';

/** What the session writes, one entry per line (a frame may carry several). */
function fakeSocket(): { socket: WebSocket; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const socket = {
    OPEN: 1,
    readyState: 1,
    bufferedAmount: 0,
    send: (text: string) => {
      for (const line of text.split('\n')) lines.push(JSON.parse(line) as Record<string, unknown>);
    },
    on: () => socket,
    close: () => undefined,
    terminate: () => undefined,
    ping: () => undefined,
  };
  return { socket: socket as unknown as WebSocket, lines };
}

const flushed = () => new Promise((resolve) => setImmediate(resolve));
const describeLine = (line: Record<string, unknown>) =>
  typeof line.id === 'number' ? sampleNumber(line as never) : `${line.type} ${line.last_id ?? ''}`.trim();

describe('EventSession', () => {
  const hubs: EventHub[] = [];
  afterEach(() => {
    for (const hub of hubs.splice(0)) hub.stop();
  });

  function setup(topics: string[], since: number | null) {
    const bus = new MemoryEventBus(100);
    // Timers far away: the tests call sendPosition() themselves.
    const hub = new EventHub(bus, { maxBufferedBytes: 1 << 20, pingIntervalMs: 60_000, positionIntervalMs: 60_000 });
    hub.start();
    hubs.push(hub);
    const { socket, lines } = fakeSocket();
    const session = new EventSession(socket, subscriptionOf({ topics: topics as never }), since, hub);
    hub.add(session);
    return { bus, hub, session, lines };
  }

  it('sends the hello first; what waited for it follows, and live events it covers are not sent', async () => {
    const { bus, hub, session, lines } = setup(['task'], null);
    await bus.publish(sampleEvent(1, 'task.completed')); // arrives before the hello, covered by it
    session.send(JSON.stringify({ type: 'subscribed', topics: ['task'], worker_id: null, vm_id: null }));
    session.sendPosition(); // nothing before the hello
    const latest = await hub.latestId();
    expect(latest).toBe(1);
    await bus.publish(sampleEvent(2, 'task.completed')); // after the newest id was read: sent
    await flushed();
    expect(lines).toEqual([]);
    session.hello(latest);
    session.startLive([]);
    await flushed();
    expect(lines.map(describeLine)).toEqual(['hello 1', 'subscribed', 2]);
    expect(lines[0]).toEqual({ type: 'hello', since: null, last_id: 1 });
  });

  it('with since, the hello says so and the backlog follows it; no position while it is sent', async () => {
    const { bus, hub, session, lines } = setup(['task'], 1);
    const backlog = [
      await bus.publish(sampleEvent(1, 'task.completed')),
      await bus.publish(sampleEvent(2, 'vm.deleted')),
      await bus.publish(sampleEvent(3, 'task.completed')),
    ];
    session.hello(await hub.latestId());
    await bus.publish(sampleEvent(4, 'vm.deleted')); // live while the backlog is read: it waits
    session.sendPosition();
    expect(lines.map(describeLine)).toEqual(['hello 3']);
    expect(lines[0]).toEqual({ type: 'hello', since: 1, last_id: 3 });
    const replay = await bus.replay(1);
    session.startLive('events' in replay ? replay.events : []);
    expect(backlog.map((e) => e.id)).toEqual([1, 2, 3]);
    session.sendPosition(); // the vm events after the last task event were skipped
    expect(lines.map(describeLine)).toEqual(['hello 3', 3, 'position 4']);
  });

  it('tells a position only for events the filter skipped since the client was last told', async () => {
    const { bus, hub, session, lines } = setup(['task'], null);
    session.hello(await hub.latestId());
    session.startLive([]);
    session.sendPosition();
    expect(lines.map(describeLine)).toEqual(['hello 0']); // nothing skipped
    await bus.publish(sampleEvent(1, 'vm.deleted'));
    session.sendPosition();
    session.sendPosition(); // told already
    await bus.publish(sampleEvent(2, 'task.completed'));
    session.sendPosition(); // the event says where it stands
    await bus.publish(sampleEvent(3, 'vm.deleted'));
    await bus.publish(sampleEvent(4, 'task.completed'));
    session.sendPosition(); // still: the last thing skipped is before the last event
    await bus.publish(sampleEvent(5, 'vm.deleted'));
    await bus.publish(sampleEvent(6, 'worker.left'));
    session.sendPosition(); // after the waiting event, in order
    await flushed();
    expect(lines.map(describeLine)).toEqual(['hello 0', 'position 1', 2, 4, 'position 6']);
  });
});
