/**
 * VMs: `client.vms.create / get / list` answer `Vm` handles, which hold the VM's latest data and act
 * on it (`exec`, `run`, `stop`, `start`, `delete`, `refresh`, `executions`), and delete it when
 * disposed of (`await using vm = await client.vms.create(…)`).
 *
 * Waiting for a create (`waitUntil`) polls `GET /tasks/{id}` (and `GET /vms/{id}` while the VM
 * waits for a host, for its `pending_reason`) with a short backoff (100 ms growing to 1 s) rather
 * than following the event stream: it needs no WebSocket (and none of `ws`), cannot miss an event
 * between the create and a subscription, survives a reconnect without bookkeeping, and the pending
 * reason is only in the REST answer anyway. A VM running a second or so sooner is not worth that.
 */
import type { Caller, CallOptions } from './call.ts';
import {
  AbortError,
  type ApiError,
  NotFoundError,
  TaskCancelledError,
  TaskFailedError,
  TimeoutError,
} from './errors.ts';
import { type ExecOptions, type ExecResult, execStream } from './exec.ts';
import type { Tasks } from './resources.ts';
import { pause, wire } from './util.ts';
import type {
  CreateVmSpec,
  ExecAnswer,
  ExecRequest,
  Execution,
  Task,
  TaskOf,
  VmData,
  VmListFilter,
  VmStatus,
  VmTaskResult,
} from './types.ts';

export type WaitUntil = 'created' | 'placed' | 'running';

/** How far a create has got, for a progress display. `elapsedMs` counts from the create call. */
export type CreateProgress =
  | { phase: 'queued'; elapsedMs: number; vmId: string; taskId: string }
  | { phase: 'pending'; elapsedMs: number; vmId: string; taskId: string; reason: string }
  | { phase: 'placed'; elapsedMs: number; vmId: string; taskId: string; workerId: string | null }
  | { phase: 'booting'; elapsedMs: number; vmId: string; taskId: string; workerId: string | null }
  | {
      phase: 'running';
      elapsedMs: number;
      vmId: string;
      taskId: string;
      workerId: string | null;
      driver: string | null;
    };

export interface CreateOptions {
  /**
   * How far to wait: 'created' (the VM and its task are written), 'placed' (a worker was chosen),
   * 'running' (default: booted and ready for commands).
   */
  waitUntil?: WaitUntil;
  /** How long to wait for `waitUntil`, in ms (default 10 min); then a TimeoutError (kind 'wait'). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * The `Idempotency-Key` of the request: the same key (from the same caller, within 24 h) answers
   * with the VM of the first request instead of making a second. Default: a random key per call,
   * so the SDK's own retries of this create are safe.
   */
  idempotencyKey?: string;
  onProgress?: (progress: CreateProgress) => void;
}

export interface TaskActionOptions {
  /** Wait for the task to end (default true); false answers as soon as the task is written. */
  wait?: boolean;
  /** How long to wait, in ms (default 2 min); then a TimeoutError (kind 'wait'). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface RunOptions {
  args?: ExecRequest['args'];
  env?: ExecRequest['env'];
  cwd?: ExecRequest['cwd'];
  /** The command's timeout in ms (default: none). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

const DEFAULT_CREATE_WAIT_MS = 10 * 60_000;
const DEFAULT_TASK_WAIT_MS = 120_000;
/** Room for the server to answer a request that waits `timeout` seconds on its side. */
const SERVER_WAIT_MARGIN_MS = 10_000;

export class Vm {
  #data: VmData;
  #deleted = false;

  constructor(
    private readonly vms: Vms,
    data: VmData,
  ) {
    this.#data = data;
  }

  /** The latest data the SDK has of this VM (from the last answer; `refresh()` fetches it again). */
  get data(): VmData {
    return this.#data;
  }
  /** True once `delete()` (or disposing of it) removed the VM. */
  get deleted(): boolean {
    return this.#deleted;
  }
  get id(): string {
    return this.#data.id;
  }
  get name(): string {
    return this.#data.name;
  }
  get status(): VmStatus {
    return this.#data.status;
  }
  get workerId(): string | null {
    return this.#data.worker_id;
  }
  get driver(): VmData['driver'] {
    return this.#data.driver;
  }
  /** Why it still waits for a host, when it does (after `get` or `refresh`). */
  get pendingReason(): string | null {
    return this.#data.pending_reason ?? null;
  }

  /** @internal */
  update(data: VmData): this {
    this.#data = data;
    return this;
  }

