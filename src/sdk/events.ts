/**
 * The live event stream (`GET /api/v1/events`, WebSocket) as a subscription that lasts: it
 * reconnects by itself with backoff, resumes after the last event it delivered (`since=`), and so
 * never delivers an event twice nor skips one the server still retains. When the server no longer
 * has the events since then (`{ type: 'gap' }`: the retention window passed), `onGap` is called:
 * resync what you track from the REST API, then carry on with the live events that follow.
 *
 * The position: the server opens every connection with `{ type: 'hello', since, last_id }` (the
 * newest event in the cluster) and tells a filtered client how far its filter has skipped with
 * `{ type: 'position', last_id }`. A subscription started without `since` resumes after the hello's
 * `last_id`, a newer position, or the last event delivered, whichever is newest: even one that
 * drops before its first event loses nothing. `lastId` and `onOpen` expose it.
 *
 * Close codes of the server: 1000/1001 (shutting down), 1011 (backlog unreadable), 4008 (this
 * client read too slowly) and a lost connection are retried; 4400 (a message the server refused)
 * and a refused upgrade (401, 403, 400) end the subscription with `onError`.
 */
import type { TOPICS } from '../contract/requests.ts';
import type { ClusterEvent } from '../domain/events.ts';
import { type ApiError, ProtocolError, ValidationError } from './errors.ts';
import type { ApiSocket } from './socket.ts';
import { unrefTimer } from './util.ts';
import type { Transport } from './transport.ts';

export type Topic = (typeof TOPICS)[number];

export interface EventFilter {
  /** `worker`, `vm`, `task`; all when none. */
  topics?: readonly Topic[];
  /** Only events about this worker. */
  workerId?: string;
  /** Only events about this VM. */
  vmId?: string;
  /** Start after this event id: every retained event after it, then the live ones. */
  since?: number;
}

export interface Gap {
  type: 'gap';
  /** The id the stream was asked to resume after. */
  since: number;
  /** The oldest id the server still has (null: none). */
  oldest: number | null;
  message: string;
}

export interface SubscribeOptions {
  /** The server no longer has the events after `since`: resync from REST. */
  onGap?: (gap: Gap) => void;
  /**
   * A failure. `willRetry` true: the subscription goes on (a lost connection it reconnects by
   * itself, a handler that threw); false: it ended (refused credentials, a refused message).
   */
  onError?: (error: ApiError | Error, info: { willRetry: boolean }) => void;
  /**
   * Each time a connection is open and the server said where the stream stands (its hello): the
   * first, and every reconnect. In line with the handler: it runs after every event of the
   * previous connection was handled and before any of this one; a promise it returns is awaited
   * first (load state over REST here, and the handler gets the changes after it).
   */
  onOpen?: (info: OpenInfo) => unknown;
  /** The longest pause between two reconnects, in ms (default 10 s). */
  maxBackoffMs?: number;
  signal?: AbortSignal;
}

export interface OpenInfo {
  /** The id this connection resumed after (`since`), or null: it starts right after `lastId`. */
  since: number | null;
  /**
   * The newest event id in the cluster when the connection opened (0: none yet; null: a server too
   * old to say). Without `since`, every event that follows has a greater id.
   */
  lastId: number | null;
  reconnect: boolean;
}

export type EventHandler = (event: ClusterEvent) => void | Promise<void>;

export interface Subscription extends AsyncDisposable {
  /**
   * Where a reconnect resumes (`since`): the last event delivered, or the stream's position when
   * that is newer (the hello's `last_id` for a subscription started without `since`, a `position`
   * the server sent for events the filter skipped). Null until the first connection says.
   */
  readonly lastId: number | null;
  /** Resolves once the subscription has ended (close(), the signal, or a failure it cannot retry). */
  readonly closed: Promise<void>;
  close(): void;
}

const FATAL_CLOSE = new Set([4400, 4401, 4403]);
/** A server too old to send a hello: onOpen is called at its first message, or after this long. */
const HELLO_WAIT_MS = 1000;

