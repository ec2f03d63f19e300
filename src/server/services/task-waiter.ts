/**
 * Waits for a task to reach a final state. It listens on the event bus (so it hears a worker on
 * any host at once) and also re-reads the row now and then, so a missed event costs a second, not
 * a hang.
 */
import { isFinal, type Task } from '../../domain/index.ts';
import type { EventBus } from '../../ports/event-bus.ts';
import type { Store } from '../../ports/store.ts';

const FINAL_EVENTS = new Set(['task.completed', 'task.failed', 'task.cancelled']);

export async function waitForTask(
  store: Store,
  events: EventBus,
  taskId: string,
  timeoutMs: number,
  pollMs = 1000,
): Promise<Task | null> {
  let wake: () => void = () => undefined;
  const unsubscribe = events.subscribe((event) => {
    if (FINAL_EVENTS.has(event.type) && 'task_id' in event.data && event.data.task_id === taskId) wake();
  });
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const task = await store.getTask(taskId);
      if (!task || isFinal(task.status)) return task;
      const left = deadline - Date.now();
      if (left <= 0) return task;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(pollMs, left));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    unsubscribe();
  }
}
