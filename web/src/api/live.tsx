/**
 * The UI's one event subscription, which keeps every view live without polling. Events are taken
 * in batches (at most five a second: a firehose of 500 events/s costs five renders, not 500):
 * patches go into the query cache, stale keys are refetched at most once a second each. The
 * subscription resumes after the last event it saw, so a dropped connection loses nothing; when the
 * server no longer has those events (`gap`), every view is fetched again from the REST API. While
 * the tab is hidden the stream is closed, and on return it resumes where it stopped.
 */
import { type ClusterEvent, type Gap, type Subscription, UnauthorizedError } from '@aetherium/sdk';
import { type QueryClient, type QueryKey, useQueryClient } from '@tanstack/react-query';
import { createContext, type ReactNode, useContext, useEffect, useMemo, useRef, useSyncExternalStore } from 'react';
import { effectsOf } from './event-effects.ts';
import { useSession } from './session.tsx';

export type LiveState = 'connecting' | 'live' | 'reconnecting' | 'paused' | 'failed';

/** An entry of the events log: an event, or a note of the stream's own (a gap, a resync). */
export type LogEntry = { kind: 'event'; event: ClusterEvent } | { kind: 'note'; id: string; at: string; text: string };

const BATCH_MS = 200;
/** How many events before the page opened the log starts with. */
const HISTORY = 200;
const STALE_EVERY_MS = 1000;
const KEEP = 1000;

/** Invalidates each key at most once per STALE_EVERY_MS: the first at once, the rest at the end of the window. */
class Throttle {
  readonly #last = new Map<string, number>();
  readonly #waiting = new Map<string, ReturnType<typeof setTimeout>>();
  constructor(private readonly client: QueryClient) {}

