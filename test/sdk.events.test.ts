/**
 * `client.events.subscribe` against a real embedded system on a loopback port: events delivered in
 * order, a resume after the server drops the connection (abruptly, or closing it) with no event
 * lost or delivered twice — also before the first event, from the hello's position, and for a
 * filtered subscription from the server's `position` —, `onOpen` in line with the events, `onGap`
 * when the history was lost (a tiny retention), the async iterator, refused credentials ending
 * the subscription, and a server too old to send a hello.
 */
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import type { ClusterEvent, NewEvent } from '../src/domain/index.ts';
import type { Gap, OpenInfo } from '../src/sdk/index.ts';
import { type SdkTestSystem, startSdkSystem } from './harness/sdk-system.ts';
import { sampleEvent, sampleNumber } from './harness/sample-events.ts';

let t: SdkTestSystem;

beforeAll(async () => {
  t = await startSdkSystem({ events: { retention: 100, position_interval: '200ms' } });
});

afterAll(async () => {
  await t?.stop();
});

const publish = (event: NewEvent) => t.system.engines.events.publish(event);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A task.completed carrying `n` (see harness/sample-events.ts). */
const publishN = (n: number) => publish(sampleEvent(n, 'task.completed'));

/** Every server-side socket of the event stream, to drop them as a failing replica would. */
function serverSockets() {
  return [...t.app.websocketServer.clients];
}

