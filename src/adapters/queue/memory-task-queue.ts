/**
 * In-memory TaskQueue for the embedded mode. Each worker has a FIFO of task ids; a message id is
 * the task id, so enqueueing twice is harmless. Messages live only in this process: after a
 * restart the scheduler sends every `scheduled` task again from the store, which is the truth.
 */
import {
  type ConsumeOptions,
  type EnqueueOptions,
  messageId,
  type QueueConsumer,
  type QueuedDelivery,
  type QueuedTask,
  type TaskProcessor,
  type TaskQueue,
} from '../../ports/task-queue.ts';

interface WorkerQueue {
  waiting: QueuedTask[];
  delayed: Map<string, { task: QueuedTask; timer: NodeJS.Timeout }>;
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
      queue = { waiting: [], delayed: new Map(), active: new Set(), wake: null };
      this.queues.set(workerId, queue);
    }
    return queue;
  }

  async enqueue(workerId: string, task: QueuedTask, options: EnqueueOptions = {}): Promise<void> {
    if (this.closed) throw new Error('task queue is closed');
    const queue = this.queue(workerId);
    const id = messageId(task);
    if (queue.active.has(id) || queue.delayed.has(id) || queue.waiting.some((t) => messageId(t) === id)) return;
    const message: QueuedTask = { id: task.id, type: task.type, ...(task.attempt ? { attempt: task.attempt } : {}) };
    if (options.delayMs && options.delayMs > 0) {
      const timer = setTimeout(() => {
        queue.delayed.delete(id);
        queue.waiting.push(message);
        queue.wake?.();
      }, options.delayMs);
      timer.unref();
      queue.delayed.set(id, { task: message, timer });
      return;
    }
    queue.waiting.push(message);
    queue.wake?.();
  }

  async enqueueMany(messages: readonly QueuedDelivery[]): Promise<void> {
    for (const { workerId, task } of messages) await this.enqueue(workerId, task);
  }

  async remove(workerId: string, taskId: string): Promise<boolean> {
    const queue = this.queue(workerId);
    for (const [id, delayed] of queue.delayed) {
      if (delayed.task.id !== taskId) continue;
      clearTimeout(delayed.timer);
      queue.delayed.delete(id);
      return true;
    }
    const index = queue.waiting.findIndex((t) => t.id === taskId);
    if (index < 0) return false;
    queue.waiting.splice(index, 1);
    return true;
  }

  async waiting(workerId: string): Promise<QueuedTask[]> {
    const queue = this.queue(workerId);
    return [...queue.waiting, ...[...queue.delayed.values()].map((d) => d.task)];
  }

  async ping(): Promise<void> {
    if (this.closed) throw new Error('task queue is closed');
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
        const id = messageId(task);
        queue.active.add(id);
        const run = processor(task, abort.signal)
          .catch(() => undefined) // the processor records its own failures in the store
          .finally(() => {
            queue.active.delete(id);
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
        abort.abort(new Error('the queue consumer is closing'));
        await Promise.allSettled([...inFlight]);
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const queue of this.queues.values()) {
      queue.wake = null;
      for (const { timer } of queue.delayed.values()) clearTimeout(timer);
    }
  }
}
