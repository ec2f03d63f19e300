/**
 * Fans the cluster's events out to this replica's WebSocket clients. One subscription to the bus
 * per replica; each event is serialised once; every client has its own filter and cursor.
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
import type { ClusterEvent } from '../../domain/index.ts';
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
  /** Told of each event handed to a client (its lag since publication) and of each client dropped or told of a gap. */
  observer?: {
    delivered(lagSeconds: number): void;
    dropped(reason: 'slow_consumer' | 'gap'): void;
  };
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
  private pending: ClusterEvent[] | null = [];
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

  /** Called by the hub for every live event. */
  offer(event: ClusterEvent, serialised: string): void {
    if (this.pending) {
      this.pending.push(event);
      return;
    }
    this.deliver(event, serialised);
  }

  private deliver(event: ClusterEvent, serialised?: string): void {
    // Exactly once, in order: anything at or below the cursor was already given (or skipped).
    if (event.id <= this.cursor) return;
    this.cursor = event.id;
    if (!matches(this.subscription, event)) return;
    this.told = event.id;
    // Events that arrive together (one read of the stream) leave together: one frame, one line each.
    this.batch.push(serialised ?? JSON.stringify(event));
    this.batchTimes.push(Date.parse(event.timestamp));
    this.hub.schedule(this);
  }

  /** Lines waiting for the next flush. */
  private batch: string[] = [];
  /** When each event of the batch was published (its timestamp), for the fan-out lag. */
  private batchTimes: number[] = [];

  flush(): void {
    if (this.batch.length === 0) return;
    const text = this.batch.join('\n');
    const times = this.batchTimes;
    this.batch = [];
    this.batchTimes = [];
    if (!this.write(text)) return;
    const observer = this.hub.options.observer;
    if (!observer) return;
    const now = Date.now();
    for (const at of times) if (Number.isFinite(at)) observer.delivered((now - at) / 1000);
  }

  /** The backlog (replayed events) has been sent: live events flow straight through from now. */
  startLive(backlog: ClusterEvent[]): void {
    for (const event of backlog) this.deliver(event);
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

export class EventHub {
  private readonly sessions = new Set<EventSession>();
  private unsubscribe: (() => void) | null = null;
  private pinger: NodeJS.Timeout | null = null;
  private positioner: NodeJS.Timeout | null = null;
  /** The newest id this replica has seen live (a client without `since` starts at or after it). */
  lastLiveId: number | null = null;
  private readonly dirty = new Set<EventSession>();
  private flushScheduled = false;
  slowConsumersDropped = 0;

  constructor(
    private readonly bus: EventBus,
    readonly options: EventHubOptions,
  ) {}

  start(): void {
    this.unsubscribe = this.bus.subscribe((event) => {
      this.lastLiveId = event.id;
      if (this.sessions.size === 0) return;
      const serialised = JSON.stringify(event);
      for (const session of this.sessions) session.offer(event, serialised);
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

  /** Flushes every session with waiting events once the current burst has been handed out. */
  schedule(session: EventSession): void {
    this.dirty.add(session);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const sessions = [...this.dirty];
      this.dirty.clear();
      for (const s of sessions) s.flush();
    });
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
