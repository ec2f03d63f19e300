/**
 * The live event stream (`GET /api/v1/events`, WebSocket) as a subscription that lasts: it
 * reconnects by itself with backoff, resumes after the last event it delivered (`since=`), and so
 * never delivers an event twice nor skips one the server still retains. When the server no longer
 * has the events since then (`{ type: 'gap' }`: the retention window passed), `onGap` is called:
 * resync what you track from the REST API, then carry on with the live events that follow.
 *
 * Until the first event arrives there is no position to resume from: a subscription started
 * without `since` that loses its connection before any event resumes live. Give `since` (an id you
 * saw) to close that window.
 *
 * Close codes of the server: 1000/1001 (shutting down), 1011 (backlog unreadable), 4008 (this
 * client read too slowly) and a lost connection are retried; 4400 (a message the server refused)
 * and a refused upgrade (401, 403, 400) end the subscription with `onError`.
 */
import type WebSocket from 'ws';
import type { TOPICS } from '../contract/requests.ts';
import type { ClusterEvent } from '../domain/events.ts';
import { type ApiError, ProtocolError, ValidationError } from './errors.ts';
import { openSocket } from './socket.ts';
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
  /** Each time a connection is open (the first, and every reconnect), with the id it resumed after. */
  onOpen?: (info: { since: number | null; reconnect: boolean }) => void;
  /** The longest pause between two reconnects, in ms (default 10 s). */
  maxBackoffMs?: number;
  signal?: AbortSignal;
}

export type EventHandler = (event: ClusterEvent) => void | Promise<void>;

export interface Subscription extends AsyncDisposable {
  /** The id of the last event delivered (where a reconnect resumes), or null. */
  readonly lastId: number | null;
  /** Resolves once the subscription has ended (close(), the signal, or a failure it cannot retry). */
  readonly closed: Promise<void>;
  close(): void;
}

const FATAL_CLOSE = new Set([4400, 4401, 4403]);

export function subscribe(
  transport: Transport,
  filter: EventFilter,
  handler: EventHandler,
  options: SubscribeOptions = {},
): Subscription {
  let lastId: number | null = filter.since ?? null;
  let ws: WebSocket | null = null;
  let stopped = false;
  let failures = 0;
  let connections = 0;
  let retryTimer: NodeJS.Timeout | null = null;
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

  const onMessage = (message: Record<string, unknown>) => {
    if (stopped) return;
    if (typeof message.id === 'number' && typeof message.type === 'string') {
      failures = 0;
      deliver(message as unknown as ClusterEvent);
      return;
    }
    if (message.type === 'gap') {
      const gap = message as unknown as Gap;
      chain = chain.then(() => {
        if (!stopped) options.onGap?.(gap);
      });
    }
    // `subscribed` acknowledgements need nothing.
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
    const since = lastId;
    openSocket(transport, `/events${query()}`, onMessage, { signal: options.signal })
      .then((socket) => {
        if (stopped) return void socket.close(1000);
        ws = socket;
        options.onOpen?.({ since, reconnect: connections > 0 });
        connections++;
        socket.on('error', () => undefined); // the close that follows says it
        socket.on('close', (code, reason) => {
          ws = null;
          if (stopped) return;
          const why = `the event stream closed (${code}${reason.length ? `: ${reason}` : ''})`;
          if (FATAL_CLOSE.has(code)) return fail(new ProtocolError(why, { details: { close_code: code } }));
          retry(
            new ProtocolError(`${why}; reconnecting after event ${lastId ?? 'none'}`, {
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
