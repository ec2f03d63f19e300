/**
 * TaskQueue on Redis through BullMQ: one BullMQ queue per worker, named `worker-<workerId>` under
 * the key prefix (default `aetherium`). A message says "look at task X"; the tasks table stays the
 * truth, so a lost or duplicated message is harmless (the control plane re-sends stale scheduled
 * tasks; the worker's compare-and-set drops duplicates).
 *
 * Messages
 * - The BullMQ job id is the port's `messageId(task)` (task id, `:<attempt>` for retries), with `%`
 *   and `:` escaped as `%25` / `%3A` because BullMQ refuses custom ids containing `:` (it also
 *   refuses ids that look like integers; task ids are UUIDs). While a job exists (waiting, delayed
 *   or active) a second enqueue of the same id is ignored; jobs are removed on completion and on
 *   failure, so the same id can be sent again later.
 * - `enqueueMany` sends one `addBulk` per worker's queue (one pipeline each, all at once); the same
 *   ids are ignored the same way.
 * - `delayMs` makes a BullMQ delayed job: it lives in Redis and survives a restart of this process
 *   (and of Redis when Redis persists its data).
 * - Jobs have `attempts: 1`: retries are the task runner's business, never BullMQ's. A processor
 *   that throws (it should not) has its error passed to `onError` and the job is dropped.
 * - A job whose worker died mid-job is "stalled"; BullMQ hands it out again (once, by default).
 *
 * Consumers
 * - `consume()` starts a BullMQ Worker on that worker's queue only, with the given concurrency.
 * - The processor's AbortSignal aborts when the consumer closes, or when `abort(taskId)` is called
 *   on the returned consumer (see `AbortableQueueConsumer`): that is how the worker agent cancels a
 *   running task. It works only in the process that holds the task (as BullMQ's own cancelJob).
 * - `pause()` resolves at once, without waiting for the tasks in hand (BullMQ `pause(true)`). A
 *   fetch already in flight may still hand BullMQ a job after the pause; such a job is put back at
 *   the head of the queue untouched (`moveToWait`), so the processor never sees a job after pause()
 *   resolved. `resume()` starts taking jobs again. `close()` aborts the signals of the tasks in
 *   hand, waits for them to finish, and closes the Worker's connections.
 *
 * Connections and failures
 * - One ioredis connection for all producers (enqueue/remove/waiting/ping), which fails a command
 *   after a few reconnection attempts instead of hanging while Redis is down; two connections per
 *   consumer (BullMQ duplicates a `maxRetriesPerRequest: null` template: main + blocking).
 * - Every connection reconnects forever with a backoff capped at 2 s. After a Redis restart the
 *   existing queues and consumers work again by themselves: nothing has to be re-created.
 * - While the connection is down, enqueue/remove/waiting wait up to 2 s for it (a blip passes
 *   unnoticed), then fail; `ping()` fails at once. A command already sent when the connection
 *   drops fails after 3 reconnection attempts at most. Consumers just wait for Redis to return.
 * - Errors from ioredis and BullMQ never crash the process: they go to `options.onError` (or are
 *   dropped). This module logs nothing itself.
 */
import { Queue, WaitingError, Worker, type Job, type JobType } from 'bullmq';
import type { Redis, RedisOptions } from 'ioredis';
import { closeClient, createRedis, reconnectDelayMs, type RedisTls, whenReady } from '../redis/redis-connection.ts';
export { closeClient, READY_WAIT_MS, reconnectDelayMs, whenReady } from '../redis/redis-connection.ts';
import type { TaskType } from '../../domain/index.ts';
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

export interface BullmqTaskQueueOptions {
  /** `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS). */
  url: string;
  /** With a `rediss://` url: the CA to trust and a client certificate (every connection gets them). */
  tls?: RedisTls;
  /** BullMQ key prefix (default `aetherium`). For Redis Cluster use a hash tag, e.g. `{aetherium}`. */
  prefix?: string;
  /** Every error ioredis or BullMQ reports (connection lost, a processor that threw, …). */
  onError?: (err: unknown) => void;
}

/** What `BullmqTaskQueue.consume` returns: a QueueConsumer that can also abort one running task. */
export interface AbortableQueueConsumer extends QueueConsumer {
  /**
   * Aborts the signal given to the processor for every message of `taskId` (any attempt) that this
   * consumer is running now. Returns false when it runs none. The processor decides how to stop.
   */
  abort(taskId: string, reason?: unknown): boolean;
  /** Task ids (with their attempts) this consumer is running now. */
  running(): QueuedTask[];
}

