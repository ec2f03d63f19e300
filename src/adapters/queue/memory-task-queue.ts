/**
 * In-memory TaskQueue for the embedded mode. Each worker has a FIFO of task ids; a message id is
 * the task id, so enqueueing twice is harmless. Messages live only in this process: after a
 * restart the scheduler sends every `scheduled` task again from the store, which is the truth.
 */
import type { ConsumeOptions, QueueConsumer, QueuedTask, TaskProcessor, TaskQueue } from '../../ports/task-queue.ts';

interface WorkerQueue {
  waiting: QueuedTask[];
  active: Set<string>;
  wake: (() => void) | null;
}

export class MemoryTaskQueue implements TaskQueue {
  readonly kind = 'memory';
  private readonly queues = new Map<string, WorkerQueue>();
  private closed = false;

  private queue(workerId: string): WorkerQueue {
    let queue = this.queues.get(workerId);
    if (!queue) {
      queue = { waiting: [], active: new Set(), wake: null };
      this.queues.set(workerId, queue);
    }
    return queue;
  }

  async enqueue(workerId: string, task: QueuedTask): Promise<void> {
    if (this.closed) throw new Error('task queue is closed');
    const queue = this.queue(workerId);
    if (queue.active.has(task.id) || queue.waiting.some((t) => t.id === task.id)) return;
    queue.waiting.push({ id: task.id, type: task.type });
    queue.wake?.();
  }

  async remove(workerId: string, taskId: string): Promise<boolean> {
    const queue = this.queue(workerId);
    const index = queue.waiting.findIndex((t) => t.id === taskId);
    if (index < 0) return false;
    queue.waiting.splice(index, 1);
    return true;
  }

  async waiting(workerId: string): Promise<QueuedTask[]> {
    return [...this.queue(workerId).waiting];
  }

  consume(workerId: string, processor: TaskProcessor, options: ConsumeOptions): QueueConsumer {
    const queue = this.queue(workerId);
    const abort = new AbortController();
    const inFlight = new Set<Promise<void>>();
    let paused = false;
    let stopped = false;

    const pump = (): void => {
      while (!paused && !stopped && inFlight.size < options.concurrency && queue.waiting.length > 0) {
        const task = queue.waiting.shift()!;
        queue.active.add(task.id);
        const run = processor(task, abort.signal)
          .catch(() => undefined) // the processor records its own failures in the store
          .finally(() => {
            queue.active.delete(task.id);
            inFlight.delete(run);
            pump();
          });
        inFlight.add(run);
      }
    };
    queue.wake = pump;
    queueMicrotask(pump);

    return {
      pause: async () => {
        paused = true;
      },
      resume: () => {
        paused = false;
        pump();
      },
      close: async () => {
        stopped = true;
        if (queue.wake === pump) queue.wake = null;
        await Promise.allSettled([...inFlight]);
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const queue of this.queues.values()) queue.wake = null;
  }
}