/** An event: the envelope every event has (its data is the server's, typed by its `type`). */
const isEvent = (message: Record<string, unknown>): message is Record<string, unknown> & ClusterEvent =>
  isId(message.id) &&
  typeof message.type === 'string' &&
  typeof message.timestamp === 'string' &&
  typeof message.data === 'object' &&
  message.data !== null;

const isGap = (message: Record<string, unknown>): message is Record<string, unknown> & Gap =>
  message.type === 'gap' &&
  isId(message.since) &&
  (message.oldest === null || isId(message.oldest)) &&
  typeof message.message === 'string';

const isId = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;

/** One connection of the subscription, until its hello. */
interface Connection {
  since: number | null;
  reconnect: boolean;
  greeted: boolean;
  timer: ReturnType<typeof setTimeout> | null;
}

export function subscribe(
  transport: Transport,
  filter: EventFilter,
  handler: EventHandler,
  options: SubscribeOptions = {},
): Subscription {
  let lastId: number | null = filter.since ?? null;
  let ws: ApiSocket | null = null;
  let stopped = false;
  let failures = 0;
  let connections = 0;
  let retryTimer: ReturnType<typeof setTimeout> | null = null;
  let endClosed!: () => void;
  const closed = new Promise<void>((resolve) => (endClosed = resolve));
  // Events are handed to the handler one at a time, in order (an async handler is awaited).
  let chain: Promise<void> = Promise.resolve();

  const stop = () => {
    if (stopped) return;
    stopped = true;
    if (retryTimer) clearTimeout(retryTimer);
    ws?.close(1000, 'client closed the subscription');
    options.signal?.removeEventListener('abort', stop);
    void chain.then(endClosed);
  };
  options.signal?.addEventListener('abort', stop, { once: true });
  if (options.signal?.aborted) stop();

  /** The stream stands at `id` (everything up to it delivered or skipped): resume after it. */
  const advance = (id: number) => {
    if (lastId === null || id > lastId) lastId = id;
  };

  const opened = (conn: Connection, latest: number | null) => {
    if (conn.greeted) return;
    conn.greeted = true;
    if (conn.timer) clearTimeout(conn.timer);
    const info: OpenInfo = { since: conn.since, lastId: latest, reconnect: conn.reconnect };
    chain = chain.then(async () => {
      if (stopped) return;
      try {
        await options.onOpen?.(info);
      } catch (err) {
        options.onError?.(err as Error, { willRetry: true });
      }
    });
  };

  const deliver = (event: ClusterEvent) => {
    // Never twice: a resume replays from `since`, and anything at or below it was delivered.
    if (lastId !== null && event.id <= lastId) return;
    lastId = event.id;
    chain = chain.then(async () => {
      if (stopped) return;
      try {
        await handler(event);
      } catch (err) {
        options.onError?.(err as Error, { willRetry: true });
      }
    });
  };

  // Messages may arrive before openSocket's promise settles (with the upgrade): the connection's
  // state is made before it is opened.
  const onMessage = (conn: Connection, message: Record<string, unknown>) => {
    if (stopped) return;
    if (message.type === 'hello') {
      const latest = isId(message.last_id) ? message.last_id : null;
      // Without `since` the stream starts after `last_id`; with it, the backlog after `since` follows.
      if (latest !== null && (message.since === null || message.since === undefined)) advance(latest);
      opened(conn, latest);
      return;
    }
    opened(conn, null); // a server that sends no hello
    if (isEvent(message)) {
      failures = 0;
      deliver(message);
      return;
    }
    if (message.type === 'position') {
      if (isId(message.last_id)) advance(message.last_id);
      return;
    }
    if (isGap(message)) {
      const gap = message;
      chain = chain.then(() => {
        if (!stopped) options.onGap?.(gap);
      });
    }
    // `subscribed` acknowledgements need nothing; other types are a newer server's.
  };

  const query = () => {
    const params = new URLSearchParams();
    if (filter.topics?.length) params.set('topics', filter.topics.join(','));
    if (filter.workerId) params.set('worker_id', filter.workerId);
    if (filter.vmId) params.set('vm_id', filter.vmId);
    if (lastId !== null) params.set('since', String(lastId));
    const text = params.toString();
    return text ? `?${text}` : '';
  };

  const fail = (error: ApiError | Error) => {
    options.onError?.(error, { willRetry: false });
    stop();
  };

  const retry = (error: ApiError | Error) => {
    if (stopped) return;
    options.onError?.(error, { willRetry: true });
    const max = options.maxBackoffMs ?? 10_000;
    const delay = Math.min(max, 250 * 2 ** failures) * (0.5 + Math.random() / 2);
    failures++;
    retryTimer = setTimeout(connect, delay);
  };

  const connect = () => {
    retryTimer = null;
    if (stopped) return;
    const conn: Connection = { since: lastId, reconnect: connections > 0, greeted: false, timer: null };
    transport
      .openSocket(`/events${query()}`, (message) => onMessage(conn, message), { signal: options.signal })
      .then((socket) => {
        if (stopped) return void socket.close(1000);
        ws = socket;
        connections++;
        if (!conn.greeted) {
          conn.timer = setTimeout(() => opened(conn, null), HELLO_WAIT_MS);
          unrefTimer(conn.timer);
        }
        socket.onClose((code, reason) => {
          ws = null;
          if (conn.timer) clearTimeout(conn.timer);
          if (stopped) return;
          const why = `the event stream closed (${code}${reason.length ? `: ${reason}` : ''})`;
          if (FATAL_CLOSE.has(code)) return fail(new ProtocolError(why, { details: { close_code: code } }));
          retry(
            new ProtocolError(`${why}; reconnecting after id ${lastId ?? 'none'}`, {
              details: { close_code: code },
            }),
          );
        });
      })
      .catch((err: ApiError) => {
        if (stopped) return;
        // Credentials refused, a filter the server refused: retrying cannot help.
        if (err.status === 400 || err.status === 401 || err.status === 403 || err instanceof ValidationError)
          return fail(err);
        retry(err);
      });
  };
  connect();

  return {
    get lastId() {
      return lastId;
    },
    closed,
    close: stop,
    async [Symbol.asyncDispose]() {
      stop();
      await closed;
    },
  };
}