interface JobData {
  id: string;
  type: TaskType;
  attempt?: number;
}

/** BullMQ refuses `:` in queue names and custom job ids: escape it (and the escape character). */
function escapeId(value: string): string {
  return value.replaceAll('%', '%25').replaceAll(':', '%3A');
}

const SEPARATOR = escapeId(':');
const WAITING_STATES: JobType[] = ['wait', 'prioritized', 'delayed'];

export function queueName(workerId: string): string {
  return `worker-${escapeId(workerId)}`;
}

export function jobId(task: QueuedTask): string {
  return escapeId(messageId(task));
}

function jobData(task: QueuedTask): JobData {
  return { id: task.id, type: task.type, ...(task.attempt ? { attempt: task.attempt } : {}) };
}

function taskOf(data: JobData): QueuedTask {
  return { id: data.id, type: data.type, ...(data.attempt ? { attempt: data.attempt } : {}) };
}

export class BullmqTaskQueue implements TaskQueue {
  readonly kind = 'redis';
  private readonly prefix: string;
  private readonly onError: (err: unknown) => void;
  /** Shared by every Queue (producer side): fails commands after a few reconnection attempts. */
  private readonly producer: Redis;
  /** Never connected itself: BullMQ duplicates it for each Worker (main + blocking connection). */
  private readonly workerTemplate: Redis;
  private readonly queues = new Map<string, Queue<JobData>>();
  private readonly consumers = new Set<QueueConsumer>();
  private closed = false;

  constructor(options: BullmqTaskQueueOptions) {
    this.prefix = options.prefix ?? 'aetherium';
    const onError = options.onError;
    // ioredis hands the same error object to every listener (ours, and BullMQ's which re-emits it).
    const reported = new WeakSet<object>();
    this.onError = (err) => {
      if (typeof err === 'object' && err !== null) {
        if (reported.has(err)) return;
        reported.add(err);
      }
      try {
        onError?.(err);
      } catch {
        // An error callback that throws must not take the queue down with it.
      }
    };
    const common: RedisOptions = { retryStrategy: reconnectDelayMs, connectionName: `${this.prefix}:task-queue` };
    this.producer = createRedis(options, { ...common, maxRetriesPerRequest: 3 });
    this.producer.on('error', this.onError);
    // BullMQ's duplicates copy the template's options, TLS included.
    this.workerTemplate = createRedis(options, { ...common, maxRetriesPerRequest: null, lazyConnect: true });
    this.workerTemplate.on('error', this.onError);
  }

  private queue(workerId: string): Queue<JobData> {
    if (this.closed) throw new Error('task queue is closed');
    let queue = this.queues.get(workerId);
    if (!queue) {
      queue = new Queue<JobData>(queueName(workerId), {
        connection: this.producer,
        prefix: this.prefix,
        defaultJobOptions: { attempts: 1, removeOnComplete: true, removeOnFail: true },
        // Nobody reads BullMQ's per-queue event stream: keep it short.
        streams: { events: { maxLen: 100 } },
      });
      queue.on('error', this.onError);
      this.queues.set(workerId, queue);
    }
    return queue;
  }

  async enqueue(workerId: string, task: QueuedTask, options: EnqueueOptions = {}): Promise<void> {
    const queue = this.queue(workerId);
    await whenReady(this.producer);
    const delay = options.delayMs && options.delayMs > 0 ? Math.ceil(options.delayMs) : 0;
    // An existing job with this id (waiting, delayed or active) makes BullMQ ignore the add.
    await queue.add(task.type, jobData(task), { jobId: jobId(task), ...(delay ? { delay } : {}) });
  }

  async enqueueMany(messages: readonly QueuedDelivery[]): Promise<void> {
    const byWorker = new Map<string, QueuedTask[]>();
    for (const { workerId, task } of messages) {
      const tasks = byWorker.get(workerId);
      if (tasks) tasks.push(task);
      else byWorker.set(workerId, [task]);
    }
    if (byWorker.size === 0) return;
    const queues = [...byWorker].map(([workerId, tasks]) => ({ queue: this.queue(workerId), tasks }));
    await whenReady(this.producer);
    await Promise.all(
      queues.map(({ queue, tasks }) =>
        queue.addBulk(tasks.map((task) => ({ name: task.type, data: jobData(task), opts: { jobId: jobId(task) } }))),
      ),
    );
  }

