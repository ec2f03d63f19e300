/** vm:start and vm:stop: the VM keeps its reservation while stopped, so it can always start again. */
import { conflict, type PowerResult, type StartTask, type StopTask, type Vm } from '../../domain/index.ts';
import { driverFor, reportVm, requireVm, type WorkerContext } from '../context.ts';

export async function stopVm(ctx: WorkerContext, task: StopTask, claimed: Vm | null): Promise<PowerResult> {
  const vm = requireVm(claimed, task.vm_id);
  if (vm.status === 'stopped') return { vm_id: vm.id, status: 'stopped' };
  const stopping = (await reportVm(ctx, vm, { kind: 'status', to: 'stopping' })) ?? vm;
  await driverFor(ctx, vm).stop(vm.id);
  await reportVm(ctx, stopping, { kind: 'status', to: 'stopped' });
  return { vm_id: vm.id, status: 'stopped' };
}

export async function startVm(ctx: WorkerContext, task: StartTask, claimed: Vm | null): Promise<PowerResult> {
  const vm = requireVm(claimed, task.vm_id);
  if (vm.status === 'running') return { vm_id: vm.id, status: 'running' };
  if (vm.status !== 'stopped') throw conflict(`VM ${vm.name} is ${vm.status}; only a stopped VM can be started`);
  const starting = (await reportVm(ctx, vm, { kind: 'status', to: 'starting' })) ?? vm;
  await driverFor(ctx, vm).start(vm.id);
  await reportVm(ctx, starting, { kind: 'status', to: 'running' });
  return { vm_id: vm.id, status: 'running' };
}
