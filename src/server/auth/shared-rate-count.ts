/**
 * The rate limit's counts in Redis, shared by every replica, without a Redis round trip on every
 * request. @fastify/rate-limit's own Redis store asks Redis before each answer; that round trip
 * was most of the cost of a cheap read in cluster mode. This store asks only where the answer can
 * depend on it, per caller and window:
 * - the first request of a window, and any request while the shared count is in the upper half of
 *   the limit, is counted in Redis before it is answered (exact: one INCRBY);
 * - far below the limit (the count last read plus what this replica has not sent yet stays under
 *   half the limit, and the unsent part under an eighth of what is left), requests are counted
 *   here and sent in one INCRBY per caller every FLUSH_MS;
 * - over the limit, requests are refused here until the window ends: a count only grows within a
 *   window, so what Redis said once stays true (the refusals are still counted).
 * So a caller can never get more than the limit from one replica, and across replicas at most
 * what they let through unsent in one flush interval while still under half the limit; near and
 * over the limit every replica counts together exactly. Redis away: the error reaches the plugin,
 * which (skipOnError) serves rather than refuses, as before. The app uses a fixed window (neither
 * `continueExceeding` nor `exponentialBackoff`), which is all this store implements.
 */
import type { FastifyRateLimitOptions, FastifyRateLimitStore } from '@fastify/rate-limit';

export const FLUSH_MS = 100;

/** INCRBY with the window set on the first count; answers the count and the window's time left. */
const COUNT_LUA = `
local current = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if current == tonumber(ARGV[1]) or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {current, ttl}
`;
const COMMAND = 'aetheriumRateCount';

/** The part of an ioredis client used here: a script defined once, sent by its hash. */
export interface ScriptingRedis {
  defineCommand(name: string, definition: { numberOfKeys: number; lua: string }): void;
}
type CountCommand = (key: string, by: number, windowMs: number) => Promise<[number, number]>;

interface Count {
  /** The shared count as Redis last answered it, this replica's sent requests included. */
  shared: number;
  /** Counted here and not yet sent. */
  unsent: number;
  /** Sent and not yet answered. */
  sending: number;
  /** When the window ends, by this process's clock. */
  endsAt: number;
  windowMs: number;
}

/** Callers remembered at most (the same bound as the plugin's own in-memory store). */
const MAX_KEYS = 5000;

class Counts {
  private readonly counts = new Map<string, Count>();
  /** First reads of a window under way: requests for the same caller wait for them, then decide. */
  private readonly opening = new Map<string, Promise<unknown>>();
  private timer: NodeJS.Timeout | null = null;
  private readonly command: CountCommand;

  constructor(redis: ScriptingRedis) {
    // defineCommand adds the script as a method of the client, which its type does not know of.
    const defined = () => Reflect.get(redis, COMMAND) as CountCommand | undefined;
    if (!defined()) redis.defineCommand(COMMAND, { numberOfKeys: 1, lua: COUNT_LUA });
    this.command = (defined() as CountCommand).bind(redis);
  }

  incr(key: string, windowMs: number, max: number, answer: (err: Error | null, current?: Count) => void): void {
    const now = Date.now();
    let count = this.counts.get(key);
    if (count && now >= count.endsAt) {
      this.counts.delete(key); // a new window: what was unsent belonged to the last one
      count = undefined;
    }
    if (count) {
      const next = count.shared + count.unsent + count.sending + 1;
      const left = max - count.shared;
      if (count.shared >= max || (next <= max / 2 && count.unsent + 1 <= left / 8)) {
        count.unsent++;
        this.scheduleFlush();
        return answer(null, count);
      }
    }
    const opening = this.opening.get(key);
    if (!count && opening) {
      // A burst at the start of a window: one request opens it, the others then count as usual.
      opening.then(
        () => this.incr(key, windowMs, max, answer),
        () => this.incr(key, windowMs, max, answer),
      );
      return;
    }
    // Near the limit, or a window this replica has not seen: Redis decides.
    const unsent = count?.unsent ?? 0;
    if (count) count.unsent = 0;
    const sent = this.send(key, unsent + 1, windowMs, now);
    if (!count) {
      this.opening.set(key, sent);
      const done = () => {
        if (this.opening.get(key) === sent) this.opening.delete(key);
      };
      sent.then(done, done);
    }
    sent.then(
      (counted) => answer(null, counted),
      (err: unknown) => {
        if (count) count.unsent += unsent; // the requests counted here are sent with the next flush
        answer(err instanceof Error ? err : new Error(String(err)));
      },
    );
  }

  /** Sends `by` requests and keeps what Redis answers; the count answered is this batch's last. */
  private async send(key: string, by: number, windowMs: number, now: number): Promise<Count> {
    const held = this.counts.get(key);
    if (held) held.sending += by;
    const [current, ttl] = await this.command(key, by, windowMs).finally(() => {
      if (held) held.sending -= by;
    });
    let count = this.counts.get(key);
    if (!count) {
      if (this.counts.size >= MAX_KEYS) this.counts.clear();
      count = { shared: 0, unsent: 0, sending: 0, endsAt: 0, windowMs };
      this.counts.set(key, count);
    }
    // One connection answers in order, so this is the newest count; smaller than the last one only
    // when Redis began a new window.
    count.shared = current;
    count.endsAt = now + ttl;
    count.windowMs = windowMs;
    // The answer for the request that caused the send: its own place in the count.
    return { ...count, shared: current, unsent: 0, sending: 0 };
  }

  private scheduleFlush(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush();
    }, FLUSH_MS);
    this.timer.unref();
  }

  private flush(): void {
    const now = Date.now();
    for (const [key, count] of this.counts) {
      if (count.unsent === 0) continue;
      if (now >= count.endsAt) {
        this.counts.delete(key);
        continue;
      }
      const by = count.unsent;
      count.unsent = 0;
      this.send(key, by, count.windowMs, now).catch(() => {
        // Redis away: keep them for the next flush, which this schedules.
        count.unsent += by;
        this.scheduleFlush();
      });
    }
  }
}

/** The store class the plugin instantiates (`store:`), counting in this Redis under `prefix`. */
export function sharedRateCountStore(redis: ScriptingRedis, prefix: string) {
  const counts = new Counts(redis);
  class SharedRateCountStore implements FastifyRateLimitStore {
    constructor(
      _options?: FastifyRateLimitOptions,
      private readonly keyPrefix = prefix,
    ) {}

    incr(
      key: string,
      callback: (error: Error | null, result?: { current: number; ttl: number }) => void,
      timeWindow: number,
      max: number,
    ): void {
      counts.incr(`${this.keyPrefix}${key}`, timeWindow, max, (err, count) => {
        if (err || !count) return callback(err ?? new Error('no count'));
        const current = count.shared + count.unsent + count.sending;
        callback(null, { current, ttl: Math.max(0, count.endsAt - Date.now()) });
      });
    }

    // The plugin passes the route's merged limit options, the route under `routeInfo`.
    child(routeOptions: object): FastifyRateLimitStore {
      const route = (routeOptions as { routeInfo?: { method?: string; url?: string } }).routeInfo ?? {};
      return new SharedRateCountStore(undefined, `${this.keyPrefix}${route.method ?? ''}${route.url ?? ''}-`);
    }
  }
  return SharedRateCountStore;
}
