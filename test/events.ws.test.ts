/**
 * The live event stream over WebSocket, on two control-plane replicas sharing Postgres and Redis:
 * resume after random disconnects (every event exactly once, in order), fan-out across replicas,
 * filters, the hello and position messages, the gap message, and a stalled client cut off without
 * slowing the others.
 */
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type ClusterEvent, type NewEvent, evt } from '../src/domain/index.ts';
import { startInProcessCluster, type InProcessCluster } from './harness/in-process-cluster.ts';
import { type SampleKeys, sampleEvent, sampleNumber, sentAtOf, timedEvent } from './harness/sample-events.ts';

let c: InProcessCluster;

beforeAll(async () => {
  c = await startInProcessCluster({
    replicas: 2,
    agents: [{ id: 'ew1' }],
    listen: true,
    config: { events: { retention: 20_000, max_buffered_bytes: 256 * 1024, position_interval: '300ms' } },
  });
}, 120_000);

afterAll(async () => {
  await c?.stop();
}, 60_000);

const wsUrl = (replica: number, query = '') =>
  `${c.urls[replica]!.replace('http', 'ws')}/api/v1/events${query ? `?${query}` : ''}`;

/**
 * Opens a client. The message handler is attached before the handshake completes: the server may
 * send the backlog in the same packets as the upgrade, before an `await` would return.
 */
function connect(url: string, onMessage?: (message: StreamMessage) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${c.adminKey}` } });
    // A frame carries one or more messages, one per line.
    if (onMessage) {
      ws.on('message', (raw) => {
        for (const line of String(raw).split('\n')) onMessage(JSON.parse(line) as StreamMessage);
      });
    }
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** A client and its TCP socket (the upgrade response's), to stop reading from it. */
function connectWithSocket(url: string): Promise<{ ws: WebSocket; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${c.adminKey}` } });
    let socket: Socket | null = null;
    ws.once('upgrade', (response) => (socket = response.socket));
    ws.once('open', () => (socket ? resolve({ ws, socket }) : reject(new Error('opened without an upgrade'))));
    ws.once('error', reject);
  });
}

/** What the server sends: events, and control messages (which have no id). */
type StreamMessage =
  | ClusterEvent
  | { type: 'hello'; since: number | null; last_id: number }
  | { type: 'position'; last_id: number }
  | { type: 'gap'; since: number; oldest: number | null; message: string }
  | { type: 'subscribed'; topics: string[]; worker_id: string | null; vm_id: string | null };

const isEvent = (message: StreamMessage): message is ClusterEvent => 'id' in message;

/** A listener that keeps the events of the stream (and drops control messages). */
const into = (events: ClusterEvent[]) => (message: StreamMessage) => void (isEvent(message) && events.push(message));

const POSITION_INTERVAL_MS = 300;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The newest id in the cluster, as a replica's bus tells it. */
const latestId = (replica = 0) => c.replicas[replica]!.ledger.events.latestId();

const vmIdOf = (event: ClusterEvent) => ('vm_id' in event.data ? event.data.vm_id : undefined);

/** Publishes through a replica's own bus (the one its ledger writes to): exactly what its services do. */
function publishEvent(replica: number, event: NewEvent): Promise<ClusterEvent> {
  const plane = c.replicas[replica]!;
  return plane.hub ? plane.ledger.events.publish(event) : Promise.reject(new Error('no hub'));
}

/** A task.completed carrying `n`, through a replica. */
const publish = (replica: number, n: number, keys: SampleKeys = {}) =>
  publishEvent(replica, sampleEvent(n, 'task.completed', keys));

