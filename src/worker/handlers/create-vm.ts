/**
 * vm:create. Idempotent: the driver's create is keyed by the VM id, so a retried or resumed task
 * finds the VM it already started instead of starting a second one. A failed attempt tears down
 * whatever it allocated before the error propagates; a VM that was deleted, or given up on, while
 * it booted is torn down again at once.
 */
import { AetheriumError, type CreateResult, type CreateTask, type Vm } from '../../domain/index.ts';
import { driverFor, reportVm, requireVm, type WorkerContext } from '../context.ts';

export async function createVm(
  ctx: WorkerContext,
  task: CreateTask,
  claimed: Vm | null,
  signal: AbortSignal,
): Promise<CreateResult> {
  const vm = requireVm(claimed, task.vm_id);
  const driver = driverFor(ctx, vm);
  const refusal = vm.status === 'created' ? ctx.admit(vm) : null;
  if (refusal) throw new AetheriumError('worker_refused', refusal);
  const starting = await reportVm(ctx, vm, {
    kind: 'status',
    to: 'starting',
    from: ['created', 'starting'],
    error: null,
  });
  if (!starting) throw new AetheriumError('conflict', `VM ${vm.name} is ${vm.status}: it is no longer to be created`);
  const started = Date.now();
  try {
    const spec = {
      id: vm.id,
      name: vm.name,
      vcpus: vm.vcpus,
      memory_mb: vm.memory_mb,
      disk_gb: vm.disk_gb,
      image: vm.image,
    };
    const called = new Date();
    const info = await driver.create(spec, signal);
    // The guest agent answers when create returns; the VMM started when the driver says it did
    // (a driver that launches none, or found the VM running already, says nothing: the call).
    const phases = { driver_started: info.launched_at ?? called, agent_ready: new Date() };
    if (!(await reportVm(ctx, starting, { kind: 'booted', phases }))) {
      // Deleted while it booted, or its create given up on: leave no VM behind that nobody sees.
      await driver.delete(vm.id);
      return { vm_id: vm.id, driver: vm.driver, deleted_while_creating: true };
    }
    ctx.vmsChanged();
    return { vm_id: vm.id, driver: vm.driver, boot_ms: info.boot_ms ?? Date.now() - started };
  } catch (err) {
    await driver
      .delete(vm.id)
      .catch((cleanupErr) => ctx.log.warn({ err: cleanupErr, vm_id: vm.id }, 'cleanup after a failed create failed'));
    throw err;
  }
}
