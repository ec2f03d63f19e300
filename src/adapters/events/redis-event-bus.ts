/**
 * EventBus on a Redis stream, shared by every control-plane replica.
 *
 * Keys (from `key`, default `aetherium:events`): the stream `<key>`, the id counter `<key>:seq`,
 * the data epoch `<key>:epoch` and the loss mark `<key>:lost`. For Redis Cluster give the key a hash
 * tag (e.g. `{aetherium}:events`) so the four land in one slot.
 *
 * Publishing: one Lua script INCRs the counter and XADDs the event under the explicit stream id
 * `<n>-0` with `MAXLEN ~ retention`, atomically, so ids are integers increasing across the whole
 * cluster and the stream is in id order. The entry holds the envelope as JSON; `publish` returns the
 * full event.
 *
 * Delivery: each instance runs one blocking XREAD loop on a connection of its own and hands every
 * entry to its local subscribers, in id order, once — its own events included (they come back
 * through the stream like everyone else's, so they are never delivered twice). `subscribe` is "from
 * now on": the loop starts at the stream's end, and `publish` waits for that start, so a subscriber
 * always sees the events published through its own instance. A listener that throws is skipped.
 *
 * Replay: XRANGE from `afterId + 1`. When events after `afterId` are no longer there (trimmed by
 * the retention window, or lost with Redis' data), it answers `{ gap: true, oldest }` with the
 * oldest id still retained (null when none), and the client must resynchronise from the store.
 *
 * Latest id: the greatest of the counter, the stream's last id and this instance's floor (below),
 * read by one script. The counter is raised in the same script that adds the entry, so every id at
 * or below the answer is in the stream already (or was trimmed, or lost with Redis' data), and every
 * later publish gets a greater one.
 *
 * Redis restarts. Every connection reconnects forever (backoff capped at 2 s); the loop then reads on
 * after the last id it delivered (an XREAD that spanned a reconnection is thrown away and read
 * again, so nothing is delivered twice). What happens to the data depends on Redis' persistence:
 * - With persistence (the tests use `--appendonly yes`; RDB with a final save on shutdown works too)
 *   nothing is lost: ids continue where they were.
 * - Without it, Redis comes back empty and its counter would restart at 1 ("going backwards").
 *   It does not: every publish passes the highest id its instance has published or delivered,
 *   and the script never issues an id at or below it; on reconnection, each loop raises the
 *   counter the same way. The epoch key (a random token, gone with the data) tells the loop that
 *   the data was lost: it delivers everything the new stream holds, and raises the loss mark to
 *   the highest id it knew, so a replay from below that id answers a gap (the client resyncs
 *   from the store) instead of silently skipping the lost events. Events that were in Redis but
 *   not yet read by a replica are lost for that replica. In the short window before every replica
 *   has reconnected, a replica that was behind may publish an id lower than one another replica
 *   already delivered; that replica still delivers it (out of order) rather than drop it.
 * - A crash that loses the last writes (e.g. `appendfsync everysec`) leaves the counter and the
 *   stream behind ids already delivered, under the same epoch: the loop notices (the stream's
 *   last id is below its own), and a publish notices (the counter is below its floor); both raise
 *   the counter past what they saw and raise the loss mark the same way.
 * - A counter key deleted on its own (the stream kept) is caught by XADD refusing a smaller id:
 *   the script then continues after the stream's last id.
 * While the connection is down, publish and replay wait up to 2 s for it, then fail; the loop
 * waits as long as it takes.
 * A publish in flight when the connection drops is sent again on reconnection (ioredis), so it
 * may, rarely, be stored twice under two ids: events are notifications, and that is harmless.
 *
 * Errors from ioredis go to `options.onError` (never thrown at the process; nothing is logged).
 */
import { randomUUID } from 'node:crypto';
import type { Redis, RedisOptions } from 'ioredis';
import { closeClient, createRedis, reconnectDelayMs, type RedisTls, whenReady } from '../redis/redis-connection.ts';
import type { ClusterEvent, NewEvent } from '../../domain/index.ts';
import type { EventBus, EventListener, Replay } from '../../ports/event-bus.ts';

