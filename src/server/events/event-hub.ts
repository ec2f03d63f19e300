/**
 * Fans the cluster's events out to this replica's WebSocket clients. One subscription to the bus
 * per replica; each event is serialised once, and its topic and publication time read once, for
 * every client; every client has its own filter and cursor.
 *
 * Writes are batched: one frame per client for the events that arrived together, and the hub
 * writes at most once every `flushIntervalMs`. A write to a socket costs a system call whatever it
 * carries, so with many clients the number of frames is most of what the fan-out costs: pacing
 * bounds it at high event rates, while a lone event after a quiet spell still leaves at once.
 * Clients that get every event of the burst (the common case: same filter, live) are sent the very
 * same string, built once.
 *
 * A client is never allowed to slow the others: sending never waits, and a client whose socket
 * buffers more than `maxBufferedBytes` (it stopped reading) is closed with code 4008.
 * Liveness: the server pings every `pingIntervalMs`; a client that has not answered the previous
 * ping is terminated (it is gone: a close handshake would never finish).
 *
 * Positions (documented in the README): a session starts with `{ type: 'hello', since, last_id }`
 * before anything else, and every `positionIntervalMs` a client whose cursor moved past what it was
 * told (events its filter skipped) gets `{ type: 'position', last_id }`: at most one per interval,
 * none while it gets every event it would be told about anyway.
 */
import type { WebSocket } from 'ws';
import { type ClusterEvent, topicOf } from '../../domain/index.ts';
import type { EventBus } from '../../ports/event-bus.ts';
import { matches, type Subscription } from './subscription.ts';

/** Close codes of the event stream (documented in the README). */
export const CLOSE_CODES = {
  /** The client stopped reading: its buffer passed the limit. */
  slowConsumer: 4008,
  /** The client sent something that is not a valid message. */
  badMessage: 4400,
  /** This replica is shutting down: reconnect (to any replica) with `since`. */
  goingAway: 1001,
} as const;

export interface EventHubOptions {
  maxBufferedBytes: number;
  pingIntervalMs: number;
  /** How often a client whose filter skipped events is told its position (`{ type: 'position' }`). */
  positionIntervalMs: number;
  /** Least time between two writes of the hub to its clients (default 20 ms; 0: as soon as events arrive). */
  flushIntervalMs?: number;
  /** Told of each event handed to a client (its lag since publication) and of each client dropped or told of a gap. */
  observer?: {
    delivered(lagSeconds: number): void;
    dropped(reason: 'slow_consumer' | 'gap'): void;
  };
}

/** An event as the hub hands it to its sessions: what every client needs from it, computed once. */
export interface OutgoingEvent {
  readonly event: ClusterEvent;
  /** The event as JSON: one line of a frame. */
  readonly text: string;
  readonly topic: string;
  /** When it was published (its timestamp), in ms since the epoch: for the fan-out lag. */
  readonly at: number;
}

export function outgoing(event: ClusterEvent, text: string = JSON.stringify(event)): OutgoingEvent {
  return { event, text, topic: topicOf(event.type), at: Date.parse(event.timestamp) };
}

export class EventSession {
  /** The id of the last event this client was given (or skipped by its filter). */
  cursor: number;
  /**
   * The position the client knows: the hello's, the last event it was sent, or the last position
   * message. A position message is due when the cursor is past it.
   */
  private told: number;
  /** Live events that arrive before the hello and while the backlog is being sent. */
  private pending: OutgoingEvent[] | null = [];
  /** Control messages (a `subscribed`) to send right after the hello: null once it is sent. */
  private early: string[] | null = [];
  alive = true;

  constructor(
    readonly socket: WebSocket,
    public subscription: Subscription,
    /** The id the client asked to resume after (`since`), or null: it starts at the hello's `last_id`. */
    readonly since: number | null,
    private readonly hub: EventHub,
  ) {
    this.cursor = since ?? 0;
    this.told = this.cursor;
  }

