/**
 * VM operations as the API offers them. Creating writes the VM and its `vm:create` task in one
 * transaction and leaves placement to the scheduler loop; every other operation becomes a task on
 * the worker that holds the VM, because only that host can touch it.
 */
import {
  conflict,
  type DriverName,
  type ExecPayload,
  type Execution,
  type LabelConstraint,
  newId,
  newTask,
  notFound,
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

export class VmService {
  private readonly dispatchDeps: DispatchDeps;

  constructor(
    private readonly ledger: Ledger,
    queue: TaskQueue,
    private readonly onPendingWork: () => void,
  ) {
    this.dispatchDeps = { ledger, queue };
  }

  async create(input: CreateVmInput): Promise<{ vm: Vm; task: Task }> {
    const now = new Date();
    const id = newId();
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
    };
    // The VM row holds its requirements; the task only what placement needs beyond them.
    const task = newTask(
      'vm:create',
      { worker_labels: input.worker_labels ?? {}, strategy: input.strategy ?? null },
      { vm_id: id },
    );
    await this.ledger.createVm(vm, task);
    this.onPendingWork();
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
      const target = placedVm(current);
      if (target) return this.send(target, taskForVm(target, 'vm:delete', {}));
      // Never placed: no host holds anything, so the delete completes here and now, in one
      // transaction with the placement it might race. If the placement wins, delete it there.
      const now = new Date();
      const result = { vm_id: vm.id, deleted: true as const };
      const done = newTask(
        'vm:delete',
        {},
        { vm_id: vm.id, status: 'completed', result, started_at: now, completed_at: now },
      );
      if (await this.ledger.deleteUnplaced(current, done)) return done;
    }
    throw conflict(`VM ${vm.name} kept changing state; try again`);
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