export interface RedisEventBusOptions {
  /** `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS). */
  url: string;
  /** With a `rediss://` url: the CA to trust and a client certificate. */
  tls?: RedisTls;
  /** Key of the stream; the counter and markers are `<key>:seq`, `<key>:epoch`, `<key>:lost`. Default `aetherium:events`. */
  key?: string;
  /** Events the stream keeps, approximately (`MAXLEN ~`, never fewer). Default 10 000. */
  retention?: number;
  /** Every error ioredis reports, and events that cannot be read. */
  onError?: (err: unknown) => void;
}

/** `last-generated-id` of a stream as a number (0 when there is no stream). Lua helper. */
const LAST_ID_LUA = `
local function lastId(stream)
  if redis.call('EXISTS', stream) == 0 then return 0 end
  local info = redis.call('XINFO', 'STREAM', stream)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then return tonumber(string.match(info[i + 1], '^(%d+)')) end
  end
  return 0
end
`;

/** Raises the loss mark: replays from below it answer a gap. Lua helper. */
const MARK_LOST_LUA = `
local function markLost(key, id)
  if id > tonumber(redis.call('GET', key) or '0') then redis.call('SET', key, id) end
end
`;

/**
 * KEYS: stream, seq, epoch, lost. ARGV: floor (highest id this instance knows), retention, payload,
 * new epoch. Returns the id.
 */
const PUBLISH_LUA = `${LAST_ID_LUA}${MARK_LOST_LUA}
local floor = tonumber(ARGV[1])
local n = redis.call('INCR', KEYS[2])
if n <= floor then
  -- The counter is behind what this instance saw: Redis lost data, up to floor at most.
  markLost(KEYS[4], floor)
  n = floor + 1
  redis.call('SET', KEYS[2], n)
end
redis.call('SET', KEYS[3], ARGV[4], 'NX')
local ok = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], n .. '-0', 'e', ARGV[3])
if type(ok) == 'table' and ok.err then
  -- The counter is behind the stream (its key was lost): jump past the stream's last id.
  n = lastId(KEYS[1]) + 1
  redis.call('SET', KEYS[2], n)
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], n .. '-0', 'e', ARGV[3])
end
return n
`;

/**
 * KEYS: stream, seq, epoch, lost. ARGV: floor, new epoch, known epoch ('' at start).
 * Returns { epoch, last id of the stream, 1 when the data was lost since the known epoch }.
 */
const SYNC_LUA = `${LAST_ID_LUA}${MARK_LOST_LUA}
local floor = tonumber(ARGV[1])
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', KEYS[3], epoch)
end
local last = lastId(KEYS[1])
local lost = 0
if ARGV[3] ~= '' and (epoch ~= ARGV[3] or last < floor) then
  lost = 1
  local mark = floor
  if epoch ~= ARGV[3] then
    -- A new stream holds only events published since the loss, and what this instance saw may
    -- include some of them: only ids below its first entry can have been lost.
    local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
    if first then mark = math.min(mark, tonumber(string.match(first[1], '^(%d+)')) - 1) end
  end
  markLost(KEYS[4], mark)
end
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
local top = math.max(floor, last)
if seq < top then redis.call('SET', KEYS[2], top) end
return { epoch, last, lost }
`;

/** KEYS: stream, seq. ARGV: floor. Returns the newest id issued (0 when none). */
const LATEST_LUA = `${LAST_ID_LUA}
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
return math.max(seq, lastId(KEYS[1]), tonumber(ARGV[1]))
`;

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined); // nobody may be waiting
  return { promise, resolve, reject };
}

type StreamEntry = [id: string, fields: string[]];
type XReadReply = [stream: string, entries: StreamEntry[]][] | null;

function idOf(streamId: string): number {
  return Number(streamId.slice(0, streamId.indexOf('-')));
}

export class RedisEventBus implements EventBus {
  readonly kind = 'redis';
  private readonly stream: string;
  private readonly keys: { stream: string; seq: string; epoch: string; lost: string };
  private readonly retention: number;
  private readonly onError: (err: unknown) => void;
  /** Publishes, replays and the loop's sync script: fails after a few reconnection attempts. */
  private readonly client: Redis;
  /** The blocking XREAD loop only. */
  private readonly reader: Redis;
  private readonly listeners = new Set<EventListener>();
  private readonly started = deferred();
  /** Rejected by close(): every wait of the loop races it, so close() never waits for Redis. */
  private readonly closing = deferred();
  private readonly loopDone: Promise<void>;
  private closed = false;
  /** Stream id the loop reads after. */
  private cursor = '0-0';
  private lastDelivered = 0;
  private highestPublished = 0;
  private epoch = '';
  /** Bumped on every (re)connection of the reader: an XREAD that spanned one is not trusted. */
  private readerGeneration = 0;