  /**
   * The first message: where the stream starts. `latest` is the newest id in the cluster. Without
   * `since` the session starts after it (live events at or below it are the client's past); with
   * `since` the backlog after `since` follows.
   */
  hello(latest: number): void {
    if (this.since === null) {
      this.cursor = Math.max(this.cursor, latest);
      this.told = this.cursor;
    }
    this.write(JSON.stringify({ type: 'hello', since: this.since, last_id: latest }));
    const early = this.early ?? [];
    this.early = null;
    for (const text of early) this.write(text);
  }

  /** Called by the hub for every live event: a few comparisons, nothing computed (it is per client). */
  offer(event: OutgoingEvent): void {
    if (this.pending) {
      this.pending.push(event);
      return;
    }
    this.deliver(event);
  }

  private deliver(out: OutgoingEvent): void {
    const event = out.event;
    // Exactly once, in order: anything at or below the cursor was already given (or skipped).
    if (event.id <= this.cursor) return;
    this.cursor = event.id;
    if (!matches(this.subscription, event, out.topic)) return;
    this.told = event.id;
    // Events that arrive together leave together: one frame, one line each.
    this.batch.push(out);
    if (this.batch.length === 1) this.hub.schedule(this);
  }

  /** Events waiting for the next flush. */
  private batch: OutgoingEvent[] = [];

  flush(): void {
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    if (!this.write(this.hub.frameOf(batch))) return;
    const observer = this.hub.options.observer;
    if (!observer) return;
    const now = Date.now();
    for (const out of batch) if (Number.isFinite(out.at)) observer.delivered((now - out.at) / 1000);
  }

  /** The backlog (replayed events) has been sent: live events flow straight through from now. */
  startLive(backlog: ClusterEvent[]): void {
    for (const event of backlog) this.deliver(outgoing(event));
    const waiting = this.pending ?? [];
    this.pending = null;
    for (const event of waiting) this.deliver(event);
  }

  /** The client was told of a gap (its `since` is older than what is retained). */
  gapTold(): void {
    this.hub.options.observer?.dropped('gap');
  }

  /** The requested `since` is older than what is retained: the client must resync, then goes live. */
  skipTo(id: number): void {
    this.cursor = Math.max(this.cursor, id);
  }

  /** A control message (gap, subscribed, position): after any events already waiting, in order. */
  send(text: string): void {
    if (this.early) {
      this.early.push(text);
      return;
    }
    this.flush();
    this.write(text);
  }

  /** Tells the client its cursor if its filter skipped events since it was last told where it is. */
  sendPosition(): void {
    if (this.pending || this.early || this.cursor <= this.told) return;
    this.told = this.cursor;
    this.send(JSON.stringify({ type: 'position', last_id: this.cursor }));
  }

  /** False when nothing was sent: the socket is closed, or the client was dropped for not reading. */
  private write(text: string): boolean {
    if (this.socket.readyState !== this.socket.OPEN) return false;
    if (this.socket.bufferedAmount > this.hub.options.maxBufferedBytes) {
      this.hub.drop(
        this,
        CLOSE_CODES.slowConsumer,
        'slow consumer: the client did not read its events fast enough; reconnect with since=<last id>',
      );
      return false;
    }
    this.socket.send(text);
    return true;
  }
}

function joinLines(batch: readonly OutgoingEvent[]): string {
  let text = batch[0]!.text;
  for (let i = 1; i < batch.length; i++) text += `\n${batch[i]!.text}`;
  return text;
}

export class EventHub {
  private readonly sessions = new Set<EventSession>();
  private unsubscribe: (() => void) | null = null;
  private pinger: NodeJS.Timeout | null = null;
  private positioner: NodeJS.Timeout | null = null;
  /** The newest id this replica has seen live (a client without `since` starts at or after it). */
  lastLiveId: number | null = null;
  private dirty = new Set<EventSession>();
  private flushScheduled = false;
  /** When the hub last wrote to its clients (performance.now()), for the pacing of writes. */
  private lastFlushAt = -Infinity;
  private readonly flushIntervalMs: number;
  /** The live events handed out since the last flush, in order, and their frame once built. */
  private burst: OutgoingEvent[] = [];
  private burstFrame: string | null = null;
  slowConsumersDropped = 0;

