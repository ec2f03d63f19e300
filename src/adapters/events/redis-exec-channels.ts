/**
 * ExecChannels on Redis pub/sub: one publishing and one subscribing connection per process,
 * channels multiplexed over them. Messages are JSON.
 */
import type { Redis } from 'ioredis';
import { createRedis, reconnectDelayMs, type RedisTls } from '../redis/redis-connection.ts';
import type { ChannelMessage, ExecChannels } from '../../ports/exec-channels.ts';

export class RedisExecChannels implements ExecChannels {
  readonly kind = 'redis';
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly listeners = new Map<string, Set<(message: ChannelMessage) => void>>();

  constructor(options: { url: string; tls?: RedisTls; prefix?: string; onError?: (err: unknown) => void }) {
    const prefix = options.prefix ?? 'aetherium:';
    const common = { lazyConnect: false, maxRetriesPerRequest: 2, retryStrategy: reconnectDelayMs };
    this.pub = createRedis(options, { ...common, keyPrefix: prefix });
    this.sub = createRedis(options, common);
    this.prefix = prefix;
    for (const client of [this.pub, this.sub]) client.on('error', (err) => options.onError?.(err));
    this.sub.on('message', (channel: string, raw: string) => {
      const set = this.listeners.get(channel.slice(this.prefix.length));
      if (!set) return;
      let message: ChannelMessage;
      try {
        message = JSON.parse(raw) as ChannelMessage;
      } catch {
        return;
      }
      for (const listener of set) listener(message);
    });
  }

  private readonly prefix: string;

  async publish(channel: string, message: ChannelMessage): Promise<void> {
    // keyPrefix does not apply to PUBLISH's channel argument: prefix it here.
    await this.pub.publish(this.prefix + channel, JSON.stringify(message));
  }

  async subscribe(channel: string, listener: (message: ChannelMessage) => void): Promise<() => Promise<void>> {
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
      await this.sub.subscribe(this.prefix + channel);
    }
    set.add(listener);
    return async () => {
      set!.delete(listener);
      if (set!.size === 0 && this.listeners.get(channel) === set) {
        this.listeners.delete(channel);
        await this.sub.unsubscribe(this.prefix + channel).catch(() => undefined);
      }
    };
  }

  async close(): Promise<void> {
    this.listeners.clear();
    this.pub.disconnect();
    this.sub.disconnect();
  }
}