describe('event stream', () => {
  it('delivers 10,000 events exactly once and in order across random disconnects and resumes', async () => {
    const total = 10_000;
    const startedAt = Date.now();
    const firstId = (await publish(0, -1)).id;
    const received: number[] = [];
    const ids: number[] = [];
    let lastId = firstId;
    let reconnects = 0;
    let publishing = true;
    const publisher = (async () => {
      for (let i = 0; i < total; i += 50) {
        await Promise.all(Array.from({ length: 50 }, (_, j) => publish((i / 50) % 2, i + j)));
        await new Promise((r) => setTimeout(r, 2));
      }
      publishing = false;
    })();

    while (publishing || received.length < total) {
      // Alternate replicas on every reconnect, as behind a load balancer.
      const budget = 200 + Math.floor(Math.random() * 800);
      let got = 0;
      let lastMessageAt = Date.now();
      let dropped = false;
      const ws: WebSocket = await connect(wsUrl(reconnects % 2, `topics=task&since=${lastId}`), (event) => {
        if (dropped) return;
        lastMessageAt = Date.now();
        if (event.type !== 'task.completed') return;
        received.push(sampleNumber(event));
        ids.push(event.id);
        lastId = event.id;
        if (++got >= budget) {
          dropped = true;
          ws.terminate(); // an abrupt drop, mid-stream
        }
      });
      await new Promise<void>((resolve) => {
        if (ws.readyState === ws.CLOSED) return resolve();
        // Done, or nothing more is coming (then the assertions below say what is missing).
        const idle = setInterval(
          () => !publishing && (received.length >= total || Date.now() - lastMessageAt > 3000) && ws.close(),
          50,
        );
        ws.on('close', () => {
          clearInterval(idle);
          resolve();
        });
      });
      reconnects++;
      if (reconnects > 500) throw new Error('too many reconnects');
      if (!publishing && received.length < total && Date.now() - startedAt > 60_000) break;
    }
    await publisher;
    console.log(`10,000 events over ${reconnects} connections (random disconnects) in ${Date.now() - startedAt} ms`);
    expect(reconnects).toBeGreaterThan(5);
    const missing = Array.from({ length: total }, (_, i) => i).filter((n) => !received.includes(n));
    expect(missing.slice(0, 20)).toEqual([]);
    expect(received.length).toBe(total);
    // In order: ids strictly increase across every reconnect.
    for (let i = 1; i < ids.length; i++) expect(ids[i]!).toBeGreaterThan(ids[i - 1]!);
    // Exactly once, and every one of them.
    const sorted = [...received].sort((a, b) => a - b);
    expect(new Set(received).size).toBe(total);
    expect(sorted[0]).toBe(0);
    expect(sorted[total - 1]).toBe(total - 1);
  }, 180_000);

  it('a client on replica A sees what happens through replica B, filtered by topic and key', async () => {
    const seenAll: ClusterEvent[] = [];
    const seenVms: ClusterEvent[] = [];
    const all = await connect(wsUrl(0, 'topics=vm,task'), into(seenAll));
    const onlyVms = await connect(wsUrl(0, 'topics=vm'), into(seenVms));

    const res = await c.replicas[1]!.http.inject({
      method: 'POST',
      url: '/api/v1/vms?wait=true&timeout=30',
      payload: { name: 'seen-from-a' },
    });
    const vm = JSON.parse(res.body).vm;
    const seenKey: ClusterEvent[] = [];
    const byKey = await connect(wsUrl(0, `vm_id=${vm.id}`), into(seenKey));
    await c.replicas[1]!.http.inject({ method: 'DELETE', url: `/api/v1/vms/${vm.id}?wait=true` });
    await publish(1, -2, { vm_id: 'someone-else' });
    await new Promise((r) => setTimeout(r, 500));

    const types = seenAll.filter((e) => vmIdOf(e) === vm.id).map((e) => e.type);
    expect(types).toEqual(
      expect.arrayContaining([
        'task.created',
        'task.scheduled',
        'task.started',
        'vm.state_changed',
        'vm.created',
        'task.completed',
        'vm.deleted',
      ]),
    );
    expect(seenVms.every((e) => e.type.startsWith('vm.'))).toBe(true);
    expect(seenVms.map((e) => e.type)).toEqual(expect.arrayContaining(['vm.created', 'vm.deleted']));
    expect(seenKey.length).toBeGreaterThan(0);
    expect(seenKey.every((e) => vmIdOf(e) === vm.id)).toBe(true);
    for (const ws of [all, onlyVms, byKey]) ws.close();
  }, 60_000);

  it('opens with a hello carrying the newest id in the cluster (on the other replica too), before any event', async () => {
    const published = await publish(1, -20); // through replica B, read on replica A
    const messages: StreamMessage[] = [];
    const ws = await connect(wsUrl(0, 'topics=task'), (m) => messages.push(m));
    ws.send(JSON.stringify({ type: 'subscribe', topics: ['task'] })); // answered after the hello
    await expect.poll(() => messages.length).toBeGreaterThanOrEqual(2);
    const [hello, subscribed] = messages;
    expect(hello).toMatchObject({ type: 'hello', since: null });
    expect(Object.keys(hello!).sort()).toEqual(['last_id', 'since', 'type']);
    const lastId = hello?.type === 'hello' ? hello.last_id : -1;
    expect(lastId).toBeGreaterThanOrEqual(published.id);
    expect(lastId).toBeLessThanOrEqual((await latestId(1))!);
    expect(subscribed).toMatchObject({ type: 'subscribed', topics: ['task'] });

    // Every event after it has a greater id, and the ones published now all come.
    const after = [await publish(1, -21), await publish(0, -22), await publish(1, -23)];
    await expect.poll(() => messages.filter(isEvent).map(sampleNumber)).toEqual([-21, -22, -23]);
    for (const event of messages.filter(isEvent)) expect(event.id).toBeGreaterThan(lastId);
    expect(messages.filter(isEvent).map((e) => e.id)).toEqual(after.map((e) => e.id));
    expect(messages.filter((m) => m.type === 'hello')).toHaveLength(1);
    ws.close();
  }, 30_000);

  it('a client that drops before its first event resumes from the hello without loss', async () => {
    const first: StreamMessage[] = [];
    const ws = await connect(wsUrl(0, 'topics=task'), (m) => first.push(m));
    await expect.poll(() => first.length).toBe(1);
    const hello = first[0]!;
    if (hello.type !== 'hello') throw new Error(`expected a hello, got ${JSON.stringify(hello)}`);
    ws.terminate();
    // Published while the client is away, through both replicas.
    for (let n = 0; n < 6; n++) await publish(n % 2, -30 - n);
    const again: StreamMessage[] = [];
    const resumed = await connect(wsUrl(1, `topics=task&since=${hello.last_id}`), (m) => again.push(m));
    await expect.poll(() => again.filter(isEvent).length).toBe(6);
    expect(again[0]).toMatchObject({ type: 'hello', since: hello.last_id });
    expect((again[0] as { last_id: number }).last_id).toBeGreaterThanOrEqual(hello.last_id + 6);
    expect(again.filter(isEvent).map(sampleNumber)).toEqual([-30, -31, -32, -33, -34, -35]);
    resumed.close();
  }, 30_000);

  it('with since, the hello says so and comes before the backlog', async () => {
    const [a, b, c2] = [await publish(0, -40), await publish(1, -41), await publish(0, -42)];
    const messages: StreamMessage[] = [];
    const ws = await connect(wsUrl(1, `topics=task&since=${a.id}`), (m) => messages.push(m));
    await expect.poll(() => messages.length).toBe(3);
    expect(messages[0]).toMatchObject({ type: 'hello', since: a.id });
    expect((messages[0] as { last_id: number }).last_id).toBeGreaterThanOrEqual(c2.id);
    expect(messages.slice(1)).toEqual([b, c2]);
    ws.close();
  }, 30_000);

  it('tells a filtered client its position for the events it skipped, at most once per interval', async () => {
    const filtered: { at: number; message: StreamMessage }[] = [];
    const everything: StreamMessage[] = [];
    // A filter nothing published here matches (the task events name no worker).
    const ws = await connect(wsUrl(0, 'worker_id=nobody'), (message) => filtered.push({ at: Date.now(), message }));
    const all = await connect(wsUrl(0), (m) => everything.push(m));
    await expect.poll(() => filtered.length + everything.length).toBe(2); // the two hellos
    const hello = filtered[0]!.message as { type: 'hello'; last_id: number };
    expect(hello.type).toBe('hello');
    // Nothing skipped yet: no position.
    await sleep(POSITION_INTERVAL_MS * 2);
    expect(filtered).toHaveLength(1);

    // Task events for 1.5 s, through both replicas.
    let last: ClusterEvent | undefined;
    const until = Date.now() + 1500;
    for (let n = 0; Date.now() < until; n++) {
      last = await publish(n % 2, -50);
      await sleep(10);
    }
    await expect.poll(() => (filtered.at(-1)!.message as { last_id?: number }).last_id).toBe(last!.id);
    const positions = filtered.slice(1);
    expect(positions.every(({ message }) => message.type === 'position')).toBe(true);
    expect(positions.length).toBeGreaterThanOrEqual(3);
    // Each step forward, never more often than the interval (a little slack for the network).
    const seen = positions.map(({ message }) => (message as { last_id: number }).last_id);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
    expect(seen[0]!).toBeGreaterThan(hello.last_id);
    for (let i = 1; i < positions.length; i++)
      expect(positions[i]!.at - positions[i - 1]!.at).toBeGreaterThanOrEqual(POSITION_INTERVAL_MS - 60);
    expect(positions.length).toBeLessThanOrEqual(Math.ceil(1500 / POSITION_INTERVAL_MS) + 2);
    // Resuming from the last position on the other replica: none of the skipped events, only what is new.
    const resumeAt = seen.at(-1)!;
    ws.close();
    const fresh = await publish(1, -51);
    const resumedMessages: StreamMessage[] = [];
    const resumed = await connect(wsUrl(1, `since=${resumeAt}`), (m) => resumedMessages.push(m));
    await expect.poll(() => resumedMessages.filter(isEvent).length).toBe(1);
    expect(resumedMessages.filter(isEvent)[0]!.id).toBe(fresh.id);
    resumed.close();

    // Idle again: no more positions. And a client that gets every event never needs one.
    const count = filtered.length;
    await sleep(POSITION_INTERVAL_MS * 2);
    expect(filtered).toHaveLength(count);
    expect(everything.filter((m) => m.type === 'position')).toEqual([]);
    expect(everything.filter(isEvent).at(-1)?.id).toBe(fresh.id);
    all.close();
  }, 30_000);

  it('answers a `since` older than the retention window with a gap message, then goes live', async () => {
    // Push the first events out of the window (retention 20,000, trimmed approximately by Redis).
    for (let i = 0; i < 24_000; i += 500) await Promise.all(Array.from({ length: 500 }, () => publish(1, -4)));
    const messages: StreamMessage[] = [];
    const ws = await connect(wsUrl(1, 'since=1&topics=task'), (m) => messages.push(m));
    await new Promise((r) => setTimeout(r, 300));
    await publish(0, -3);
    await new Promise((r) => setTimeout(r, 300));
    const [hello, first, ...rest] = messages;
    expect(hello).toMatchObject({ type: 'hello', since: 1 });
    expect(first).toMatchObject({ type: 'gap', since: 1 });
    expect(first?.type === 'gap' ? first.message : null).toMatch(/resync/);
    // After the gap the position moves past the lost events (a `position` may say so).
    const oldest = first?.type === 'gap' ? first.oldest! : 0;
    for (const m of rest.filter((m) => m.type === 'position'))
      expect(m).toEqual({ type: 'position', last_id: oldest - 1 });
    expect(rest.filter((m) => m.type !== 'position').map((m) => (isEvent(m) ? sampleNumber(m) : m.type))).toEqual([-3]);
    ws.close();
  }, 60_000);

  it('cuts off a stalled client (close 4008) while 100 others keep their latency', async () => {
    const latencies: number[][] = [[], []];
    let phase = 0;
    let delivered = 0;
    const onTask = (message: StreamMessage) => {
      if (message.type !== 'task.failed' || sampleNumber(message) !== -10) return;
      latencies[phase]!.push(Date.now() - sentAtOf(message));
      delivered++;
    };
    const clients = await Promise.all(Array.from({ length: 100 }, () => connect(wsUrl(0, 'topics=task'), onTask)));
    // Each tick: 5 small task events for the 100 clients, and 2 large vm events (64 KiB) that only
    // the stalled client asks for, so that it falls behind fast while the others' load is unchanged.
    const big = evt.vmStateChanged(
      { id: 'vm-big', name: 'big', worker_id: null },
      'running',
      'failed',
      'x'.repeat(64 * 1024),
    );
    const burst = async (seconds: number) => {
      for (let i = 0; i < seconds * 50; i++) {
        await Promise.all([
          ...Array.from({ length: 5 }, () => publishEvent(0, timedEvent(-10))),
          ...Array.from({ length: 2 }, () => publishEvent(0, big)),
        ]);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await burst(2);
    // Every event of the first burst reaches the 100 clients before the next phase counts.
    for (let i = 0; i < 100 && delivered < 100 * 2 * 250; i++) await new Promise((r) => setTimeout(r, 50));
    // Now a client that stops reading: the server's buffer for it fills up.
    const { ws: stalled, socket } = await connectWithSocket(wsUrl(0, 'topics=vm'));
    const closed = new Promise<number>((resolve) => stalled.on('close', (code) => resolve(code)));
    socket.pause();
    phase = 1;
    await burst(4);
    socket.resume();
    // The server sent close 4008 and then hung up: a client that does not read may never get to
    // the close frame behind its backlog, so it sees either code.
    expect([4008, 1006]).toContain(await closed);
    expect(c.replicas[0]!.hub!.slowConsumersDropped).toBe(1);
    const p = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * q)]!;
    const [before, during] = latencies as [number[], number[]];
    console.log(
      `100 clients: p50/p99 latency ${p(before, 0.5)}/${p(before, 0.99)} ms before, ` +
        `${p(during, 0.5)}/${p(during, 0.99)} ms while a stalled client was cut off`,
    );
    expect(before.length).toBe(100 * 2 * 250);
    expect(during.length).toBe(100 * 4 * 250);
    expect(delivered).toBe(100 * 6 * 250);
    // The numbers are printed above; the bound only tells a stalled client that blocks the others
    // (their events would queue behind its megabytes of backlog: seconds) from the noise of a busy
    // 2-core machine (tens of milliseconds), which a tighter bound mistook for a failure.
    expect(p(during, 0.99)).toBeLessThanOrEqual(Math.max(4 * p(before, 0.99), p(before, 0.99) + 250));
    for (const ws of clients) ws.close();
  }, 120_000);
});
