/**
 * The REST resources beside VMs: tasks, workers, the scheduler's dry run, cluster views, API keys
 * and join tokens, the audit log. Each method is one route of the contract through the typed caller.
 */
import { ROUTES } from '../contract/routes.ts';
import { isFinal } from '../domain/task.ts';
import type { Caller } from './call.ts';
import { AbortError, ProtocolError, TimeoutError } from './errors.ts';
import type {
  ApiKey,
  ApiKeyCreated,
  AuditEntry,
  AuditQuery,
  ClusterDistribution,
  ClusterStats,
  CreateJoinTokenRequest,
  CreateTokenRequest,
  DrainOptions,
  JoinToken,
  JoinTokenCreated,
  MetricList,
  PlanRequest,
  SchedulePlan,
  Task,
  TaskCancelled,
  TaskListFilter,
  TokenListQuery,
  Worker,
  WorkerControl,
  WorkerListFilter,
  WorkerLogLine,
  WorkerLogs,
  WorkerLogsQuery,
  WorkerRevoked,
  WorkerVms,
} from './types.ts';
import { pause, wire } from './util.ts';

export interface Signal {
  signal?: AbortSignal;
}

export interface WaitOptions extends Signal {
  /** How long to wait, in ms (default 2 min); then a TimeoutError (kind 'wait'). */
  timeoutMs?: number;
  /** The first pause between two looks, in ms (default 100; it grows to 1 s). */
  pollMs?: number;
}

export class Tasks {
  constructor(private readonly caller: Caller) {}

  list(filter: TaskListFilter = {}, options: Signal = {}): Promise<Task[]> {
    return this.caller.call('listTasks', { query: wire(filter) }, options).then((r) => r.tasks);
  }

  /** The task with its real state, result, error and (for a create) its placement explanation. */
  get(id: string, options: Signal = {}): Promise<Task> {
    return this.caller.call('getTask', { params: { id } }, options);
  }

  /**
   * Cancels a task: a waiting one never runs; a running one is aborted on its worker (with `wait`,
   * the answer comes once it ended). A completed or failed task is a ConflictError; a cancelled one
   * answers `outcome: 'already'`.
   */
  cancel(id: string, options: Signal & { wait?: boolean; timeoutMs?: number } = {}): Promise<TaskCancelled> {
    const timeoutS = options.timeoutMs === undefined ? undefined : Math.ceil(options.timeoutMs / 1000);
    return this.caller.call(
      'cancelTask',
      { params: { id }, query: options.wait ? { wait: 'true', ...(timeoutS ? { timeout: timeoutS } : {}) } : {} },
      { signal: options.signal, ...(options.wait ? { timeoutMs: (timeoutS ?? 30) * 1000 + 10_000 } : {}) },
    );
  }

  /**
   * Waits until the task ends (completed, failed or cancelled) and answers it as it ended, whatever
   * that is: a failed task is an answer here, not an error. TimeoutError (kind 'wait') otherwise.
   */
  async wait(id: string, options: WaitOptions = {}): Promise<Task> {
    const timeoutMs = options.timeoutMs ?? 120_000;
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 0; ; attempt++) {
      const task = await this.get(id, options);
      if (isFinal(task.status)) return task;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new TimeoutError('wait', timeoutMs, `task ${id} is still ${task.status} after ${timeoutMs} ms`, {
          details: { task_id: id },
        });
      await pause(Math.min(left, 1000, (options.pollMs ?? 100) * 1.5 ** attempt), options.signal);
      if (options.signal?.aborted) throw new AbortError(`the wait for task ${id} was aborted`);
    }
  }
}

/** The NDJSON line schema of a followed worker log, from the contract. */
const logLine = ROUTES.workerLogs.responses[200].shape.lines.element;

