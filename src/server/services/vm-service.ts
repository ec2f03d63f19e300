/**
 * VM operations as the API offers them. Creating writes the VM and its `vm:create` task in one
 * transaction and leaves placement to the scheduler loop; every other operation becomes a task on
 * the worker that holds the VM, because only that host can touch it.
 *
 * A create with an idempotency key first claims the key with the VM's and the task's ids chosen up
 * front (src/domain/idempotency.ts), then writes the VM only if absent. Whatever came before (the
 * same key's request still running, finished, or dead between the claim and the write), the answer
 * is the recorded VM and task, written now if nobody wrote them: never a second VM.
 */
import { currentTaskTrace } from '../../observability/trace-context.ts';
import {
  AetheriumError,
  belowDriverMinimum,
  conflict,
  type CreateTask,
  type DriverName,
  DRIVER_MINIMUMS,
  IDEMPOTENCY_KEY_PATTERN,
  IDEMPOTENCY_TTL_MS,
  type IdempotencyRecord,
  type ExecPayload,
  type Execution,
  type LabelConstraint,
  newId,
  newTask,
  invalid,
  notFound,
  requestFingerprint,
  type Strategy,
  type Task,
  type Vm,
  type VmFilter,
} from '../../domain/index.ts';
import type { TaskQueue } from '../../ports/task-queue.ts';
import type { Ledger } from '../ledger/ledger.ts';
import { type DispatchDeps, dispatchToVmWorker, type PlacedVm, placedVm, taskForVm } from '../operations/dispatch.ts';
import { fromExecutionRow } from '../stored-output.ts';

export interface CreateVmInput {
  name?: string;
  vcpus: number;
  memory_mb: number;
  disk_gb: number;
  driver?: DriverName;
  image?: string;
  zone?: string;
  labels?: Record<string, string>;
  worker_labels?: Record<string, LabelConstraint>;
  strategy?: Strategy;
}

export interface CreateVmOptions {
  /**
   * The caller (`identityScope`) and its Idempotency-Key: the same key from the same caller within
   * IDEMPOTENCY_TTL_MS gets the VM and task of its first request; with another body, a conflict.
   */
  idempotency?: { scope: string; key: string };
}

export interface CreatedVm {
  vm: Vm;
  task: Task;
  /**
   * True when an earlier request with the same idempotency key wrote the VM: the VM and task are
   * read back as they are now (running, failed, deleted …). False for the request that wrote them.
   */
  replayed: boolean;
}

export class VmService {
  private readonly dispatchDeps: DispatchDeps;
  /** The clock idempotency keys are recorded and expire by (a test moves it to see a key expire). */
  idempotencyClock: () => Date = () => new Date();

  constructor(
    private readonly ledger: Ledger,
    queue: TaskQueue,
    private readonly onPendingWork: () => void,
  ) {
    this.dispatchDeps = { ledger, queue };
  }

  async create(input: CreateVmInput, options: CreateVmOptions = {}): Promise<CreatedVm> {
    // A VM its driver cannot boot is refused here, not accepted to fail (or spin) on a worker.
    if (input.driver) {
      const shortfall = belowDriverMinimum(input.driver, input);
      if (shortfall) throw invalid(shortfall, { driver: input.driver, minimum: DRIVER_MINIMUMS[input.driver] });
    }
    if (options.idempotency) return this.createOnce(input, options.idempotency);
    const { vm, task } = this.newVm(input, newId(), newId());
    await this.ledger.createVm(vm, task);
    this.onPendingWork();
    return { vm, task, replayed: false };
  }

