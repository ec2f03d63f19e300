/** vm:delete: stops the VM, frees everything the driver allocated, returns its capacity. */
import type { DeleteResult, DeleteTask, Vm } from '../../domain/index.ts';
import { driverFor, reportVm, requireVm, type WorkerContext } from '../context.ts';

export async function deleteVm(ctx: WorkerContext, task: DeleteTask, claimed: Vm | null): Promise<DeleteResult> {
  let vm = requireVm(claimed, task.vm_id);
  if (vm.driver && ctx.drivers.has(vm.driver)) {
    if (vm.status !== 'stopped' && vm.status !== 'failed')
      vm = (await reportVm(ctx, vm, { kind: 'status', to: 'stopping' })) ?? vm;
    await driverFor(ctx, vm).delete(vm.id);
  }
  await reportVm(ctx, vm, { kind: 'deleted', reason: task.payload.reason ?? 'deleted by request' });
  ctx.vmsChanged();
  return { vm_id: vm.id, deleted: true };
}
