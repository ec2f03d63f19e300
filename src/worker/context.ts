/** What every task handler on a worker can reach. */
import type { DriverName, Vm } from '../domain/index.ts';
import { notFound, PermanentTaskError } from '../domain/index.ts';
import type { EventBus } from '../ports/event-bus.ts';
import type { ExecChannels } from '../ports/exec-channels.ts';
import type { Store } from '../ports/store.ts';
import type { VmDriver } from '../ports/vm-driver.ts';
import type { Logger } from '../runtime/logger.ts';

export interface WorkerContext {
  workerId: string;
  store: Store;
  events: EventBus;
  /** Live stdin/stdout/stderr of interactive commands. */
  channels: ExecChannels;
  drivers: ReadonlyMap<DriverName, VmDriver>;
  log: Logger;
  /** Called after a VM appears or disappears so the agent pushes fresh resource figures. */
  vmsChanged(): void;
  /** Whether this host can really take the VM now: null, or the reason it cannot. */
  admit(vm: Vm): string | null;
}

export function driverFor(ctx: WorkerContext, vm: Vm): VmDriver {
  const driver = vm.driver ? ctx.drivers.get(vm.driver) : undefined;
  if (!driver) throw new PermanentTaskError(`worker ${ctx.workerId} has no ${vm.driver ?? '(unset)'} driver for VM ${vm.name}`);
  return driver;
}

export async function loadVm(ctx: WorkerContext, vmId: string | null): Promise<Vm> {
  const vm = vmId ? await ctx.store.getVm(vmId) : null;
  if (!vm) throw new PermanentTaskError(notFound('VM', vmId ?? '(none)').message);
  return vm;
}

export async function setVmStatus(ctx: WorkerContext, vm: Vm, patch: Parameters<Store['updateVm']>[1]): Promise<Vm> {
  const updated = (await ctx.store.updateVm(vm.id, patch)) ?? vm;
  if (patch.status && patch.status !== vm.status) {
    await ctx.events.publish({
      type: 'vm.state_changed',
      data: { vm_id: vm.id, name: vm.name, worker_id: ctx.workerId, from: vm.status, to: patch.status, error: patch.error ?? null },
    });
  }
  return updated;
}
