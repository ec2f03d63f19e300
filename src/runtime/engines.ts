/**
 * Opens the engines the config names, behind their ports. The embedded kinds need nothing outside
 * this process; the cluster kinds connect to the real engines.
 *
 * TLS: the PEM files the config names (`*.redis.tls`, `discovery.etcd.tls`, `discovery.consul.*_file`)
 * are read here, once, before anything connects, so that a missing file stops the start with the
 * key and the path; the adapters get the contents. Postgres takes its files in the URL
 * (`sslrootcert`, `sslcert`, `sslkey`), which pg reads itself.
 */
import { readFileSync } from 'node:fs';
import { errorMessage, redactSecrets } from '../domain/index.ts';
import { BuiltinRegistry } from '../adapters/discovery/builtin-registry.ts';
import { MemoryEventBus } from '../adapters/events/memory-event-bus.ts';
import { ResilientEventBus } from '../adapters/events/resilient-event-bus.ts';
import { MemoryTaskQueue } from '../adapters/queue/memory-task-queue.ts';
import { openStore } from '../adapters/storage/open-store.ts';
import { ConfigError } from '../config/load.ts';
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
  const tls = readEngineTls(config);
  const dataDir = config.store.pglite.data_dir;
  // `memory://` keeps the embedded database in memory: nothing survives the process (tests, demos).
  const store =
    config.store.kind === 'pglite'
      ? await openStore({ kind: 'pglite', ...(dataDir === 'memory://' ? {} : { dataDir }) })
      : await openStore({ kind: 'postgres', url: config.store.postgres.url });
  const closers: (() => Promise<void>)[] = [() => store.close()];
  try {
    const queue = await openQueue(config, tls.queue, onError('queue'));
    closers.unshift(() => queue.close());
    const events = new ResilientEventBus(await openEventBus(config, tls.events), {
      onError: (message) => log?.warn(redactSecrets(message)),
    });
    closers.unshift(() => events.close());
    const registry = await openRegistry(config, store, tls);
    closers.unshift(() => registry.close());
    const channels = await openChannels(config, tls.events, onError('channels'));
    closers.unshift(() => channels.close());
    const rateLimit = await openRateLimit(config, tls.events, onError('rate-limit'));
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

/** PEM contents for one engine's TLS client; absent: none configured. */
type TlsMaterial = { ca?: Buffer; cert?: Buffer; key?: Buffer } | undefined;

interface TlsFiles {
  ca_file: string | null;
  cert_file: string | null;
  key_file: string | null;
}

/** Reads the files under `key`; an unreadable file is a config error naming the key and the path. */
function readTls(files: TlsFiles, key: string): TlsMaterial {
  const read = (name: keyof TlsFiles) => {
    const file = files[name];
    if (file === null) return undefined;
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigError(`${key}.${name}: cannot read ${file}: ${errorMessage(err)}`);
    }
  };
  const material = { ca: read('ca_file'), cert: read('cert_file'), key: read('key_file') };
  return material.ca || material.cert || material.key ? material : undefined;
}

/** The TLS material of the engines in use (only those: a stale path for an unused engine is harmless). */
function readEngineTls(config: Config) {
  const d = config.discovery;
  return {
    queue: config.queue.kind === 'redis' ? readTls(config.queue.redis.tls, 'queue.redis.tls') : undefined,
    events: config.events.kind === 'redis' ? readTls(config.events.redis.tls, 'events.redis.tls') : undefined,
    etcd: d.provider === 'etcd' ? readTls(d.etcd.tls, 'discovery.etcd.tls') : undefined,
    consul: d.provider === 'consul' ? readTls(d.consul, 'discovery.consul') : undefined,
  };
}

// Cluster adapters are imported on demand: the embedded mode never loads BullMQ, ioredis or gRPC.

async function openQueue(config: Config, tls: TlsMaterial, onError: (err: unknown) => void): Promise<TaskQueue> {
  if (config.queue.kind === 'memory') return new MemoryTaskQueue();
  const { BullmqTaskQueue } = await import('../adapters/queue/bullmq-task-queue.ts');
  return new BullmqTaskQueue({ url: config.queue.redis.url, tls, onError });
}

async function openEventBus(config: Config, tls: TlsMaterial): Promise<EventBus> {
  if (config.events.kind === 'memory') return new MemoryEventBus(config.events.retention);
  const { RedisEventBus } = await import('../adapters/events/redis-event-bus.ts');
  return new RedisEventBus({ url: config.events.redis.url, tls, retention: config.events.retention });
}

async function openRateLimit(config: Config, tls: TlsMaterial, onError: (err: unknown) => void) {
  if (config.events.kind === 'memory') return null;
  const { openRateLimitRedis } = await import('../adapters/redis/rate-limit-client.ts');
  return openRateLimitRedis({ url: config.events.redis.url, tls }, onError);
}

async function openChannels(config: Config, tls: TlsMaterial, onError: (err: unknown) => void): Promise<ExecChannels> {
  if (config.events.kind === 'memory') return new MemoryExecChannels();
  const { RedisExecChannels } = await import('../adapters/events/redis-exec-channels.ts');
  return new RedisExecChannels({ url: config.events.redis.url, tls, onError });
}

async function openRegistry(
  config: Config,
  store: Store,
  tls: ReturnType<typeof readEngineTls>,
): Promise<ServiceRegistry> {
  const d = config.discovery;
  const ttlSeconds = Math.ceil(config.worker.ttl / 1000);
  switch (d.provider) {
    case 'builtin':
      return new BuiltinRegistry(store);
    case 'etcd': {
      const { EtcdRegistry } = await import('../adapters/discovery/etcd-registry.ts');
      return new EtcdRegistry({ endpoints: d.etcd.endpoints, prefix: d.etcd.prefix, ttlSeconds, tls: tls.etcd });
    }
    case 'consul': {
      const { ConsulRegistry } = await import('../adapters/discovery/consul-registry.ts');
      return new ConsulRegistry({
        address: d.consul.address,
        scheme: d.consul.scheme,
        datacenter: d.consul.datacenter,
        token: d.consul.token,
        tls: tls.consul,
        serviceName: d.consul.service_name,
        checkIntervalMs: d.consul.health_check_interval,
        deregisterCriticalServiceAfterMs: d.consul.deregister_critical_service_after,
        ttlSeconds,
      });
    }
  }
}
