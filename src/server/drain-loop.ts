/**
 * Drives drains forward: once a second, every draining worker gets one `progressDrain` step (delete
 * what is left at the deadline, announce `worker.drained` once nothing is left). Each step is a
 * compare-and-set, so every replica can run this loop.
 */
import { errorMessage } from '../domain/index.ts';
import { progressDrain, type DrainDeps } from '../operations/drain.ts';
import type { Logger } from '../runtime/logger.ts';

export class DrainLoop {
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(
    private readonly deps: DrainDeps,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.pass(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async pass(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (const worker of await this.deps.store.listWorkers({ status: 'draining' })) {
        if (worker.drain && !worker.drain.drained_at) await progressDrain(this.deps, worker);
      }
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'drain pass failed');
    } finally {
      this.running = false;
    }
  }
}
