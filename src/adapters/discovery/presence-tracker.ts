/**
 * Turns successive observations of workers into watch events, with the built-in registry's meaning:
 * a worker is "present" while it is healthy (and not offline). Becoming present is `joined`, ceasing
 * to be present (deregistered, expired, offline) is `left`, and a change to a present worker other
 * than its `last_seen` is `updated`. Heartbeats alone produce no event.
 */
import type { RegisteredWorker, WorkerEvent } from '../../ports/service-registry.ts';

interface Known {
  present: boolean;
  fingerprint: string;
  worker: RegisteredWorker;
}

export function fingerprint(worker: RegisteredWorker): string {
  const { last_seen: _lastSeen, healthy: _healthy, ...rest } = worker;
  return JSON.stringify(rest, (_key, value: unknown) => (value instanceof Date ? value.toISOString() : value));
}

export class PresenceTracker {
  private known = new Map<string, Known>();

  /** The state the watch starts from: no events for it. */
  seed(workers: Iterable<RegisteredWorker>): void {
    this.known.clear();
    for (const worker of workers)
      this.known.set(worker.id, { present: worker.healthy, fingerprint: fingerprint(worker), worker });
  }

  /** One worker changed (`null`: it is gone). */
  observe(id: string, worker: RegisteredWorker | null): WorkerEvent | null {
    const before = this.known.get(id);
    if (!worker) {
      this.known.delete(id);
      if (before?.present) return { type: 'left', worker_id: id, worker: { ...before.worker, healthy: false } };
      return null;
    }
    const now: Known = { present: worker.healthy, fingerprint: fingerprint(worker), worker };
    this.known.set(id, now);
    const wasPresent = before?.present ?? false;
    if (!wasPresent && now.present) return { type: 'joined', worker_id: id, worker };
    if (wasPresent && !now.present) return { type: 'left', worker_id: id, worker };
    if (wasPresent && now.present && before?.fingerprint !== now.fingerprint)
      return { type: 'updated', worker_id: id, worker };
    return null;
  }

  /** A full listing: workers missing from it are gone. */
  observeAll(workers: RegisteredWorker[]): WorkerEvent[] {
    const events: WorkerEvent[] = [];
    const seen = new Set<string>();
    for (const worker of workers) {
      seen.add(worker.id);
      const event = this.observe(worker.id, worker);
      if (event) events.push(event);
    }
    for (const id of [...this.known.keys()]) {
      if (seen.has(id)) continue;
      const event = this.observe(id, null);
      if (event) events.push(event);
    }
    return events;
  }
}
