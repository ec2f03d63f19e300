/**
 * Turns the registry's watch (Consul blocking queries, etcd watch, or the built-in table) into
 * `worker.joined` and `worker.left` events. Every replica watches; a compare-and-set in the store
 * lets exactly one of them announce each change.
 */
import { errorMessage } from '../domain/index.ts';
import { Service } from '../lifecycle/service.ts';
import type { Logger } from '../ports/logger.ts';
import type { RegisteredWorker, ServiceRegistry } from '../ports/service-registry.ts';
import type { WorkerLedger } from './ledger/worker-ledger.ts';

export class RegistryWatcher extends Service {
  private abort = new AbortController();
  private loop: Promise<void> | null = null;

  constructor(
    private readonly registry: ServiceRegistry,
    private readonly workers: WorkerLedger,
    private readonly onJoin: () => void,
    private readonly log: Logger,
  ) {
    super('registry watcher');
  }

  protected onStart(): void {
    this.abort = new AbortController();
    this.loop = this.run(this.abort.signal);
  }

  protected async onStop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  private async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        // Workers already there when the watch starts (this replica just started) count as joins;
        // the compare-and-set keeps those announced before from being announced again.
        for (const worker of await this.registry.listWorkers()) {
          if (worker.healthy && worker.status !== 'offline') await this.joined(worker);
        }
        for await (const change of this.registry.watch(signal)) {
          if (change.type === 'joined' && change.worker) await this.joined(change.worker);
          if (change.type === 'left')
            await this.workers.left(change.worker_id, `left the ${this.registry.kind} registry`, null);
        }
      } catch (err) {
        if (signal.aborted) return;
        this.log.warn({ err: errorMessage(err) }, 'registry watch failed; watching again');
        await new Promise((resolve) => setTimeout(resolve, 1000).unref());
      }
    }
  }

  private async joined(worker: RegisteredWorker): Promise<void> {
    if (await this.workers.joined(worker, this.registry.kind)) this.onJoin();
  }
}