  async remove(workerId: string, taskId: string): Promise<boolean> {
    const queue = this.queue(workerId);
    await whenReady(this.producer);
    const exact = escapeId(taskId);
    const ids = (await queue.getRanges(WAITING_STATES, 0, -1)).filter(
      (id) => id === exact || id.startsWith(exact + SEPARATOR),
    );
    let removed = false;
    for (const id of ids) {
      // 0 when the job is locked, i.e. a consumer took it in the meantime. (A job taken AND
      // finished between the listing and this call also answers 1: a harmless race for callers,
      // since the store, not the queue, says whether the task ran.)
      if ((await queue.remove(id)) === 1) removed = true;
    }
    return removed;
  }

  async waiting(workerId: string): Promise<QueuedTask[]> {
    const queue = this.queue(workerId);
    await whenReady(this.producer);
    const jobs = await queue.getJobs(['wait', 'prioritized'], 0, -1, true);
    const delayed = await queue.getJobs(['delayed'], 0, -1, true);
    return [...jobs, ...delayed]
      .filter((job): job is Job<JobData> => Boolean(job?.data?.id))
      .map((job) => taskOf(job.data));
  }

  async ping(): Promise<void> {
    if (this.closed) throw new Error('task queue is closed');
    // While reconnecting, fail at once; a connection still being opened for the first time may answer.
    const status = this.producer.status;
    if (status === 'reconnecting' || status === 'close' || status === 'end')
      throw new Error(`redis connection is ${status}`);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.producer.ping(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('redis did not answer PING within 2 s')), 2000);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  consume(workerId: string, processor: TaskProcessor, options: ConsumeOptions): AbortableQueueConsumer {
    if (this.closed) throw new Error('task queue is closed');
    const inHand = new Map<string, { task: QueuedTask; controller: AbortController }>();
    let paused = false;
    let closing: Promise<void> | null = null;

    // Two parameters on purpose: BullMQ then creates no AbortController of its own.
    const handle = async (job: Job<JobData>, token?: string): Promise<void> => {
      if (paused || closing) {
        // Fetched by a request that was already in flight when pause()/close() was called:
        // hand it back untouched, at the head of the queue. Should that fail (Redis gone), the job
        // stays active without a consumer and BullMQ's stalled check hands it out again later.
        await job.moveToWait(token).catch(this.onError);
        throw new WaitingError();
      }
      const task = taskOf(job.data);
      const key = job.id ?? jobId(task);
      const controller = new AbortController();
      inHand.set(key, { task, controller });
      try {
        await processor(task, controller.signal);
      } catch (err) {
        // By contract the processor records its own failures; one that throws is not retried.
        this.onError(err);
      } finally {
        inHand.delete(key);
      }
    };

    const worker = new Worker<JobData>(queueName(workerId), handle, {
      connection: this.workerTemplate,
      prefix: this.prefix,
      concurrency: options.concurrency,
      // After a connection error, try again after 1 s (BullMQ's default is 15 s).
      runRetryDelay: 1000,
    });
    worker.on('error', this.onError);

    const consumer: AbortableQueueConsumer = {
      pause: async () => {
        paused = true;
        await worker.pause(true);
      },
      resume: () => {
        if (closing) return;
        paused = false;
        void worker.resume();
      },
      close: () => {
        closing ??= (async () => {
          for (const { controller } of inHand.values()) controller.abort(new Error('the queue consumer is closing'));
          try {
            await worker.close();
          } catch (err) {
            this.onError(err);
          }
          this.consumers.delete(consumer);
        })();
        return closing;
      },
      abort: (taskId, reason) => {
        let found = false;
        for (const { task, controller } of inHand.values()) {
          if (task.id !== taskId) continue;
          controller.abort(reason ?? new Error(`task ${taskId} was aborted`));
          found = true;
        }
        return found;
      },
      running: () => [...inHand.values()].map(({ task }) => task),
    };
    this.consumers.add(consumer);
    return consumer;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.consumers].map((c) => c.close()));
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
    await closeClient(this.producer);
    this.workerTemplate.disconnect();
  }
}

/** How long a call waits for a connection that is down (first connection included) before failing. */
