/**
 * After a restart, the worker compares what its drivers really run with what the store believes,
 * and corrects the store: the host is the truth about which VMs exist.
 * - running in the store and on the host: recovered, nothing to do;
 * - in the store but gone from the host: marked failed, capacity returned;
 * - on the host but unknown to the store (or deleted there): an orphan, deleted.
 */
import { errorMessage } from '../domain/index.ts';
import type { WorkerContext } from './context.ts';
import { setVmStatus } from './context.ts';

export interface ReconcileReport {
  recovered: string[];
  lost: string[];
  orphans: string[];
}

export async function reconcile(ctx: WorkerContext): Promise<ReconcileReport> {
  const report: ReconcileReport = { recovered: [], lost: [], orphans: [] };
  const onHost = new Map<string, string>();
  for (const [name, driver] of ctx.drivers) {
    try {
      const recovered = await driver.recover();
      for (const id of recovered.recovered) onHost.set(id, name);
      report.lost.push(...recovered.lost);
    } catch (err) {
      ctx.log.warn({ driver: name, err: errorMessage(err) }, 'driver could not recover its VMs');
    }
  }

  const known = await ctx.store.listVms({ worker_id: ctx.workerId });
  const knownIds = new Set(known.map((vm) => vm.id));
  for (const vm of known) {
    // A VM still being created is left to its create task, which is resumed right after this.
    if (vm.status === 'created' || vm.status === 'starting') continue;
    if (onHost.has(vm.id)) {
      report.recovered.push(vm.id);
      if (vm.status === 'stopping') await setVmStatus(ctx, vm, { status: 'running' });
    } else if (vm.status === 'running' || vm.status === 'stopping') {
      await setVmStatus(ctx, vm, { status: 'failed', error: 'lost: the VM was not running when its worker restarted' });
      await ctx.store.releaseVm(vm.id);
      if (!report.lost.includes(vm.id)) report.lost.push(vm.id);
    }
  }
  for (const [id, name] of onHost) {
    if (knownIds.has(id)) continue;
    const vm = await ctx.store.getVm(id);
    if (vm && !vm.deleted_at && vm.worker_id === ctx.workerId) continue;
    await ctx.drivers.get(name as never)?.delete(id);
    report.orphans.push(id);
  }
  return report;
}
