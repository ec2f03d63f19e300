/**
 * Drives drains forward: once a second, every draining worker gets one `progressDrain` step (delete
 * what is left at the deadline, announce `worker.drained` once nothing is left). Each step is a
 * compare-and-set, so every replica can run this loop.
 */
import { errorMessage } from '../domain/index.ts';
import { Periodic } from '../lifecycle/periodic.ts';
import type { Logger } from '../ports/logger.ts';
import { type DrainDeps, progressDrain } from './operations/drain.ts';

export class DrainLoop extends Periodic {
  constructor(
    private readonly deps: DrainDeps,
    intervalMs: number,
    log: Logger,
  ) {
    super('drain loop', () => this.pass(), {
      intervalMs,
      runOnStart: false,
      onError: (err) => log.warn({ err: errorMessage(err) }, 'drain pass failed'),
    });
  }

  async pass(): Promise<void> {
    for (const worker of await this.deps.ledger.store.listWorkers({ status: 'draining' })) {
      if (worker.drain && !worker.drain.drained_at) await progressDrain(this.deps, worker);
    }
  }
}