  /** Fetches the VM again (`GET /vms/{id}`). */
  async refresh(options: { signal?: AbortSignal } = {}): Promise<this> {
    return this.update(await this.vms.fetch(this.id, options));
  }

  /**
   * Runs a command over the interactive exec stream: output arrives through `onStdout` /
   * `onStderr` as the command writes, `stdin` is its input, `timeoutMs` its timeout (the worker
   * kills it and all it started; the result says `timedOut`), `signal` cancels it.
   */
  exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    return execStream(this.vms.caller.transport, this.id, command, options);
  }

  /**
   * Runs a command through REST (`POST /vms/{id}/exec`) and answers the server's record of it,
   * exact bytes included (`stdout_base64` when they are not text). Without streaming.
   */
  async run(command: string, options: RunOptions = {}): Promise<ExecAnswer> {
    const { timeoutMs, signal, ...rest } = options;
    return this.vms.caller.call(
      'execVm',
      {
        params: { id: this.id },
        body: { command, ...rest, ...(timeoutMs === undefined ? {} : { timeout: timeoutMs / 1000 }) },
      },
      // The server answers after the command (or 202 after api_gateway.exec_wait): no request timeout of ours cuts it.
      { signal, timeoutMs: (timeoutMs ?? 24 * 3600_000) + SERVER_WAIT_MARGIN_MS },
    );
  }

  stop(options: TaskActionOptions = {}): Promise<VmTaskResult> {
    return this.action('stopVm', options);
  }

  start(options: TaskActionOptions = {}): Promise<VmTaskResult> {
    return this.action('startVm', options);
  }

  /** Deletes the VM on its worker, and by default waits until it is gone. */
  async delete(options: TaskActionOptions = {}): Promise<VmTaskResult> {
    const result = await this.action('deleteVm', options);
    if (result.status === 'completed') this.#deleted = true;
    return result;
  }

  /** Every command run in the VM. */
  async executions(options: { signal?: AbortSignal } = {}): Promise<Execution[]> {
    return (await this.vms.caller.call('listExecutions', { params: { id: this.id } }, options)).executions;
  }

  /** `await using vm = …`: deletes the VM at the end of the scope (a VM already gone is fine). */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#deleted) return;
    try {
      await this.delete();
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
    this.#deleted = true;
  }

  private async action(name: 'stopVm' | 'startVm' | 'deleteVm', options: TaskActionOptions): Promise<VmTaskResult> {
    const wait = options.wait ?? true;
    const timeoutMs = options.timeoutMs ?? DEFAULT_TASK_WAIT_MS;
    const serverWaitS = Math.min(3600, Math.ceil(timeoutMs / 1000));
    const result = await this.vms.caller.call(
      name,
      { params: { id: this.id }, query: wait ? { wait: 'true', timeout: serverWaitS } : {} },
      { signal: options.signal, ...(wait ? { timeoutMs: serverWaitS * 1000 + SERVER_WAIT_MARGIN_MS } : {}) },
    );
    if (!wait) return result;
    if (result.status === 'completed') {
      if (name !== 'deleteVm') await this.refresh().catch(() => undefined);
      return result;
    }
    // Not finished within the server's wait, or failed: the task says which.
    const task = await this.vms.tasks.get(result.task_id, { signal: options.signal });
    if (task.status === 'failed') throw new TaskFailedError(task);
    if (task.status === 'cancelled') throw new TaskCancelledError(task);
    if (task.status === 'completed') return { ...result, status: 'completed', error: null };
    throw new TimeoutError(
      'wait',
      timeoutMs,
      `${name === 'deleteVm' ? 'delete' : name === 'stopVm' ? 'stop' : 'start'} of VM ${this.name} (task ${task.id}) is still ${task.status} after ${timeoutMs} ms`,
      { details: { task_id: task.id, vm_id: this.id } },
    );
  }
}

export class Vms {
  constructor(
    /** @internal */ readonly caller: Caller,
    /** @internal */ readonly tasks: Tasks,
  ) {}

  /** @internal `GET /vms/{id}`. */
  fetch(idOrName: string, options: CallOptions = {}): Promise<VmData> {
    return this.caller.call('getVm', { params: { id: idOrName } }, options);
  }

  /** The VM with this id or name. NotFoundError when there is none. */
  async get(idOrName: string, options: { signal?: AbortSignal } = {}): Promise<Vm> {
    return new Vm(this, await this.fetch(idOrName, options));
  }

  /** VMs, newest first (`status`, `worker_id`, `name`, `include_deleted`, `limit`: 100 by default). */
  async list(filter: VmListFilter = {}, options: { signal?: AbortSignal } = {}): Promise<Vm[]> {
    const { vms } = await this.caller.call('listVms', { query: wire(filter) }, options);
    return vms.map((data) => new Vm(this, data));
  }

