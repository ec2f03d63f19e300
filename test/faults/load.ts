/**
 * A steady load through the real API, as a careful client would make it: every `1/rate` s a new
 * cycle starts (unless `maxInFlight` are under way), whatever the cluster's state, like users
 * who do not wait for each other. A cycle creates a VM, waits until it runs, runs a command in it,
 * keeps it `holdMs`, runs another and deletes it.
 *
 * The client goes through the replicas in turn, as a load balancer would, and moves on to the
 * next one when a request cannot be made or is refused with a 5xx, until the operation's
 * deadline. A create carries an Idempotency-Key, so a retry never makes a second VM; an exec
 * retried may run twice (it only echoes); a delete retried may find the VM gone (404) or already
 * being deleted (409): both are the delete having happened.
 *
 * Every request is recorded (`attempts`: when, which replica, ok or why not) and so is every
 * task id and VM id an answer gave the client: the invariants check the cluster kept them.
 */
import { randomUUID } from 'node:crypto';

/** A request of the API, or `boot`: the wait from an accepted create until the VM runs (ok) or fails. */
export type RequestKind = 'create' | 'get' | 'exec' | 'delete' | 'boot';

export interface Attempt {
  kind: RequestKind;
  /** Index of the replica asked (-1 for a boot). */
  replica: number;
  startedAt: number;
  endedAt: number;
  ok: boolean;
  /** HTTP status, 0 when no answer came. */
  status: number;
  error?: string;
}

export interface LoadVm {
  name: string;
  startedAt: number;
  id: string | null;
  /** Task ids the answers gave, by kind. */
  tasks: { create: string[]; exec: string[]; delete: string[] };
  /** The status the boot wait ended on (running, failed, … or 'timeout'). */
  bootStatus: string | null;
  bootMs: number | null;
  execOk: boolean | null;
  deleteAccepted: boolean;
}

export interface LoadOptions {
  replicas: string[];
  key: string;
  /** Cycles started per second. */
  rate: number;
  /** Cycles under way at most: past it, a start is skipped (and counted). */
  maxInFlight: number;
  /** VM names start with it (one load per cluster run). */
  prefix: string;
  /** How long a VM lives between its two commands. */
  holdMs?: number;
  /** How long one operation (all its retries) may take. */
  operationDeadlineMs?: number;
  /** How long to wait for a VM to run. */
  bootDeadlineMs?: number;
  driver?: string;
}

/** The fields of the answers the load reads. */
interface AnswerBody {
  vm?: { id: string };
  task_id?: string;
  status?: string;
  exit_code?: number;
  stdout?: string;
  error?: unknown;
}

interface Answer {
  status: number;
  body: AnswerBody | null;
}

const FINAL_BOOT = new Set(['running', 'failed', 'lost', 'stopped']);

export class Load {
  readonly attempts: Attempt[] = [];
  readonly vms: LoadVm[] = [];
  /** Starts skipped because `maxInFlight` cycles were under way. */
  skipped = 0;
  private running = false;
  private pump: Promise<void> = Promise.resolve();
  private readonly inFlight = new Set<Promise<void>>();
  private turn = 0;
  private counter = 0;
  private readonly runId = randomUUID().slice(0, 6);

  constructor(private readonly options: LoadOptions) {}

  start(): void {
    this.running = true;
    this.pump = this.startCycles();
  }

  /** Starts no more cycles, lets those under way finish, then resolves. */
  async stop(): Promise<void> {
    this.running = false;
    await this.pump;
    await Promise.all([...this.inFlight]);
  }

  /** Every task id an answer gave. */
  taskIds(): string[] {
    return this.vms.flatMap((vm) => [...vm.tasks.create, ...vm.tasks.exec, ...vm.tasks.delete]);
  }

  cycles(): number {
    return this.vms.filter((vm) => vm.deleteAccepted).length;
  }

  private async startCycles(): Promise<void> {
    const interval = 1000 / this.options.rate;
    let next = Date.now();
    while (this.running) {
      if (this.inFlight.size < this.options.maxInFlight) {
        const cycle: Promise<void> = this.cycle()
          .catch(() => undefined)
          .finally(() => this.inFlight.delete(cycle));
        this.inFlight.add(cycle);
      } else {
        this.skipped++;
      }
      next += interval;
      await sleep(Math.max(0, next - Date.now()));
    }
  }