  constructor(options: RedisEventBusOptions) {
    this.stream = options.key ?? 'aetherium:events';
    this.keys = {
      stream: this.stream,
      seq: `${this.stream}:seq`,
      epoch: `${this.stream}:epoch`,
      lost: `${this.stream}:lost`,
    };
    this.retention = Math.max(1, Math.floor(options.retention ?? 10_000));
    const onError = options.onError;
    this.onError = (err) => {
      try {
        onError?.(err);
      } catch {
        // An error callback that throws must not stop the bus.
      }
    };
    const common: RedisOptions = { retryStrategy: reconnectDelayMs, connectionName: `${this.stream}:bus` };
    this.client = createRedis(options, { ...common, maxRetriesPerRequest: 3 });
    this.client.on('error', this.onError);
    this.client.defineCommand('aetheriumPublish', { numberOfKeys: 4, lua: PUBLISH_LUA });
    this.client.defineCommand('aetheriumLatest', { numberOfKeys: 2, lua: LATEST_LUA });
    // The loop waits for Redis as long as it takes: its commands never give up.
    this.reader = createRedis(options, { ...common, maxRetriesPerRequest: null });
    this.reader.on('error', this.onError);
    this.reader.on('ready', () => this.readerGeneration++);
    this.reader.defineCommand('aetheriumSync', { numberOfKeys: 4, lua: SYNC_LUA });
    this.loopDone = this.loop();
  }

  /** Resolves once the loop knows where the stream ends (publish waits for it). */
  ready(): Promise<void> {
    return this.started.promise;
  }

  async publish(event: NewEvent): Promise<ClusterEvent> {
    if (this.closed) throw new Error('event bus is closed');
    await whenReady(this.client);
    await this.started.promise;
    const timestamp = new Date().toISOString();
    const payload = JSON.stringify({ type: event.type, timestamp, data: event.data });
    const floor = Math.max(this.highestPublished, this.lastDelivered);
    const raw = await (
      this.client as Redis & { aetheriumPublish: (...args: (string | number)[]) => Promise<number> }
    ).aetheriumPublish(
      this.keys.stream,
      this.keys.seq,
      this.keys.epoch,
      this.keys.lost,
      floor,
      this.retention,
      payload,
      randomUUID(),
    );
    const id = Number(raw);
    if (id > this.highestPublished) this.highestPublished = id;
    return { ...event, id, timestamp };
  }

  subscribe(listener: EventListener): () => void {
    // A wrapper per call: the same function subscribed twice gets each event twice, like two subscribers.
    const entry: EventListener = (event) => listener(event);
    this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  }

  async replay(afterId: number, limit = 1000): Promise<Replay> {
    if (this.closed) throw new Error('event bus is closed');
    await whenReady(this.client);
    const from = Math.max(0, Math.floor(afterId)) + 1;
    const count = Math.max(1, Math.floor(limit));
    const results = await this.client
      .multi()
      .xrange(this.keys.stream, '-', '+', 'COUNT', 1)
      .xrange(this.keys.stream, `${from}-0`, '+', 'COUNT', count)
      .get(this.keys.lost)
      .exec();
    if (!results) throw new Error('replay transaction was aborted');
    for (const [err] of results) if (err) throw err;
    const first = (results[0]![1] as StreamEntry[])[0];
    const entries = results[1]![1] as StreamEntry[];
    const lost = Number(results[2]![1] ?? 0);
    const oldest = first ? idOf(first[0]) : null;
    // Ids are consecutive within a stream's life, so an oldest id above afterId + 1 means the ones
    // in between were trimmed; ids at or below `lost` went with Redis' data.
    if (afterId < lost || (oldest !== null && afterId < oldest - 1)) return { gap: true, oldest };
    const events: ClusterEvent[] = [];
    for (const entry of entries) {
      const event = this.parse(entry);
      if (event) events.push(event);
    }
    return { events };
  }