  /** A create under an idempotency key: claim the key with the ids, then write them if absent. */
  private async createOnce(input: CreateVmInput, { scope, key }: { scope: string; key: string }): Promise<CreatedVm> {
    if (!IDEMPOTENCY_KEY_PATTERN.test(key)) {
      throw new AetheriumError(
        'bad_request',
        'the Idempotency-Key header must be 1-255 printable ASCII characters without spaces',
      );
    }
    const fingerprint = requestFingerprint('vm:create', input);
    const { record, created } = await this.ledger.store.claimIdempotencyKey({
      scope,
      key,
      fingerprint,
      vm_id: newId(),
      task_id: newId(),
      now: this.idempotencyClock(),
      ttl_ms: IDEMPOTENCY_TTL_MS,
    });
    if (record.fingerprint !== fingerprint) {
      throw conflict(
        `the Idempotency-Key ${JSON.stringify(key)} was already used for a different request (another body) ` +
          'in the last 24 h; send a new key for a new request',
        { idempotency_key: key, vm_id: record.vm_id },
      );
    }
    if (!created) {
      const earlier = await this.recorded(record);
      if (earlier) return { ...earlier, replayed: true };
      // Claimed, but no VM: its request is still on its way, or died before writing it. Write it
      // here, with the recorded ids; whichever of the two writes first wins, the other finds it.
    }
    const { vm, task } = this.newVm(input, record.vm_id, record.task_id);
    let inserted: boolean;
    try {
      inserted = await this.ledger.createVm(vm, task, true);
    } catch (err) {
      // Two writes of the same VM at the same instant: on Postgres the loser may trip over the
      // winner's live name before it sees the id. The VM with the recorded id is the answer.
      const earlier = err instanceof AetheriumError && err.code === 'conflict' ? await this.recorded(record) : null;
      if (earlier) return { ...earlier, replayed: true };
      throw err;
    }
    if (inserted) {
      this.onPendingWork();
      return { vm, task, replayed: false };
    }
    const earlier = await this.recorded(record);
    if (!earlier) throw new AetheriumError('internal', `VM ${record.vm_id} exists, yet cannot be read`);
    return { ...earlier, replayed: true };
  }

  /** The VM and create task an idempotency record names, as they are now; null when not written yet. */
  private async recorded(record: IdempotencyRecord): Promise<{ vm: Vm; task: Task } | null> {
    const vm = await this.ledger.store.getVm(record.vm_id);
    if (!vm) return null;
    const task = await this.ledger.store.getTask(record.task_id);
    if (!task) throw new AetheriumError('internal', `the create task ${record.task_id} of VM ${vm.id} is missing`);
    return { vm, task };
  }

  private newVm(input: CreateVmInput, id: string, taskId: string): { vm: Vm; task: CreateTask } {
    const now = new Date();
    const vm: Vm = {
      id,
      name: input.name ?? `vm-${id.slice(0, 8)}`,
      status: 'created',
      driver: input.driver ?? null,
      worker_id: null,
      zone: input.zone ?? null,
      labels: input.labels ?? {},
      image: input.image ?? null,
      vcpus: input.vcpus,
      memory_mb: input.memory_mb,
      disk_gb: input.disk_gb,
      error: null,
      created_at: now,
      updated_at: now,
      deleted_at: null,
      phases: { accepted: now },
    };
    // The VM row holds its requirements; the task only what placement needs beyond them.
    const task = newTask(
      'vm:create',
      { worker_labels: input.worker_labels ?? {}, strategy: input.strategy ?? null },
      { id: taskId, vm_id: id, trace: currentTaskTrace() },
    );
    return { vm, task };
  }

  async get(idOrName: string): Promise<Vm> {
    const vm = await this.ledger.store.findVm(idOrName);
    if (!vm) throw notFound('VM', idOrName);
    return vm;
  }

  /** A VM by id, deleted or not (to show a VM right after the task that changed it). */
  async getById(id: string): Promise<Vm | null> {
    return this.ledger.store.getVm(id);
  }

  list(filter: VmFilter): Promise<Vm[]> {
    return this.ledger.store.listVms(filter);
  }

  async executions(idOrName: string): Promise<Execution[]> {
    const vm = await this.get(idOrName);
    return (await this.ledger.store.listExecutions(vm.id)).map(fromExecutionRow);
  }

