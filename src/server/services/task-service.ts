/** Tasks as the API offers them: list, look up, cancel, and wait for one to end. */
import { notFound, type Task, type TaskFilter } from '../../domain/index.ts';
import type { EventBus } from '../../ports/event-bus.ts';
import type { TaskQueue } from '../../ports/task-queue.ts';
import type { Ledger } from '../ledger/ledger.ts';
import { type CancelOutcome, cancelTask } from '../operations/cancel.ts';
import { waitForTask } from './task-waiter.ts';

export class TaskService {
  constructor(
    private readonly ledger: Ledger,
    private readonly queue: TaskQueue,
    private readonly events: EventBus,
  ) {}

  list(filter: TaskFilter): Promise<Task[]> {
    return this.ledger.store.listTasks(filter);
  }

  async get(id: string): Promise<Task> {
    const task = await this.ledger.store.getTask(id);
    if (!task) throw notFound('task', id);
    return task;
  }

  cancel(id: string, reason?: string): Promise<CancelOutcome> {
    return cancelTask({ ledger: this.ledger, queue: this.queue }, id, reason);
  }

  /** The task once it is final, or as it is when `timeoutMs` runs out (null if it vanished). */
  wait(id: string, timeoutMs: number, pollMs?: number): Promise<Task | null> {
    return waitForTask(this.ledger.store, this.events, id, timeoutMs, pollMs);
  }
}
