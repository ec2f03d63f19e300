/**
 * The live event stream over WebSocket, on two control-plane replicas sharing Postgres and Redis:
 * resume after random disconnects (every event exactly once, in order), fan-out across replicas,
 * filters, the gap message, and a stalled client cut off without slowing the others.
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
    config: { events: { retention: 20_000, max_buffered_bytes: 256 * 1024 } },
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
  | { type: 'gap'; since: number; oldest: number | null; message: string }
  | { type: 'subscribed'; topics: string[]; worker_id: string | null; vm_id: string | null };

const isEvent = (message: StreamMessage): message is ClusterEvent => 'id' in message;

/** A listener that keeps the events of the stream (and drops control messages). */
const into = (events: ClusterEvent[]) => (message: StreamMessage) => void (isEvent(message) && events.push(message));

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

  it('answers a `since` older than the retention window with a gap message, then goes live', async () => {
    // Push the first events out of the window (retention 20,000, trimmed approximately by Redis).
    for (let i = 0; i < 24_000; i += 500) await Promise.all(Array.from({ length: 500 }, () => publish(1, -4)));
    const messages: StreamMessage[] = [];
    const ws = await connect(wsUrl(1, 'since=1&topics=task'), (m) => messages.push(m));
    await new Promise((r) => setTimeout(r, 300));
    await publish(0, -3);
    await new Promise((r) => setTimeout(r, 300));
    const [first, ...rest] = messages;
    expect(first).toMatchObject({ type: 'gap', since: 1 });
    expect(first?.type === 'gap' ? first.message : null).toMatch(/resync/);
    expect(rest.map((m) => (isEvent(m) ? sampleNumber(m) : m.type))).toEqual([-3]);
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
