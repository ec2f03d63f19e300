/**
 * Turns the registry's watch (Consul blocking queries, etcd watch, or the built-in table) into
 * `worker.joined` and `worker.left` events. Every replica watches; a compare-and-set in the store
 * lets exactly one of them announce each change.
 */
import { errorMessage } from '../domain/index.ts';
import type { EventBus } from '../ports/event-bus.ts';
import type { ServiceRegistry } from '../ports/service-registry.ts';
import type { Store } from '../ports/store.ts';
import type { Logger } from '../runtime/logger.ts';

export class RegistryWatcher {
  private readonly abort = new AbortController();
  private loop: Promise<void> | null = null;

  constructor(
    private readonly registry: ServiceRegistry,
    private readonly store: Store,
    private readonly events: EventBus,
    private readonly onJoin: () => void,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.abort.signal.aborted) {
      try {
        // Workers already there when the watch starts (this replica just started) count as joins;
        // the compare-and-set keeps those announced before from being announced again.
        for (const worker of await this.registry.listWorkers()) {
          if (worker.healthy && worker.status !== 'offline') await this.announce('joined', worker.id, worker);
        }
        for await (const change of this.registry.watch(this.abort.signal)) {
          if (change.type !== 'updated') await this.announce(change.type, change.worker_id, change.worker);
        }
      } catch (err) {
        if (this.abort.signal.aborted) return;
        this.log.warn({ err: errorMessage(err) }, 'registry watch failed; watching again');
        await new Promise((resolve) => setTimeout(resolve, 1000).unref());
      }
    }
  }

  private async announce(change: 'joined' | 'left', workerId: string, worker: { zone: string; hostname: string; capabilities: string[] } | null): Promise<void> {
    if (!(await this.store.announceWorker(workerId, change))) return;
    await this.events.publish({
      type: change === 'joined' ? 'worker.joined' : 'worker.left',
      data: { worker_id: workerId, registry: this.registry.kind, ...(worker ? { zone: worker.zone, hostname: worker.hostname, capabilities: worker.capabilities } : {}) },
    });
    if (change === 'joined') this.onJoin();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop?.catch(() => undefined);
  }
}