  private async cycle(): Promise<void> {
    const vm: LoadVm = {
      name: `${this.options.prefix}-${this.runId}-${this.counter++}`,
      startedAt: Date.now(),
      id: null,
      tasks: { create: [], exec: [], delete: [] },
      bootStatus: null,
      bootMs: null,
      execOk: null,
      deleteAccepted: false,
    };
    this.vms.push(vm);
    const idempotencyKey = `${vm.name}-create`;
    const created = await this.operation('create', 'POST', '/vms', {
      body: { name: vm.name, driver: this.options.driver ?? 'sandbox', memory_mb: 64, strategy: 'spread' },
      headers: { 'idempotency-key': idempotencyKey },
      accept: (a) => [200, 201, 202].includes(a.status),
    });
    if (!created) return;
    vm.id = created.body?.vm?.id ?? null;
    if (created.body?.task_id) vm.tasks.create.push(created.body.task_id);
    if (vm.id === null) return;

    const bootStarted = Date.now();
    vm.bootStatus = await this.waitForBoot(vm.id);
    vm.bootMs = Date.now() - bootStarted;
    const ok = vm.bootStatus === 'running';
    this.attempts.push({
      kind: 'boot',
      replica: -1,
      startedAt: bootStarted,
      endedAt: Date.now(),
      ok,
      status: 0,
      ...(ok ? {} : { error: `boot ended ${vm.bootStatus}` }),
    });

    if (vm.bootStatus === 'running') {
      // Two commands, `holdMs` apart: the VM lives long enough for a fault to find it.
      vm.execOk = true;
      for (let i = 0; i < 2; i++) {
        if (i > 0) await sleep(this.options.holdMs ?? 0);
        const exec = await this.operation('exec', 'POST', `/vms/${vm.id}/exec`, {
          body: { command: 'sh', args: ['-c', 'echo $((6 * 7))'] },
          accept: (a) => a.status === 200,
          check: (a) =>
            a.body?.exit_code === 0 && a.body.stdout === '42\n' ? null : `wrong answer ${JSON.stringify(a.body)}`,
          onAnswer: (a) => {
            if (typeof a.body?.task_id === 'string') vm.tasks.exec.push(a.body.task_id);
          },
        });
        if (exec === null) vm.execOk = false;
      }
    }

    const deleted = await this.operation('delete', 'DELETE', `/vms/${vm.id}`, {
      // A retry that finds the VM gone or being deleted: an earlier try did it.
      accept: (a, attempt) => [200, 202].includes(a.status) || (attempt > 0 && [404, 409].includes(a.status)),
      onAnswer: (a) => {
        if (typeof a.body?.task_id === 'string') vm.tasks.delete.push(a.body.task_id);
      },
    });
    vm.deleteAccepted = deleted !== null;
  }

  /** Polls the VM until its status is final for a boot (or the deadline). */
  private async waitForBoot(id: string): Promise<string> {
    const deadline = Date.now() + (this.options.bootDeadlineMs ?? 60_000);
    let last = 'unknown';
    while (Date.now() < deadline) {
      const answer = await this.request('get', 'GET', `/vms/${id}`, {});
      if (answer?.status === 200) {
        last = answer.body?.status ?? last;
        if (FINAL_BOOT.has(last)) return last;
      }
      await sleep(200);
    }
    return `timeout (last ${last})`;
  }

  /** One operation with its retries: the accepted answer, or null when the deadline passed. */
  private async operation(
    kind: RequestKind,
    method: string,
    path: string,
    options: {
      body?: unknown;
      headers?: Record<string, string>;
      accept: (answer: Answer, attempt: number) => boolean;
      check?: (answer: Answer) => string | null;
      onAnswer?: (answer: Answer) => void;
    },
  ): Promise<Answer | null> {
    const deadline = Date.now() + (this.options.operationDeadlineMs ?? 45_000);
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      let refused = false;
      const answer = await this.request(kind, method, path, options, (a) => {
        options.onAnswer?.(a);
        if (!options.accept(a, attempt)) {
          // A 4xx other than 429 is the cluster's answer, not a fault in the way: no retry.
          refused = a.status < 500 && a.status !== 429;
          return `HTTP ${a.status} ${JSON.stringify(a.body?.error ?? a.body).slice(0, 200)}`;
        }
        return options.check?.(a) ?? null;
      });
      if (answer) return answer;
      if (refused) return null;
      // Straight to the next replica once; then back off a little.
      await sleep(attempt === 0 ? 50 : Math.min(1000, 100 * attempt));
    }
    return null;
  }

  /** One request to the next replica; recorded. Returns the answer when `judge` finds no fault. */
  private async request(
    kind: RequestKind,
    method: string,
    path: string,
    options: { body?: unknown; headers?: Record<string, string> },
    judge: (answer: Answer) => string | null = (a) => (a.status < 500 ? null : `HTTP ${a.status}`),
  ): Promise<Answer | null> {
    const replica = this.turn++ % this.options.replicas.length;
    const attempt: Attempt = { kind, replica, startedAt: Date.now(), endedAt: 0, ok: false, status: 0 };
    this.attempts.push(attempt);
    try {
      const response = await fetch(`${this.options.replicas[replica]}/api/v1${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.options.key}`,
          ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...options.headers,
        },
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await response.text();
      const answer: Answer = { status: response.status, body: text ? JSON.parse(text) : null };
      attempt.status = answer.status;
      const fault = judge(answer);
      attempt.ok = fault === null;
      if (fault) attempt.error = fault;
      return fault === null ? answer : null;
    } catch (err) {
      attempt.error = (err as Error).cause ? String((err as Error).cause) : String(err);
      return null;
    } finally {
      attempt.endedAt = Date.now();
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
