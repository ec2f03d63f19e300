/**
 * `client.events.subscribe` against a real embedded system on a loopback port: events delivered in
 * order, a resume after the server drops the connection (abruptly, or closing it) with no event
 * lost or delivered twice, `onGap` when the history was lost (a tiny retention), the async
 * iterator, and refused credentials ending the subscription.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterEvent, NewEvent } from '../src/domain/index.ts';
import type { Gap } from '../src/sdk/index.ts';
import { type SdkTestSystem, startSdkSystem } from './harness/sdk-system.ts';
import { sampleEvent, sampleNumber } from './harness/sample-events.ts';

let t: SdkTestSystem;

beforeAll(async () => {
  t = await startSdkSystem({ events: { retention: 100 } });
});

afterAll(async () => {
  await t?.stop();
});

const publish = (event: NewEvent) => t.system.engines.events.publish(event);
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
    // Cut the connection, and while it is down publish more than the server retains (100).
    for (const socket of serverSockets()) socket.terminate();
    for (let n = 100; n < 260; n++) await publishN(n);
    await expect.poll(() => gaps.length, { timeout: 10_000 }).toBe(1);
    expect(gaps[0]).toMatchObject({ type: 'gap', since: sub.lastId });
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

  it('refused credentials end the subscription (no retry loop)', async () => {
    const errors: { status: number; willRetry: boolean }[] = [];
    const sub = t.client('ae_wrong_wrongwrongwrong').events.subscribe({}, () => undefined, {
      onError: (err, info) => errors.push({ status: (err as { status: number }).status, willRetry: info.willRetry }),
    });
    await sub.closed;
    expect(errors).toEqual([{ status: 401, willRetry: false }]);
  });
});