  /**
   * Creates a VM and, by default, waits until it runs (`waitUntil`), reporting its progress. If the
   * create task fails or is cancelled: TaskFailedError / TaskCancelledError (the VM is left as the
   * server left it: `failed`). If the wait times out or is aborted, the VM stays where it is (its
   * id is in the error's `details.vm_id`): delete it, or look again later.
   */
  async create(spec: CreateVmSpec = {}, options: CreateOptions = {}): Promise<Vm> {
    const started = Date.now();
    const key = options.idempotencyKey ?? `sdk-${globalThis.crypto.randomUUID()}`;
    const { vm: data, task_id: taskId } = await this.caller.call(
      'createVm',
      { body: spec, headers: { 'idempotency-key': key } },
      { signal: options.signal, idempotent: true },
    );
    const vm = new Vm(this, data);
    const until = options.waitUntil ?? 'running';
    if (until === 'created') return vm;
    await this.waitForCreate(vm, taskId, until, started, options);
    return vm;
  }

  private async waitForCreate(
    vm: Vm,
    taskId: string,
    until: Exclude<WaitUntil, 'created'>,
    started: number,
    options: CreateOptions,
  ): Promise<void> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_CREATE_WAIT_MS;
    const deadline = started + timeoutMs;
    const { signal } = options;
    // Each phase once, while the poll sees it again and again; again only when it says something
    // new (another pending reason, placed on another worker after a refusal).
    const reported = new Map<CreateProgress['phase'], string>();
    const report = (progress: CreateProgress) => {
      const key = JSON.stringify({ ...progress, elapsedMs: 0 });
      if (reported.get(progress.phase) === key) return;
      reported.set(progress.phase, key);
      options.onProgress?.(progress);
    };
    const ids = { vmId: vm.id, taskId };
    const elapsed = () => Date.now() - started;
    // The create wrote the task pending: it is queued for the scheduler until the first look says more.
    report({ phase: 'queued', elapsedMs: elapsed(), ...ids });
    for (let attempt = 0; ; attempt++) {
      if (signal?.aborted) throw abortedWait(vm, taskId);
      let task: TaskOf<'vm:create'>;
      try {
        task = (await this.tasks.get(taskId, { signal })) as TaskOf<'vm:create'>;
        if (task.status === 'pending' || task.status === 'completed') vm.update(await this.fetch(vm.id, { signal }));
      } catch (err) {
        if ((err as ApiError).code === 'aborted') throw abortedWait(vm, taskId);
        throw err;
      }
      switch (task.status) {
        case 'pending':
          report(
            vm.pendingReason
              ? { phase: 'pending', elapsedMs: elapsed(), ...ids, reason: vm.pendingReason }
              : { phase: 'queued', elapsedMs: elapsed(), ...ids },
          );
          break;
        case 'scheduled':
          report({ phase: 'placed', elapsedMs: elapsed(), ...ids, workerId: task.worker_id });
          if (until === 'placed') return;
          break;
        case 'running':
          report({ phase: 'placed', elapsedMs: elapsed(), ...ids, workerId: task.worker_id });
          report({ phase: 'booting', elapsedMs: elapsed(), ...ids, workerId: task.worker_id });
          if (until === 'placed') return;
          break;
        case 'completed':
          report({
            phase: 'running',
            elapsedMs: elapsed(),
            ...ids,
            workerId: vm.workerId ?? task.worker_id,
            driver: vm.driver ?? task.result?.driver ?? null,
          });
          return;
        case 'failed':
          throw new TaskFailedError<Task>(
            task,
            `the create of VM ${vm.name} failed: ${task.error ?? 'no reason given'}`,
          );
        case 'cancelled':
          throw new TaskCancelledError<Task>(task);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new TimeoutError(
          'wait',
          timeoutMs,
          `VM ${vm.name} is not ${until} after ${timeoutMs} ms (task ${taskId} is ${task.status}${vm.pendingReason ? `: ${vm.pendingReason}` : ''}); it still exists: delete it or wait longer`,
          { details: { vm_id: vm.id, task_id: taskId } },
        );
      }
      await pause(Math.min(left, Math.min(1000, 100 * 1.5 ** attempt)), signal);
    }
  }
}

function abortedWait(vm: Vm, taskId: string): AbortError {
  return new AbortError(`the wait for VM ${vm.name} was aborted; the VM still exists`, {
    details: { vm_id: vm.id, task_id: taskId },
  });
}