/**
 * The same stream as an async iterator: `for await (const event of client.events.stream(…))`.
 * Leaving the loop closes it; a gap is given to `onGap` (the iteration goes on).
 */
export function stream(
  transport: Transport,
  filter: EventFilter,
  options: SubscribeOptions = {},
): AsyncIterableIterator<ClusterEvent> & Subscription {
  const queue: ClusterEvent[] = [];
  let wake: (() => void) | null = null;
  let failure: Error | null = null;
  const subscription = subscribe(
    transport,
    filter,
    (event) => {
      queue.push(event);
      wake?.();
    },
    {
      ...options,
      onError: (error, info) => {
        options.onError?.(error, info);
        if (!info.willRetry) failure = error;
      },
    },
  );
  void subscription.closed.then(() => wake?.());
  let done = false;
  void subscription.closed.then(() => (done = true));
  const iterator: AsyncIterableIterator<ClusterEvent> & Subscription = {
    get lastId() {
      return subscription.lastId;
    },
    closed: subscription.closed,
    close: () => subscription.close(),
    [Symbol.asyncDispose]: () => subscription[Symbol.asyncDispose](),
    [Symbol.asyncIterator]() {
      return iterator;
    },
    async next(): Promise<IteratorResult<ClusterEvent>> {
      for (;;) {
        const event = queue.shift();
        if (event) return { value: event, done: false };
        if (failure) {
          const err = failure;
          failure = null;
          throw err;
        }
        if (done) return { value: undefined, done: true };
        await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
      }
    },
    async return(): Promise<IteratorResult<ClusterEvent>> {
      subscription.close();
      await subscription.closed;
      return { value: undefined, done: true };
    },
  };
  return iterator;
}
