/**
 * In-memory EventBus for the embedded mode: one process, so one counter gives monotonic ids, and a
 * ring of the last `retention` events serves clients that resume.
 */
import type { ClusterEvent, NewEvent } from '../../domain/index.ts';
import type { EventBus, EventListener, Replay } from '../../ports/event-bus.ts';

export class MemoryEventBus implements EventBus {
  readonly kind = 'memory';
  private readonly listeners = new Set<EventListener>();
  private readonly retained: ClusterEvent[] = [];
  private lastId = 0;

  constructor(private readonly retention = 10_000) {}

  async publish(event: NewEvent): Promise<ClusterEvent> {
    const full: ClusterEvent = { ...event, id: ++this.lastId, timestamp: new Date().toISOString() };
    this.retained.push(full);
    if (this.retained.length > this.retention) this.retained.splice(0, this.retained.length - this.retention);
    for (const listener of this.listeners) {
      try {
        listener(full);
      } catch {
        // One faulty listener must not keep the event from the others.
      }
    }
    return full;
  }

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async replay(afterId: number, limit = 1000): Promise<Replay> {
    const oldest = this.retained[0]?.id ?? null;
    // A gap exists when events after `afterId` were published but have already left the ring.
    if (afterId < this.lastId && oldest !== null && afterId < oldest - 1) return { gap: true, oldest };
    return { events: this.retained.filter((e) => e.id > afterId).slice(0, limit) };
  }

  async latestId(): Promise<number | null> {
    return this.lastId === 0 ? null : this.lastId;
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }
}
