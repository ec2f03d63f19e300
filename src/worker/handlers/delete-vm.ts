/** vm:delete: stops the VM, frees everything the driver allocated, returns its capacity. */
import type { Task } from '../../domain/index.ts';
import { type WorkerContext, driverFor, loadVm, setVmStatus } from '../context.ts';

export async function deleteVm(ctx: WorkerContext, task: Task): Promise<Record<string, unknown>> {
  let vm = await loadVm(ctx, task.vm_id);
  if (vm.driver && ctx.drivers.has(vm.driver)) {
    if (vm.status !== 'stopped' && vm.status !== 'failed') vm = await setVmStatus(ctx, vm, { status: 'stopping' });
    await driverFor(ctx, vm).delete(vm.id);
  }
  await setVmStatus(ctx, vm, { status: 'stopped', deleted_at: new Date() });
  await ctx.store.releaseVm(vm.id);
  await ctx.events.publish({ type: 'vm.deleted', data: { vm_id: vm.id, name: vm.name, worker_id: ctx.workerId } });
  ctx.vmsChanged();
  return { vm_id: vm.id, deleted: true };
}
