/**
 * VM operations as the API offers them. Creating writes the VM and its `vm:create` task in one
 * transaction and leaves placement to the scheduler loop; every other operation becomes a task on
 * the worker that holds the VM, because only that host can touch it.
 */
import {
  conflict,
  type DriverName,
  type ExecPayload,
  newId,
  notFound,
  type Task,
  type TaskType,
  type Vm,
  type VmFilter,
} from '../../domain/index.ts';
import type { EventBus } from '../../ports/event-bus.ts';
import type { Store } from '../../ports/store.ts';
import type { TaskQueue } from '../../ports/task-queue.ts';
import { dispatchToVmWorker, newTask } from '../../operations/dispatch.ts';
import type { LabelConstraint, Strategy } from '../../scheduler/index.ts';

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

export { MAX_RETRIES, newTask } from '../../operations/dispatch.ts';

export class VmService {
  constructor(
    readonly store: Store,
    readonly queue: TaskQueue,
    readonly events: EventBus,
    private readonly onPendingWork: () => void,
  ) {}

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
    const task = newTask('vm:create', {
      vm_id: id,
      payload: {
        vcpus: input.vcpus,
        memory_mb: input.memory_mb,
        disk_gb: input.disk_gb,
        driver: input.driver ?? null,
        zone: input.zone ?? null,
        worker_labels: input.worker_labels ?? {},
        strategy: input.strategy ?? null,
      },
    });
    await this.store.insertVmWithTask(vm, task);
    await this.events.publish({ type: 'task.created', data: { task_id: task.id, type: task.type, vm_id: id, name: vm.name } });
    this.onPendingWork();
    return { vm, task };
  }

  async get(idOrName: string): Promise<Vm> {
    const vm = await this.store.findVm(idOrName);
    if (!vm) throw notFound('VM', idOrName);
    return vm;
  }

  list(filter: VmFilter): Promise<Vm[]> {
    return this.store.listVms(filter);
  }

  /** The create task's explanation while a VM waits for a worker: "why is my VM pending?". */
  async pendingReason(vm: Vm): Promise<string | null> {
    if (vm.worker_id || vm.status !== 'created') return null;
    const [task] = await this.store.listTasks({ vm_id: vm.id, type: 'vm:create', limit: 1 });
    const reason = task?.placement?.reason;
    return typeof reason === 'string' ? reason : task?.status === 'pending' ? 'waiting for the scheduler' : null;
  }

  async delete(idOrName: string): Promise<Task> {
    const vm = await this.get(idOrName);
    if (!vm.worker_id) {
      // Never placed: no host holds anything, so the delete completes here and now.
      const creates = await this.store.listTasks({ vm_id: vm.id, type: 'vm:create' });
      for (const create of creates) {
        const cancelled = await this.store.updateTask(create.id, { status: 'cancelled', error: 'the VM was deleted before it was placed', completed_at: new Date() }, ['pending']);
        if (cancelled) await this.events.publish({ type: 'task.cancelled', data: { task_id: create.id, type: create.type, vm_id: vm.id, reason: 'vm deleted' } });
      }
      const now = new Date();
      await this.store.updateVm(vm.id, { status: 'stopped', deleted_at: now });
      const task = newTask('vm:delete', { vm_id: vm.id, status: 'completed', result: { vm_id: vm.id, deleted: true }, started_at: now, completed_at: now });
      await this.store.insertTask(task);
      await this.events.publish({ type: 'vm.deleted', data: { vm_id: vm.id, name: vm.name, worker_id: null } });
      return task;
    }
    return this.dispatch(vm, 'vm:delete', {});
  }

  async start(idOrName: string): Promise<Task> {
    const vm = await this.get(idOrName);
    if (vm.status !== 'stopped' && vm.status !== 'running') throw conflict(`VM ${vm.name} is ${vm.status}; only a stopped VM can be started`);
    return this.dispatch(vm, 'vm:start', {});
  }

  async stop(idOrName: string): Promise<Task> {
    const vm = await this.get(idOrName);
    if (vm.status !== 'running' && vm.status !== 'stopped') throw conflict(`VM ${vm.name} is ${vm.status}; only a running VM can be stopped`);
    return this.dispatch(vm, 'vm:stop', {});
  }

  /** `taskId` lets a caller subscribe to the command's live output before it can start. */
  async exec(idOrName: string, payload: ExecPayload & { stream?: boolean }, taskId?: string): Promise<Task> {
    const vm = await this.get(idOrName);
    if (vm.status !== 'running') {
      const hint = vm.status === 'created' || vm.status === 'starting' ? '; wait until it is running' : vm.status === 'stopped' ? '; start it first' : '';
      throw conflict(`VM ${vm.name} is ${vm.status}${hint}`);
    }
    return this.dispatch(vm, 'vm:execute', payload as unknown as Record<string, unknown>, taskId);
  }

  private dispatch(vm: Vm, type: TaskType, payload: Record<string, unknown>, id?: string): Promise<Task> {
    return dispatchToVmWorker(this, vm, type, payload, id);
  }
}
