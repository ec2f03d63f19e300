/**
 * After a restart, the worker compares what its drivers really run with what the control plane
 * believes, and corrects the record: the host is the truth about which VMs exist.
 * - running in the record and on the host: recovered, nothing to do;
 * - in the record but gone from the host: reported lost (failed, capacity returned);
 * - on the host but not assigned to this worker (deleted, or moved elsewhere): an orphan, deleted.
 */
import { errorMessage } from '../domain/index.ts';
import type { VmDriver } from '../ports/vm-driver.ts';
import type { WorkerContext } from './context.ts';
import { reportVm } from './context.ts';

export interface ReconcileReport {
  recovered: string[];
  lost: string[];
  orphans: string[];
}

export async function reconcile(ctx: WorkerContext): Promise<ReconcileReport> {
  const report: ReconcileReport = { recovered: [], lost: [], orphans: [] };
  const onHost = new Map<string, VmDriver>();
  for (const [name, driver] of ctx.drivers) {
    try {
      const recovered = await driver.recover();
      for (const id of recovered.recovered) onHost.set(id, driver);
      report.lost.push(...recovered.lost);
    } catch (err) {
      ctx.log.warn({ driver: name, err: errorMessage(err) }, 'driver could not recover its VMs');
    }
  }

  const { vms: known } = await ctx.link.assignments(ctx.workerId);
  const knownIds = new Set(known.map((vm) => vm.id));
  for (const vm of known) {
    // A VM still being created is left to its create task, which is resumed right after this.
    if (vm.status === 'created' || vm.status === 'starting') continue;
    if (onHost.has(vm.id)) {
      report.recovered.push(vm.id);
      if (vm.status === 'stopping') await reportVm(ctx, vm, { kind: 'status', to: 'running' });
    } else if (vm.status === 'running' || vm.status === 'stopping') {
      await reportVm(ctx, vm, { kind: 'lost', error: 'lost: the VM was not running when its worker restarted' });
      if (!report.lost.includes(vm.id)) report.lost.push(vm.id);
    }
  }
  for (const [id, driver] of onHost) {
    if (knownIds.has(id)) continue;
    await driver.delete(id);
    report.orphans.push(id);
  }
  return report;
}
