/** What every task handler on a worker can reach: its link to the cluster, its drivers, its log. */
import { AetheriumError, notFound, type Vm } from '../domain/index.ts';
import type { DriverName } from '../domain/index.ts';
import type { ExecChannels } from '../ports/exec-channels.ts';
import type { Logger } from '../ports/logger.ts';
import type { VmDriver } from '../ports/vm-driver.ts';
import type { VmReport, WorkerLink } from '../ports/worker-link.ts';

export interface WorkerContext {
  workerId: string;
  link: WorkerLink;
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
  if (!driver) {
    throw new AetheriumError(
      'driver_unavailable',
      `worker ${ctx.workerId} has no ${vm.driver ?? '(unset)'} driver for VM ${vm.name}`,
    );
  }
  return driver;
}

/** The task's VM, which the claim brought along; a task whose VM is gone cannot run. */
export function requireVm(vm: Vm | null, vmId: string | null): Vm {
  if (!vm) throw notFound('VM', vmId ?? '(none)');
  return vm;
}

/** Reports a change of one of this worker's VMs; the updated row, or the old one if it did not apply. */
export async function reportVm(ctx: WorkerContext, vm: Vm, report: VmReport): Promise<Vm | null> {
  return ctx.link.reportVm(ctx.workerId, vm.id, report);
}