  constructor(
    private readonly bus: EventBus,
    readonly options: EventHubOptions,
  ) {
    this.flushIntervalMs = Math.max(0, options.flushIntervalMs ?? 20);
  }

  start(): void {
    this.unsubscribe = this.bus.subscribe((event) => {
      this.lastLiveId = event.id;
      if (this.sessions.size === 0) return;
      const out = outgoing(event);
      this.burst.push(out);
      this.burstFrame = null;
      for (const session of this.sessions) session.offer(out);
      // No client took it (filters, backlogs): no flush will clear the burst, so do it here. The
      // burst only lets batches share a frame; every batch gets its own events whatever it holds.
      if (!this.flushScheduled) {
        this.burst = [];
        this.burstFrame = null;
      }
    });
    this.pinger = setInterval(() => this.ping(), this.options.pingIntervalMs);
    this.pinger.unref();
    // One timer for every client: each gets at most one position per tick.
    this.positioner = setInterval(() => {
      for (const session of this.sessions) session.sendPosition();
    }, this.options.positionIntervalMs);
    this.positioner.unref();
  }

  /**
   * Where a client that connects now starts: the newest id in the cluster (0 when none), and never
   * below what this replica already handed out live.
   */
  async latestId(): Promise<number> {
    const latest = await this.bus.latestId();
    return Math.max(latest ?? 0, this.lastLiveId ?? 0);
  }

  /**
   * Flushes every session with waiting events once the current burst has been handed out, and no
   * sooner than `flushIntervalMs` after the previous flush.
   */
  schedule(session: EventSession): void {
    this.dirty.add(session);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    const wait = this.lastFlushAt + this.flushIntervalMs - performance.now();
    if (wait >= 1) setTimeout(() => this.flushAll(), wait);
    else setImmediate(() => this.flushAll());
  }

  private flushAll(): void {
    this.flushScheduled = false;
    this.lastFlushAt = performance.now();
    const sessions = this.dirty;
    this.dirty = new Set();
    for (const session of sessions) session.flush();
    this.burst = [];
    this.burstFrame = null;
  }

  /**
   * The frame for a session's batch. A batch that is the whole current burst (a live client whose
   * filter took all of it) gets the burst's frame, built once for all of them.
   */
  frameOf(batch: readonly OutgoingEvent[]): string {
    const burst = this.burst;
    let whole = batch.length === burst.length;
    for (let i = 0; whole && i < batch.length; i++) whole = batch[i] === burst[i];
    if (!whole) return joinLines(batch);
    this.burstFrame ??= joinLines(burst);
    return this.burstFrame;
  }

  get clients(): number {
    return this.sessions.size;
  }

  add(session: EventSession): void {
    this.sessions.add(session);
    session.socket.on('pong', () => {
      session.alive = true;
    });
    session.socket.on('close', () => this.sessions.delete(session));
  }

  drop(session: EventSession, code: number, reason: string): void {
    if (!this.sessions.delete(session)) return;
    if (code === CLOSE_CODES.slowConsumer) {
      this.slowConsumersDropped++;
      this.options.observer?.dropped('slow_consumer');
    }
    session.socket.close(code, reason.slice(0, 120));
    // A client that does not read will not complete the close handshake either.
    setTimeout(() => session.socket.terminate(), 1000).unref();
  }

  private ping(): void {
    for (const session of this.sessions) {
      if (!session.alive) {
        this.sessions.delete(session);
        session.socket.terminate();
        continue;
      }
      session.alive = false;
      session.socket.ping();
    }
  }

  stop(): void {
    this.unsubscribe?.();
    if (this.pinger) clearInterval(this.pinger);
    if (this.positioner) clearInterval(this.positioner);
    for (const session of this.sessions)
      session.socket.close(CLOSE_CODES.goingAway, 'server shutting down; reconnect with since=<last id>');
    this.sessions.clear();
  }
}