  stale(key: QueryKey): void {
    const id = JSON.stringify(key);
    if (this.#waiting.has(id)) return;
    const wait = (this.#last.get(id) ?? 0) + STALE_EVERY_MS - Date.now();
    const run = () => {
      this.#waiting.delete(id);
      this.#last.set(id, Date.now());
      void this.client.invalidateQueries({ queryKey: key });
    };
    if (wait <= 0) run();
    else this.#waiting.set(id, setTimeout(run, wait));
  }

  stop(): void {
    for (const timer of this.#waiting.values()) clearTimeout(timer);
    this.#waiting.clear();
  }
}

/** The live layer's state, read by components through useSyncExternalStore. */
class LiveStore {
  state: LiveState = 'connecting';
  lastId: number | null = null;
  error: string | null = null;
  log: LogEntry[] = [];
  eventsSeen = 0;
  version = 0;
  readonly #listeners = new Set<() => void>();

  subscribe = (listener: () => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };
  snapshot = () => this.version;

  set(change: Partial<Pick<LiveStore, 'state' | 'lastId' | 'error'>>): void {
    Object.assign(this, change);
    this.changed();
  }

  add(entries: LogEntry[]): void {
    if (entries.length === 0) return;
    this.log = [...entries.reverse(), ...this.log].slice(0, KEEP);
    this.changed();
  }

  /** Events from before the page opened: older than every entry, so they go last. */
  addHistory(events: ClusterEvent[]): void {
    if (events.length === 0) return;
    const known = new Set(this.log.flatMap((e) => (e.kind === 'event' ? [e.event.id] : [])));
    const older = events.filter((e) => !known.has(e.id)).reverse();
    this.log = [...this.log, ...older.map((event) => ({ kind: 'event' as const, event }))].slice(0, KEEP);
    this.changed();
  }

  changed(): void {
    this.version++;
    for (const listener of this.#listeners) listener();
  }
}

const LiveContext = createContext<LiveStore | null>(null);

export function LiveProvider({ children }: { children: ReactNode }) {
  const { client, signOut } = useSession();
  const queryClient = useQueryClient();
  const store = useMemo(() => new LiveStore(), []);
  const signOutRef = useRef(signOut);
  signOutRef.current = signOut;

  useEffect(() => {
    const throttle = new Throttle(queryClient);
    let subscription: Subscription | null = null;
    let batch: ClusterEvent[] = [];
    let timer: ReturnType<typeof setTimeout> | null = null;
    let opened = false;

    const flush = () => {
      timer = null;
      const events = batch;
      batch = [];
      const stale = new Map<string, QueryKey>();
      for (const event of events) {
        const effects = effectsOf(event);
        effects.patch(queryClient);
        for (const key of effects.stale) stale.set(JSON.stringify(key), key);
      }
      for (const key of stale.values()) throttle.stale(key);
      store.eventsSeen += events.length;
      store.lastId = events.at(-1)?.id ?? store.lastId;
      store.add(events.map((event) => ({ kind: 'event', event })));
    };

    const note = (text: string) =>
      store.add([{ kind: 'note', id: `note-${Date.now()}-${Math.random()}`, at: new Date().toISOString(), text }]);

    const resyncAll = () => void queryClient.invalidateQueries();

    // The log starts with the last events before the page opened, read by a second, short
    // subscription that stops at the live one's starting point. They only fill the log: the views
    // are fetched fresh, and an old event must not patch them.
    let history: Subscription | null = null;
    const loadHistory = (upTo: number) => {
      if (upTo <= 0) return;
      const events: ClusterEvent[] = [];
      const done = () => {
        history?.close();
        history = null;
        store.addHistory(events);
      };
      history = client.events.subscribe(
        { since: Math.max(0, upTo - HISTORY) },
        (event) => {
          if (event.id <= upTo) events.push(event);
          if (event.id >= upTo) done();
        },
        // Older than the server keeps: the log starts with what it still has.
        { onGap: () => done(), onError: (_err, { willRetry }) => !willRetry && done() },
      );
    };

    const start = () => {
      subscription = client.events.subscribe(
        store.lastId === null ? {} : { since: store.lastId },
        (event) => {
          batch.push(event);
          timer ??= setTimeout(flush, BATCH_MS);
        },
        {
          onOpen: (info) => {
            // The first connection: what the pages fetched before it was positioned may predate
            // an event it will not replay, so fetch it once more now.
            if (!opened) {
              resyncAll();
              if (info.lastId !== null) loadHistory(info.lastId);
            } else if (info.reconnect) note(`reconnected; resumed after event ${info.since ?? info.lastId}`);
            opened = true;
            store.set({ state: 'live', error: null, lastId: store.lastId ?? info.lastId });
          },
          onGap: (gap: Gap) => {
            note(
              `missed events after ${gap.since} (the server keeps from ${gap.oldest ?? 'none'}): reloaded every view`,
            );
            resyncAll();
          },
          onError: (err, { willRetry }) => {
            if (!willRetry && err instanceof UnauthorizedError)
              return signOutRef.current('Your session ended: sign in again.');
            store.set({ state: willRetry ? 'reconnecting' : 'failed', error: err.message });
          },
        },
      );
    };

    const stop = () => {
      if (timer) {
        clearTimeout(timer);
        flush();
      }
      const sub = subscription;
      subscription = null;
      if (sub) {
        store.lastId = sub.lastId ?? store.lastId;
        sub.close();
      }
    };

    const onVisibility = () => {
      if (document.visibilityState === 'hidden') {
        stop();
        store.set({ state: 'paused' });
      } else if (!subscription) {
        store.set({ state: 'connecting' });
        start();
      }
    };

    if (document.visibilityState === 'hidden') store.set({ state: 'paused' });
    else start();
    document.addEventListener('visibilitychange', onVisibility);
    return () => {
      document.removeEventListener('visibilitychange', onVisibility);
      history?.close();
      stop();
      throttle.stop();
    };
  }, [client, queryClient, store]);

  return <LiveContext.Provider value={store}>{children}</LiveContext.Provider>;
}

function useStore(): LiveStore {
  const store = useContext(LiveContext);
  if (!store) throw new Error('useLive outside LiveProvider');
  useSyncExternalStore(store.subscribe, store.snapshot);
  return store;
}

export function useLive(): { state: LiveState; lastId: number | null; error: string | null } {
  const store = useStore();
  return { state: store.state, lastId: store.lastId, error: store.error };
}

/** The newest events first (at most 1000), with the stream's own notes. */
export function useEventLog(): LogEntry[] {
  return useStore().log;
}