export interface LogFollow extends AsyncIterable<WorkerLogLine> {
  /** Stops following. */
  close(): void;
  /** Resolves when the stream ended (the worker went away, `close()`), rejects with the error that ended it. */
  readonly done: Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export class Workers {
  constructor(private readonly caller: Caller) {}

  list(filter: WorkerListFilter = {}, options: Signal = {}): Promise<Worker[]> {
    return this.caller.call('listWorkers', { query: wire(filter) }, options).then((r) => r.workers);
  }

  get(id: string, options: Signal = {}): Promise<Worker> {
    return this.caller.call('getWorker', { params: { id } }, options);
  }

  /** `{ worker_id, vms, total }`: the VMs on a worker. */
  vms(id: string, options: Signal = {}): Promise<WorkerVms> {
    return this.caller.call('listWorkerVms', { params: { id } }, options);
  }

  /**
   * Its resource usage history: the newest raw samples, newest first (`limit`: 120 by default); or,
   * with `since` (`24h` or an RFC 3339 time) and/or `step` (`5m`), a timeline oldest first to `until`.
   */
  metrics(
    id: string,
    query: { limit?: number; since?: string; until?: string; step?: string } = {},
    options: Signal = {},
  ): Promise<MetricList> {
    return this.caller.call('workerMetrics', { params: { id }, query: wire(query) }, options);
  }

  /** Its recent log lines (`since`: `10m` or an RFC 3339 time; `limit`: 500 by default). */
  logs(id: string, query: WorkerLogsQuery = {}, options: Signal = {}): Promise<WorkerLogs> {
    return this.caller.call('workerLogs', { params: { id }, query: wire(query) }, options);
  }

  /**
   * Follows its log: the recent lines, then new ones as the worker writes them, until `close()`,
   * the signal, or the worker going away. Read it with `for await`, or give `onLine`.
   */
  followLogs(
    id: string,
    query: WorkerLogsQuery = {},
    options: Signal & { onLine?: (line: WorkerLogLine) => void } = {},
  ): LogFollow {
    const controller = new AbortController();
    options.signal?.addEventListener('abort', () => controller.abort(), { once: true });
    const queue: WorkerLogLine[] = [];
    let wake: (() => void) | null = null;
    let ended = false;
    let failure: unknown = null;
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries({ ...query, follow: 'true' })) if (v !== undefined) params.set(k, String(v));
    const done = this.caller.transport
      .lines(
        { method: 'GET', path: `/workers/${encodeURIComponent(id)}/logs?${params}`, signal: controller.signal },
        (text) => {
          let line: WorkerLogLine;
          try {
            line = logLine.parse(JSON.parse(text));
          } catch {
            failure = new ProtocolError(`a log line of worker ${id} is not a JSON object`);
            return controller.abort();
          }
          if (options.onLine) options.onLine(line);
          else queue.push(line);
          wake?.();
        },
      )
      .catch((err: unknown) => {
        failure = err;
      })
      .finally(() => {
        ended = true;
        wake?.();
      })
      .then(() => {
        if (failure) throw failure;
      });
    done.catch(() => undefined); // read through `done` or the iterator
    const close = () => controller.abort();
    return {
      close,
      done,
      async [Symbol.asyncDispose]() {
        close();
        await done.catch(() => undefined);
      },
      async *[Symbol.asyncIterator]() {
        try {
          for (;;) {
            while (queue.length > 0) yield queue.shift()!;
            if (ended) break;
            await new Promise<void>((resolve) => (wake = resolve));
            wake = null;
          }
          if (failure) throw failure;
        } finally {
          close();
        }
      },
    };
  }

  /** Drains a worker (deadline 1 h by default; `force`: now; `no_deadline`). */
  drain(id: string, options: DrainOptions = {}, call: Signal = {}): Promise<WorkerControl> {
    return this.caller.call('drainWorker', { params: { id }, body: options }, call);
  }

  /** Ends a drain or ineligibility. */
  activate(id: string, options: Signal = {}): Promise<WorkerControl> {
    return this.caller.call('activateWorker', { params: { id } }, options);
  }

  /** Turns placements on the worker on or off, without draining it. */
  setEligibility(id: string, eligible: boolean, options: Signal = {}): Promise<WorkerControl> {
    return this.caller.call('setEligibility', { params: { id }, body: { eligible } }, options);
  }

  /** Refuses every certificate the worker holds now: it must join again. */
  revoke(id: string, options: Signal = {}): Promise<WorkerRevoked> {
    return this.caller.call('revokeWorker', { params: { id } }, options);
  }
}

export class Schedule {
  constructor(private readonly caller: Caller) {}

  /** Where a VM with these needs would go, or every reason nothing fits. Reserves nothing. */
  plan(request: PlanRequest = {}, options: Signal = {}): Promise<SchedulePlan> {
    return this.caller.call('planSchedule', { body: request }, options);
  }
}

export class Cluster {
  constructor(private readonly caller: Caller) {}

  stats(options: Signal = {}): Promise<ClusterStats> {
    return this.caller.call('clusterStats', {}, options);
  }

  /** `{ distribution, total_workers, total_vms }`: which VMs run where. */
  distribution(options: Signal = {}): Promise<ClusterDistribution> {
    return this.caller.call('clusterDistribution', {}, options);
  }
}

export class Tokens {
  constructor(private readonly caller: Caller) {}

  /** A new API key; its `token` is in this answer only. */
  create(request: CreateTokenRequest, options: Signal = {}): Promise<ApiKeyCreated> {
    return this.caller.call('createToken', { body: request }, options);
  }

  list(query: TokenListQuery = {}, options: Signal = {}): Promise<ApiKey[]> {
    return this.caller.call('listTokens', { query: wire(query) }, options).then((r) => r.tokens);
  }

  /** Revokes an API key by id or name: refused at once, everywhere. */
  revoke(idOrName: string, options: Signal = {}): Promise<ApiKey> {
    return this.caller.call('revokeToken', { params: { id: idOrName } }, options);
  }

  /** A join token for new workers; its `token` is in this answer only. */
  createJoin(request: CreateJoinTokenRequest = {}, options: Signal = {}): Promise<JoinTokenCreated> {
    return this.caller.call('createJoinToken', { body: request }, options);
  }

  listJoin(options: Signal = {}): Promise<JoinToken[]> {
    return this.caller.call('listJoinTokens', {}, options).then((r) => r.tokens);
  }

  revokeJoin(id: string, options: Signal = {}): Promise<JoinToken> {
    return this.caller.call('revokeJoinToken', { params: { id } }, options);
  }

  /** A new cluster's first admin key; ConflictError once any key exists. */
  bootstrap(options: Signal = {}): Promise<ApiKeyCreated> {
    return this.caller.call('bootstrap', {}, options);
  }
}

export class Audit {
  constructor(private readonly caller: Caller) {}

  /** Audit entries, newest first (`actor`, `action`, `outcome`, `since`, `before_id`, `limit`). */
  list(query: AuditQuery = {}, options: Signal = {}): Promise<AuditEntry[]> {
    return this.caller.call('audit', { query: wire(query) }, options).then((r) => r.entries);
  }
}