  /** The create task's explanation while a VM waits for a worker: "why is my VM pending?". */
  async pendingReason(vm: Vm): Promise<string | null> {
    if (vm.worker_id || vm.status !== 'created') return null;
    const [task] = await this.ledger.store.listTasks({ vm_id: vm.id, type: 'vm:create', limit: 1 });
    const reason = task?.type === 'vm:create' ? task.placement?.reason : undefined;
    return reason ?? (task?.status === 'pending' ? 'waiting for the scheduler' : null);
  }

  async delete(idOrName: string): Promise<Task> {
    const vm = await this.get(idOrName);
    for (let attempt = 0; attempt < 3; attempt++) {
      const current = attempt === 0 ? vm : await this.get(vm.id);
      if (current.status === 'lost') return this.deleteLost(current);
      const target = placedVm(current);
      if (target) return this.send(target, taskForVm(target, 'vm:delete', {}));
      // Never placed: no host holds anything, so the delete completes here and now, in one
      // transaction with the placement it might race. If the placement wins, delete it there.
      const now = new Date();
      const result = { vm_id: vm.id, deleted: true as const };
      const done = newTask(
        'vm:delete',
        {},
        { vm_id: vm.id, status: 'completed', result, started_at: now, completed_at: now, trace: currentTaskTrace() },
      );
      if (await this.ledger.deleteUnplaced(current, done)) return done;
    }
    throw conflict(`VM ${vm.name} kept changing state; try again`);
  }

  /**
   * A lost VM has no worker to ask: the row is closed here (its capacity was returned when it was
   * lost). Should its worker come back with it, its reconcile finds it deleted and removes it.
   */
  private async deleteLost(vm: Vm): Promise<Task> {
    const now = new Date();
    const done = newTask(
      'vm:delete',
      {},
      {
        vm_id: vm.id,
        worker_id: vm.worker_id,
        status: 'completed',
        result: { vm_id: vm.id, deleted: true as const },
        started_at: now,
        completed_at: now,
        trace: currentTaskTrace(),
      },
    );
    await this.ledger.store.insertTask(done);
    await this.ledger.vmDeleted(vm, 'deleted after it was lost with its worker');
    return done;
  }

  async start(idOrName: string): Promise<Task> {
    const vm = await this.get(idOrName);
    if (vm.status !== 'stopped' && vm.status !== 'running') {
      throw conflict(`VM ${vm.name} is ${vm.status}; only a stopped VM can be started`);
    }
    const target = this.placed(vm);
    return this.send(target, taskForVm(target, 'vm:start', {}));
  }

  async stop(idOrName: string): Promise<Task> {
    const vm = await this.get(idOrName);
    if (vm.status !== 'running' && vm.status !== 'stopped') {
      throw conflict(`VM ${vm.name} is ${vm.status}; only a running VM can be stopped`);
    }
    const target = this.placed(vm);
    return this.send(target, taskForVm(target, 'vm:stop', {}));
  }

  /** `taskId` lets a caller subscribe to the command's live output before it can start. */
  async exec(idOrName: string, payload: ExecPayload, taskId?: string): Promise<Task> {
    const vm = await this.get(idOrName);
    if (vm.status !== 'running') {
      const hint =
        vm.status === 'created' || vm.status === 'starting'
          ? '; wait until it is running'
          : vm.status === 'stopped'
            ? '; start it first'
            : vm.status === 'unknown'
              ? `; ${vm.error ?? 'its worker is unreachable'}`
              : '';
      throw conflict(`VM ${vm.name} is ${vm.status}${hint}`);
    }
    const target = this.placed(vm);
    return this.send(target, taskForVm(target, 'vm:execute', payload, taskId ? { id: taskId } : {}));
  }

  private placed(vm: Vm): PlacedVm {
    const target = placedVm(vm);
    if (!target) throw conflict(`VM ${vm.name} is not placed on a worker yet`);
    return target;
  }

  private async send(vm: PlacedVm, task: Task): Promise<Task> {
    await dispatchToVmWorker(this.dispatchDeps, vm, task);
    return task;
  }
}
