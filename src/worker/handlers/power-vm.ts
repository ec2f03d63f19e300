/** vm:start and vm:stop: the VM keeps its reservation while stopped, so it can always start again. */
import type { Task } from '../../domain/index.ts';
import { conflict } from '../../domain/index.ts';
import { type WorkerContext, driverFor, loadVm, setVmStatus } from '../context.ts';

export async function stopVm(ctx: WorkerContext, task: Task): Promise<Record<string, unknown>> {
  let vm = await loadVm(ctx, task.vm_id);
  if (vm.status === 'stopped') return { vm_id: vm.id, status: 'stopped' };
  vm = await setVmStatus(ctx, vm, { status: 'stopping' });
  await driverFor(ctx, vm).stop(vm.id);
  await setVmStatus(ctx, vm, { status: 'stopped' });
  return { vm_id: vm.id, status: 'stopped' };
}

export async function startVm(ctx: WorkerContext, task: Task): Promise<Record<string, unknown>> {
  let vm = await loadVm(ctx, task.vm_id);
  if (vm.status === 'running') return { vm_id: vm.id, status: 'running' };
  if (vm.status !== 'stopped') throw conflict(`VM ${vm.name} is ${vm.status}; only a stopped VM can be started`);
  vm = await setVmStatus(ctx, vm, { status: 'starting' });
  await driverFor(ctx, vm).start(vm.id);
  await setVmStatus(ctx, vm, { status: 'running' });
  return { vm_id: vm.id, status: 'running' };
}
