/**
 * Opens the engines the config names, behind their ports. The embedded kinds need nothing outside
 * this process; the cluster kinds connect to the real engines.
 */
import { redactSecrets } from '../domain/index.ts';
import { BuiltinRegistry } from '../adapters/discovery/builtin-registry.ts';
import { MemoryEventBus } from '../adapters/events/memory-event-bus.ts';
import { ResilientEventBus } from '../adapters/events/resilient-event-bus.ts';
import { MemoryTaskQueue } from '../adapters/queue/memory-task-queue.ts';
import { openStore } from '../adapters/storage/open-store.ts';
import type { Config } from '../config/schema.ts';
import { MemoryExecChannels } from '../adapters/events/memory-exec-channels.ts';
import type { EventBus } from '../ports/event-bus.ts';
import type { ExecChannels } from '../ports/exec-channels.ts';
import type { ServiceRegistry } from '../ports/service-registry.ts';
import type { Store } from '../ports/store.ts';
import type { TaskQueue } from '../ports/task-queue.ts';
import type { Logger } from './logger.ts';

export interface Engines {
  store: Store;
  queue: TaskQueue;
  events: EventBus;
  registry: ServiceRegistry;
  channels: ExecChannels;
  /** Where the API's rate limits are counted across replicas (cluster mode); absent: in process. */
  rateLimitRedis?: unknown;
  close(): Promise<void>;
}

export async function openEngines(config: Config, log?: Logger): Promise<Engines> {
  const onError = (engine: string) => (err: unknown) =>
    log?.warn({ engine, err: redactSecrets(err instanceof Error ? err.message : String(err)) }, 'engine error');
  const dataDir = config.store.pglite.data_dir;
  // `memory://` keeps the embedded database in memory: nothing survives the process (tests, demos).
  const store =
    config.store.kind === 'pglite'
      ? await openStore({ kind: 'pglite', ...(dataDir === 'memory://' ? {} : { dataDir }) })
      : await openStore({ kind: 'postgres', url: config.store.postgres.url });
  const closers: (() => Promise<void>)[] = [() => store.close()];
  try {
    const queue = await openQueue(config, onError('queue'));
    closers.unshift(() => queue.close());
    const events = new ResilientEventBus(await openEventBus(config), {
      onError: (message) => log?.warn(redactSecrets(message)),
    });
    closers.unshift(() => events.close());
    const registry = await openRegistry(config, store);
    closers.unshift(() => registry.close());
    const channels = await openChannels(config, onError('channels'));
    closers.unshift(() => channels.close());
    const rateLimit = await openRateLimit(config, onError('rate-limit'));
    if (rateLimit) closers.unshift(() => rateLimit.close());
    return {
      store,
      queue,
      events,
      registry,
      channels,
      ...(rateLimit ? { rateLimitRedis: rateLimit.client } : {}),
      close: async () => {
        // Closing is best effort: one engine that fails to close must not keep the others open.
        for (const close of closers) await close().catch(() => undefined);
      },
    };
  } catch (err) {
    // The error that stopped the opening is the one to report, not a failure to close what opened.
    for (const close of closers) await close().catch(() => undefined);
    throw err;
  }
}

// Cluster adapters are imported on demand: the embedded mode never loads BullMQ, ioredis or gRPC.

async function openQueue(config: Config, onError: (err: unknown) => void): Promise<TaskQueue> {
  if (config.queue.kind === 'memory') return new MemoryTaskQueue();
  const { BullmqTaskQueue } = await import('../adapters/queue/bullmq-task-queue.ts');
  return new BullmqTaskQueue({ url: config.queue.redis.url, onError });
}

async function openEventBus(config: Config): Promise<EventBus> {
  if (config.events.kind === 'memory') return new MemoryEventBus(config.events.retention);
  const { RedisEventBus } = await import('../adapters/events/redis-event-bus.ts');
  return new RedisEventBus({ url: config.events.redis.url, retention: config.events.retention });
}

async function openRateLimit(config: Config, onError: (err: unknown) => void) {
  if (config.events.kind === 'memory') return null;
  const { openRateLimitRedis } = await import('../adapters/redis/rate-limit-client.ts');
  return openRateLimitRedis(config.events.redis.url, onError);
}

async function openChannels(config: Config, onError: (err: unknown) => void): Promise<ExecChannels> {
  if (config.events.kind === 'memory') return new MemoryExecChannels();
  const { RedisExecChannels } = await import('../adapters/events/redis-exec-channels.ts');
  return new RedisExecChannels({ url: config.events.redis.url, onError });
}

async function openRegistry(config: Config, store: Store): Promise<ServiceRegistry> {
  const d = config.discovery;
  const ttlSeconds = Math.ceil(config.worker.ttl / 1000);
  switch (d.provider) {
    case 'builtin':
      return new BuiltinRegistry(store);
    case 'etcd': {
      const { EtcdRegistry } = await import('../adapters/discovery/etcd-registry.ts');
      return new EtcdRegistry({ endpoints: d.etcd.endpoints, prefix: d.etcd.prefix, ttlSeconds });
    }
    case 'consul': {
      const { ConsulRegistry } = await import('../adapters/discovery/consul-registry.ts');
      return new ConsulRegistry({
        address: d.consul.address,
        scheme: d.consul.scheme,
        datacenter: d.consul.datacenter,
        token: d.consul.token,
        serviceName: d.consul.service_name,
        checkIntervalMs: d.consul.health_check_interval,
        deregisterCriticalServiceAfterMs: d.consul.deregister_critical_service_after,
        ttlSeconds,
      });
    }
  }
}
