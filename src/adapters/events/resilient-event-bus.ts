/**
 * Events must never stop the work they describe: when the bus's engine is down (Redis restarting),
 * publishing parks the event in a bounded in-memory outbox and returns at once; the outbox is
 * flushed in order as soon as the engine answers again. The returned event then has id 0, meaning
 * "not numbered yet" — the engine assigns the real id on delivery.
 */
import type { ClusterEvent, NewEvent } from '../../domain/index.ts';
import { errorMessage } from '../../domain/index.ts';
import type { EventBus, EventListener, Replay } from '../../ports/event-bus.ts';

export interface ResilientEventBusOptions {
  /** Events kept while the engine is down; the oldest are dropped past it (and counted). */
  maxBuffered?: number;
  retryMs?: number;
  onError?: (message: string) => void;
}

export class ResilientEventBus implements EventBus {
  private readonly outbox: NewEvent[] = [];
  private flushing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  dropped = 0;

  constructor(
    private readonly inner: EventBus,
    private readonly options: ResilientEventBusOptions = {},
  ) {}

  get kind(): string {
    return this.inner.kind;
  }

  get buffered(): number {
    return this.outbox.length;
  }

  async publish(event: NewEvent): Promise<ClusterEvent> {
    if (this.outbox.length === 0) {
      try {
        return await this.inner.publish(event);
      } catch (err) {
        this.options.onError?.(`event bus unavailable, buffering events: ${errorMessage(err)}`);
      }
    }
    this.park(event);
    return { ...event, id: 0, timestamp: new Date().toISOString() };
  }

  private park(event: NewEvent): void {
    this.outbox.push(event);
    const max = this.options.maxBuffered ?? 10_000;
    if (this.outbox.length > max) this.dropped += this.outbox.splice(0, this.outbox.length - max).length;
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, this.options.retryMs ?? 500);
    this.timer.unref();
  }

  /** Sends parked events in order; stops at the first failure and tries again later. */
  flush(): Promise<void> {
    this.flushing ??= (async () => {
      while (this.outbox.length > 0 && !this.closed) {
        try {
          await this.inner.publish(this.outbox[0]!);
          this.outbox.shift();
        } catch {
          this.schedule();
          return;
        }
      }
    })().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  subscribe(listener: EventListener): () => void {
    return this.inner.subscribe(listener);
  }

  replay(afterId: number, limit?: number): Promise<Replay> {
    return this.inner.replay(afterId, limit);
  }

  /** The engine's: events parked in the outbox have no id yet and will get greater ones. */
  latestId(): Promise<number | null> {
    return this.inner.latestId();
  }

  async close(): Promise<void> {
    await this.flush().catch(() => undefined);
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.inner.close();
  }
}
