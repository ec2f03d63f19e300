/**
 * vm:create. Idempotent: the driver's create is keyed by the VM id, so a retried or resumed task
 * finds the VM it already started instead of starting a second one. A failed attempt tears down
 * whatever it allocated before the error propagates.
 */
import { type Task, WorkerRefusedError } from '../../domain/index.ts';
import { type WorkerContext, driverFor, loadVm, setVmStatus } from '../context.ts';

export async function createVm(ctx: WorkerContext, task: Task, signal: AbortSignal): Promise<Record<string, unknown>> {
  let vm = await loadVm(ctx, task.vm_id);
  const driver = driverFor(ctx, vm);
  const refusal = vm.status === 'created' ? ctx.admit(vm) : null;
  if (refusal) throw new WorkerRefusedError(refusal);
  vm = await setVmStatus(ctx, vm, { status: 'starting', error: null });
  const started = Date.now();
  try {
    const info = await driver.create(
      { id: vm.id, name: vm.name, vcpus: vm.vcpus, memory_mb: vm.memory_mb, disk_gb: vm.disk_gb, image: vm.image },
      signal,
    );
    const current = await ctx.store.getVm(vm.id);
    if (!current || current.deleted_at) {
      // Deleted while it booted: do not leave a VM behind that nobody can see.
      await driver.delete(vm.id);
      return { vm_id: vm.id, deleted_while_creating: true };
    }
    await setVmStatus(ctx, current, { status: 'running', error: null });
    await ctx.events.publish({ type: 'vm.created', data: { vm_id: vm.id, name: vm.name, worker_id: ctx.workerId, driver: vm.driver } });
    ctx.vmsChanged();
    return { vm_id: vm.id, driver: vm.driver, boot_ms: info.boot_ms ?? Date.now() - started };
  } catch (err) {
    await driver.delete(vm.id).catch((cleanupErr) => ctx.log.warn({ err: cleanupErr, vm_id: vm.id }, 'cleanup after a failed create failed'));
    throw err;
  }
}

/** Called once the create has failed for good: the VM is marked failed and its capacity returned. */
export async function createVmFailed(ctx: WorkerContext, task: Task, error: string): Promise<void> {
  const vm = task.vm_id ? await ctx.store.getVm(task.vm_id) : null;
  if (!vm) return;
  await setVmStatus(ctx, vm, { status: 'failed', error });
  if (await ctx.store.releaseVm(vm.id)) ctx.vmsChanged();
}
