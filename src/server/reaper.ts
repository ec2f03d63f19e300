/**
 * Marks workers whose heartbeats stopped as offline (the original had no reaper, so dead workers
 * stayed "active" forever), announces it, and hands their not-yet-started creates back to the
 * scheduler so they land elsewhere.
 */
import { errorMessage } from '../domain/index.ts';
import type { EventBus } from '../ports/event-bus.ts';
import type { Store } from '../ports/store.ts';
import type { Logger } from '../runtime/logger.ts';

export class Reaper {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: Store,
    private readonly events: EventBus,
    private readonly intervalMs: number,
    private readonly onWorkAvailable: () => void,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.sweep().catch((err) => this.log.warn({ err: errorMessage(err) }, 'reaper sweep failed')), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async sweep(now = new Date()): Promise<string[]> {
    const gone = await this.store.markStaleWorkersOffline(now);
    let moved = 0;
    for (const worker of gone) {
      this.log.warn({ worker_id: worker.id, last_seen: worker.last_seen }, 'worker missed its heartbeats: marked offline');
      if (await this.store.announceWorker(worker.id, 'left')) {
        await this.events.publish({ type: 'worker.left', data: { worker_id: worker.id, reason: 'heartbeat ttl expired', last_seen: worker.last_seen.toISOString() } });
      }
      for (const task of await this.store.listTasks({ worker_id: worker.id, status: 'scheduled', type: 'vm:create' })) {
        if (await this.store.unplaceTask(task.id, `worker ${worker.id} went offline before starting it`)) moved++;
      }
    }
    if (moved > 0) this.onWorkAvailable();
    return gone.map((w) => w.id);
  }
}
