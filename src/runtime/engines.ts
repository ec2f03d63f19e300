/**
 * Opens the engines the config names, behind their ports. The embedded kinds need nothing outside
 * this process; the cluster kinds connect to the real engines.
 */
import { BuiltinRegistry } from '../adapters/discovery/builtin-registry.ts';
import { MemoryEventBus } from '../adapters/events/memory-event-bus.ts';
import { MemoryTaskQueue } from '../adapters/queue/memory-task-queue.ts';
import { openStore } from '../adapters/storage/open-store.ts';
import type { Config } from '../config/schema.ts';
import type { EventBus } from '../ports/event-bus.ts';
import type { ServiceRegistry } from '../ports/service-registry.ts';
import type { Store } from '../ports/store.ts';
import type { TaskQueue } from '../ports/task-queue.ts';

export interface Engines {
  store: Store;
  queue: TaskQueue;
  events: EventBus;
  registry: ServiceRegistry;
  close(): Promise<void>;
}

export class EngineUnavailableError extends Error {}

export async function openEngines(config: Config): Promise<Engines> {
  const dataDir = config.store.pglite.data_dir;
  // `memory://` keeps the embedded database in memory: nothing survives the process (tests, demos).
  const store =
    config.store.kind === 'pglite'
      ? await openStore({ kind: 'pglite', ...(dataDir === 'memory://' ? {} : { dataDir }) })
      : await openStore({ kind: 'postgres', url: config.store.postgres.url });
  const closers: (() => Promise<void>)[] = [() => store.close()];
  try {
    const queue = openQueue(config);
    closers.unshift(() => queue.close());
    const events = openEventBus(config);
    closers.unshift(() => events.close());
    const registry = openRegistry(config, store);
    closers.unshift(() => registry.close());
    return {
      store,
      queue,
      events,
      registry,
      close: async () => {
        for (const close of closers) await close().catch(() => undefined);
      },
    };
  } catch (err) {
    for (const close of closers) await close().catch(() => undefined);
    throw err;
  }
}

function openQueue(config: Config): TaskQueue {
  if (config.queue.kind === 'memory') return new MemoryTaskQueue();
  throw new EngineUnavailableError('queue.kind "redis" is not available in this build; use "memory" (embedded mode)');
}

function openEventBus(config: Config): EventBus {
  if (config.events.kind === 'memory') return new MemoryEventBus(config.events.retention);
  throw new EngineUnavailableError('events.kind "redis" is not available in this build; use "memory" (embedded mode)');
}

function openRegistry(config: Config, store: Store): ServiceRegistry {
  if (config.discovery.provider === 'builtin') return new BuiltinRegistry(store);
  throw new EngineUnavailableError(`discovery.provider "${config.discovery.provider}" is not available in this build; use "builtin"`);
}