describe('events.subscribe', () => {
  it('delivers events in order, filtered by topic', async () => {
    const seen: ClusterEvent[] = [];
    let opened!: () => void;
    const open = new Promise<void>((resolve) => (opened = resolve));
    const sub = t.client().events.subscribe({ topics: ['task'] }, (e) => void seen.push(e), { onOpen: () => opened() });
    await open;
    await publish(sampleEvent(1000, 'vm.deleted'));
    for (let n = 0; n < 5; n++) await publishN(n);
    await expect.poll(() => seen.length).toBe(5);
    expect(seen.map(sampleNumber)).toEqual([0, 1, 2, 3, 4]);
    expect(seen.every((e) => e.type === 'task.completed')).toBe(true);
    expect(sub.lastId).toBe(seen.at(-1)!.id);
    await sub[Symbol.asyncDispose]();
  });

  it('resumes after the server drops the connection: nothing lost, nothing twice', async () => {
    const received: number[] = [];
    const opens: { since: number | null; reconnect: boolean }[] = [];
    const errors: { message: string; willRetry: boolean }[] = [];
    const sub = t.client().events.subscribe(
      { topics: ['task'] },
      async (e) => {
        // A slow handler: events keep their order and wait their turn.
        if (received.length % 7 === 0) await new Promise((r) => setTimeout(r, 5));
        received.push(sampleNumber(e));
      },
      {
        onOpen: (info) => opens.push(info),
        onError: (err, info) => errors.push({ message: err.message, willRetry: info.willRetry }),
        maxBackoffMs: 200,
      },
    );
    await expect.poll(() => opens.length).toBe(1);
    const drops = [
      () => {
        for (const socket of serverSockets()) socket.terminate(); // abrupt, as a crash
      },
      () => {
        for (const socket of serverSockets()) socket.close(1001, 'server shutting down');
      },
      () => {
        for (const socket of serverSockets()) socket.close(1011, 'could not read past events');
      },
    ];
    let n = 0;
    for (const drop of drops) {
      // Some delivered live…
      for (let k = 0; k < 5; k++) {
        await publishN(n++);
        await new Promise((r) => setTimeout(r, 10));
      }
      // …some the server accepted but had not sent yet when the connection went…
      for (let k = 0; k < 3; k++) await publishN(n++);
      const before = opens.length;
      drop();
      // …and some published while the client is away: all are replayed when it resumes.
      for (let k = 0; k < 3; k++) await publishN(n++);
      await expect.poll(() => opens.length, { timeout: 5000 }).toBe(before + 1);
    }
    for (let k = 0; k < 5; k++) await publishN(n++);
    const total = n; // 38, within the retention (100)
    await expect.poll(() => received.length, { timeout: 10_000 }).toBe(total);
    await new Promise((r) => setTimeout(r, 300));
    expect(received).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(opens.length).toBeGreaterThanOrEqual(4);
    expect(opens.slice(1).every((o) => o.reconnect && o.since !== null)).toBe(true);
    expect(errors.length).toBeGreaterThanOrEqual(3);
    expect(errors.every((e) => e.willRetry)).toBe(true);
    expect(errors.map((e) => e.message).join('\n')).toMatch(/1001|1011|1006/);
    sub.close();
    await sub.closed;
  });

  it('a subscription without since that drops before any event resumes from the hello: nothing lost', async () => {
    const received: number[] = [];
    const opens: OpenInfo[] = [];
    const sub = t.client().events.subscribe({ topics: ['task'] }, (e) => void received.push(sampleNumber(e)), {
      onOpen: (info) => void opens.push(info),
      maxBackoffMs: 200,
    });
    await expect.poll(() => opens.length).toBe(1);
    const latest = (await t.system.engines.events.latestId()) ?? 0;
    expect(opens[0]).toEqual({ since: null, lastId: latest, reconnect: false });
    expect(sub.lastId).toBe(latest);
    // The server drops it before any event; events are published while it is away.
    for (const socket of serverSockets()) socket.terminate();
    const published: ClusterEvent[] = [];
    for (let n = 0; n < 5; n++) published.push(await publishN(900 + n));
    expect(opens).toHaveLength(1); // still away (the first retry waits 125 ms at least)
    await expect.poll(() => opens.length, { timeout: 5000 }).toBe(2);
    expect(opens[1]).toMatchObject({ since: latest, reconnect: true });
    expect(opens[1]!.lastId).toBeGreaterThanOrEqual(published.at(-1)!.id);
    await expect.poll(() => received).toEqual([900, 901, 902, 903, 904]);
    expect(sub.lastId).toBe(published.at(-1)!.id);
    await sub[Symbol.asyncDispose]();
  });

  it('a filtered subscription resumes from the position the server sent, not from where it started', async () => {
    const received: number[] = [];
    const opens: OpenInfo[] = [];
    const gaps: Gap[] = [];
    const sub = t.client().events.subscribe({ topics: ['task'] }, (e) => void received.push(sampleNumber(e)), {
      onOpen: (info) => void opens.push(info),
      onGap: (gap) => gaps.push(gap),
      maxBackoffMs: 200,
    });
    await expect.poll(() => opens.length).toBe(1);
    const started = sub.lastId!;
    // More events than the server retains (100), none of them for this filter.
    let last!: ClusterEvent;
    for (let n = 0; n < 150; n++) last = await publish(sampleEvent(n, 'vm.deleted'));
    await expect.poll(() => sub.lastId, { timeout: 3000 }).toBe(last.id); // a `position`
    expect(received).toEqual([]);
    for (const socket of serverSockets()) socket.terminate();
    for (let n = 0; n < 3; n++) await publishN(950 + n);
    await expect.poll(() => opens.length, { timeout: 5000 }).toBe(2);
    expect(opens[1]!.since).toBe(last.id);
    expect(opens[1]!.since).toBeGreaterThan(started);
    await expect.poll(() => received).toEqual([950, 951, 952]);
    // From where it started the 150 would have been a gap (retention 100): from its position, none.
    await sleep(100);
    expect(gaps).toEqual([]);
    await sub[Symbol.asyncDispose]();
  });

  it('onOpen runs before the events of its connection, and its promise is awaited (load state, then apply changes)', async () => {
    const log: string[] = [];
    const sub = t.client().events.subscribe({ topics: ['task'] }, (e) => void log.push(`event ${sampleNumber(e)}`), {
      onOpen: async ({ lastId }) => {
        log.push(`open ${lastId === sub.lastId}`);
        await publishN(960); // a change while the state loads over REST
        await t.client().cluster.stats();
        await sleep(50);
        log.push('loaded');
      },
    });
    await expect.poll(() => log).toEqual(['open true', 'loaded', 'event 960']);
    await sub[Symbol.asyncDispose]();
  });

  it('calls onGap when the events since the last one delivered are no longer retained', async () => {
    const received: number[] = [];
    const gaps: Gap[] = [];
    const opens: (number | null)[] = [];
    const client = t.client();
    const sub = client.events.subscribe({ topics: ['task'] }, (e) => void received.push(sampleNumber(e)), {
      onGap: (gap) => gaps.push(gap),
      onOpen: (info) => opens.push(info.since),
      maxBackoffMs: 300,
    });
    await expect.poll(() => opens.length).toBe(1);
    await publishN(1);
    await expect.poll(() => received).toEqual([1]);
    // Cut the connection, and while it is down publish more than the server retains (100). The
    // resume point is read now: after the gap, the server's position moves it past the lost events.
    const resumeFrom = sub.lastId;
    for (const socket of serverSockets()) socket.terminate();
    for (let n = 100; n < 260; n++) await publishN(n);
    await expect.poll(() => gaps.length, { timeout: 10_000 }).toBe(1);
    expect(gaps[0]).toMatchObject({ type: 'gap', since: resumeFrom });
    expect(gaps[0]!.oldest).toBeGreaterThan(gaps[0]!.since);
    expect(gaps[0]!.message).toMatch(/resync/);
    // After the gap: the live events that follow, still each once.
    await publishN(500);
    await expect.poll(() => received.at(-1)).toBe(500);
    expect(received.filter((n) => n === 500)).toHaveLength(1);
    sub.close();

    // The same on a first connection: a `since` older than what is retained.
    const fromOld: Gap[] = [];
    const later = client.events.subscribe({ since: 1 }, () => undefined, { onGap: (gap) => fromOld.push(gap) });
    await expect.poll(() => fromOld.length).toBe(1);
    expect(fromOld[0]!.since).toBe(1);
    await later[Symbol.asyncDispose]();
  });

  it('replays what is retained after `since`, then goes live', async () => {
    const first = await publishN(700);
    await publishN(701);
    await publishN(702);
    const received: number[] = [];
    const sub = t
      .client()
      .events.subscribe({ topics: ['task'], since: first.id }, (e) => void received.push(sampleNumber(e)));
    await expect.poll(() => received).toEqual([701, 702]);
    await publishN(703);
    await expect.poll(() => received).toEqual([701, 702, 703]);
    sub.close();
  });

  it('as an async iterator; leaving the loop closes the stream', async () => {
    const stream = t
      .client()
      .events.stream({ topics: ['task'] }, { onOpen: () => void publishN(800).then(() => publishN(801)) });
    const got: number[] = [];
    for await (const event of stream) {
      got.push(sampleNumber(event));
      if (got.length === 2) break;
    }
    expect(got).toEqual([800, 801]);
    await stream.closed;
    await expect.poll(() => serverSockets().length).toBe(0);
  });

  it('from a server too old to send a hello: onOpen without a position, events as before', async () => {
    const old = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => 'aetherium.v1' });
    await new Promise<void>((resolve) => old.once('listening', resolve));
    const apiUrl = `http://127.0.0.1:${(old.address() as AddressInfo).port}`;
    let sendEvent = true;
    old.on('connection', (socket) => {
      if (!sendEvent) return;
      socket.send(
        `${JSON.stringify({ id: 7, type: 'task.completed', timestamp: new Date().toISOString(), data: {} })}`,
      );
    });
    try {
      const log: string[] = [];
      const opens: OpenInfo[] = [];
      const first = t.client(undefined, { apiUrl }).events.subscribe({}, (e) => void log.push(`event ${e.id}`), {
        onOpen: (info) => {
          opens.push(info);
          log.push('open');
        },
      });
      await expect.poll(() => log).toEqual(['open', 'event 7']);
      expect(opens).toEqual([{ since: null, lastId: null, reconnect: false }]);
      expect(first.lastId).toBe(7);
      first.close();

      // Nothing at all: onOpen after a second.
      sendEvent = false;
      const at = Date.now();
      const quiet: OpenInfo[] = [];
      const second = t.client(undefined, { apiUrl }).events.subscribe({}, () => undefined, {
        onOpen: (info) => void quiet.push(info),
      });
      await expect.poll(() => quiet.length, { timeout: 3000 }).toBe(1);
      expect(Date.now() - at).toBeGreaterThanOrEqual(900);
      expect(quiet[0]).toEqual({ since: null, lastId: null, reconnect: false });
      expect(second.lastId).toBeNull();
      await second[Symbol.asyncDispose]();
    } finally {
      for (const socket of old.clients) socket.terminate();
      await new Promise((resolve) => old.close(resolve));
    }
  });

  it('refused credentials end the subscription (no retry loop)', async () => {
    const errors: { status: number; willRetry: boolean }[] = [];
    const sub = t.client('ae_wrong_wrongwrongwrong').events.subscribe({}, () => undefined, {
      onError: (err, info) => errors.push({ status: (err as { status: number }).status, willRetry: info.willRetry }),
    });
    await sub.closed;
    expect(errors).toEqual([{ status: 401, willRetry: false }]);
  });
});
