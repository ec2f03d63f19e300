/**
 * TaskQueue: delivery of placed tasks to one worker, one queue per worker. The tasks table is the
 * truth; a queue message only says "look at task X". Enqueueing the same task twice is harmless
 * (the message id is the task id), and so is a duplicate delivery: the worker moves the task
 * scheduled → running with a compare-and-set and drops it when that fails.
 */
import type { TaskType } from '../domain/index.ts';

export interface QueuedTask {
  id: string;
  type: TaskType;
  /**
   * The task's retry_count when sent. The message id is the task id plus the attempt, so a retry
   * sent while the failed attempt's message is still being finished is not mistaken for a duplicate.
   */
  attempt?: number;
}

export function messageId(task: QueuedTask): string {
  return task.attempt ? `${task.id}:${task.attempt}` : task.id;
}

export type TaskProcessor = (task: QueuedTask, signal: AbortSignal) => Promise<void>;

export interface QueueConsumer {
  pause(): Promise<void>;
  resume(): void;
  /** Stops taking new messages and waits for the ones in hand to finish. */
  close(): Promise<void>;
}

export interface ConsumeOptions {
  concurrency: number;
}

export interface EnqueueOptions {
  /** Deliver no earlier than this many milliseconds from now (retry backoff). Survives a restart where the engine does. */
  delayMs?: number;
}

/** A message for one worker's queue (`enqueueMany`). */
export interface QueuedDelivery {
  workerId: string;
  task: QueuedTask;
}

export interface TaskQueue {
  readonly kind: string;
  /** Idempotent while the message waits: a second enqueue of the same task id is ignored. */
  enqueue(workerId: string, task: QueuedTask, options?: EnqueueOptions): Promise<void>;
  /**
   * `enqueue` (without delay) of many messages, each to its worker's queue, in as few round trips as
   * the engine allows; idempotent per message the same way. When it fails, some of the messages may
   * have been sent: sending them again is harmless.
   */
  enqueueMany(messages: readonly QueuedDelivery[]): Promise<void>;
  /** Removes a message that has not been taken yet; false when it was not waiting. */
  remove(workerId: string, taskId: string): Promise<boolean>;
  /** Messages waiting for the worker (not yet taken, delayed ones included). */
  waiting(workerId: string): Promise<QueuedTask[]>;
  /** Checks the engine answers (for /health). */
  ping(): Promise<void>;
  consume(workerId: string, processor: TaskProcessor, options: ConsumeOptions): QueueConsumer;
  close(): Promise<void>;
}