  async latestId(): Promise<number | null> {
    if (this.closed) throw new Error('event bus is closed');
    await whenReady(this.client);
    const floor = Math.max(this.highestPublished, this.lastDelivered);
    const raw = await (
      this.client as Redis & { aetheriumLatest: (...args: (string | number)[]) => Promise<number> }
    ).aetheriumLatest(this.keys.stream, this.keys.seq, floor);
    const id = Number(raw);
    return id > 0 ? id : null;
  }

  async close(): Promise<void> {
    if (this.closed) return this.loopDone;
    this.closed = true;
    this.listeners.clear();
    this.started.reject(new Error('event bus is closed'));
    this.closing.reject(new Error('event bus is closed'));
    this.reader.disconnect();
    await this.loopDone;
    await closeClient(this.client);
  }

  private parse([streamId, fields]: StreamEntry): ClusterEvent | null {
    try {
      const index = fields.indexOf('e');
      if (index < 0) throw new Error('no "e" field');
      // The stream holds what publish() wrote: an event of the catalogue. A type this version does
      // not know (a newer replica's) is still passed on.
      const body = JSON.parse(fields[index + 1] ?? '') as NewEvent & { timestamp: string };
      if (typeof body.type !== 'string' || !body.type.includes('.'))
        throw new Error(`bad event type ${String(body.type)}`);
      return { ...body, id: idOf(streamId) };
    } catch (err) {
      this.onError(new Error(`unreadable event ${streamId} in ${this.stream}: ${String(err)}`));
      return null;
    }
  }

  /** Reads where the stream stands (and repairs the counter after a data loss); sets the cursor. */
  private async sync(): Promise<void> {
    const floor = Math.max(this.highestPublished, this.lastDelivered);
    const [epoch, last, lost] = (await (
      this.reader as Redis & { aetheriumSync: (...args: (string | number)[]) => Promise<[string, number, number]> }
    ).aetheriumSync(
      this.keys.stream,
      this.keys.seq,
      this.keys.epoch,
      this.keys.lost,
      floor,
      randomUUID(),
      this.epoch,
    )) as [string, number, number];
    if (!this.epoch) {
      this.cursor = `${last}-0`; // the start: from now on
    } else if (epoch !== this.epoch) {
      this.cursor = '0-0'; // Redis lost its data: everything in the new stream is new
    } else if (lost) {
      this.cursor = `${last}-0`; // Redis lost its latest writes: read on from where it stands
    }
    // Otherwise nothing was lost: read on from the cursor.
    this.epoch = epoch;
  }

  private deliver(event: ClusterEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch {
        // One faulty listener must not keep the event from the others.
      }
    }
  }

  private interruptible<T>(promise: Promise<T>): Promise<T> {
    promise.catch(() => undefined); // may settle after close() stopped waiting for it
    return Promise.race([promise, this.closing.promise as Promise<never>]);
  }

  private async loop(): Promise<void> {
    let synced = -1; // reader generation at the last sync
    let failures = 0;
    while (!this.closed) {
      try {
        if (synced !== this.readerGeneration || failures > 0) {
          const generation = this.readerGeneration;
          await this.interruptible(this.sync());
          synced = generation;
          if (synced !== this.readerGeneration) continue; // it spanned a (re)connection: again
          this.started.resolve();
        }
        const generation = this.readerGeneration;
        const reply = (await this.interruptible(
          this.reader.xread('COUNT', 1000, 'BLOCK', 2000, 'STREAMS', this.stream, this.cursor),
        )) as XReadReply;
        failures = 0;
        // Sent again by ioredis after a reconnection: the data may have changed under it; sync first.
        if (generation !== this.readerGeneration || this.closed) continue;
        for (const [, entries] of reply ?? []) {
          for (const entry of entries) {
            this.cursor = entry[0];
            const event = this.parse(entry);
            if (!event) continue;
            if (event.id > this.lastDelivered) this.lastDelivered = event.id;
            this.deliver(event);
          }
        }
      } catch (err) {
        if (this.closed) break;
        this.onError(err);
        failures++;
        await this.interruptible(new Promise((r) => setTimeout(r, Math.min(100 * failures, 2000)))).catch(
          () => undefined,
        );
      }
    }
  }
}
