/**
 * The worker table as the read routes (`GET /workers`, `GET /cluster/stats`) serve it: one
 * `SELECT … FROM workers` shared by every request that arrives while it is fresh, instead of one
 * per request. It is thrown away, and read again by the next request, when:
 * - this replica changed a worker itself (drain, activate, eligibility: `invalidate()`), so a
 *   caller that wrote and then reads sees its write;
 * - any cluster event arrives that may have changed a worker row (membership, drain, resources,
 *   placements and the VM and task events that move capacity), from this replica or another;
 * - it is MAX_AGE_MS old, which bounds what no event announces (heartbeats' `last_seen`) and
 *   covers events lost while the bus was away.
 * Requests that find it stale share one store read (single flight); a read that began before an
 * invalidation answers the requests that were waiting on it but is not kept for later ones.
 */
import type { EventType, Worker } from '../../domain/index.ts';
import type { EventBus } from '../../ports/event-bus.ts';
import type { Store } from '../../ports/store.ts';

export const MAX_AGE_MS = 500;

/** Events that never change a worker row: everything else invalidates, new event types included. */
const HARMLESS: ReadonlySet<EventType> = new Set<EventType>([
  'task.created',
  'task.started',
  'task.retrying',
  'task.cancel_requested',
]);

export interface Snapshot {
  readonly workers: readonly Worker[];
  /** Increases with every read kept: what derived answers are remembered by. */
  readonly version: number;
}

export class WorkerSnapshot {
  private held: Snapshot | null = null;
  /** When the read that gave `held` began. */
  private heldAt = 0;
  private reading: { generation: number; promise: Promise<Snapshot> } | null = null;
  private generation = 0;
  private version = 0;
  private unsubscribe: (() => void) | null = null;

  constructor(
    private readonly store: Pick<Store, 'listWorkers'>,
    private readonly events: Pick<EventBus, 'subscribe'>,
    private readonly maxAgeMs = MAX_AGE_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** The workers, ordered by id as the store lists them; a value when fresh, else a read. */
  current(): Snapshot | Promise<Snapshot> {
    const held = this.held;
    if (held && this.now() - this.heldAt < this.maxAgeMs) return held;
    const reading = this.reading;
    if (reading && reading.generation === this.generation) return reading.promise;
    return this.read();
  }

  /** The next request reads the store again (this replica just changed a worker). */
  invalidate(): void {
    this.generation++;
    this.held = null;
  }

  close(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.invalidate();
  }

  private read(): Promise<Snapshot> {
    // Subscribed on first use, before the first read: no change can fall between the two.
    this.unsubscribe ??= this.events.subscribe((event) => {
      if (!HARMLESS.has(event.type)) this.invalidate();
    });
    const generation = this.generation;
    const readAt = this.now();
    const promise = this.store.listWorkers().then(
      (workers) => {
        if (this.reading?.promise === promise) this.reading = null;
        const snapshot: Snapshot = { workers, version: ++this.version };
        if (generation === this.generation) {
          this.held = snapshot;
          this.heldAt = readAt;
        }
        return snapshot;
      },
      (err: unknown) => {
        if (this.reading?.promise === promise) this.reading = null;
        throw err;
      },
    );
    this.reading = { generation, promise };
    return promise;
  }
}
