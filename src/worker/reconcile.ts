/**
 * After a restart, the worker compares what its drivers really run with what the control plane
 * believes, and corrects the record: the host is the truth about which VMs exist.
 * - running in the record and on the host: recovered, nothing to do;
 * - in the record but gone from the host: reported lost (failed, capacity returned);
 * - on the host, not assigned to this worker (deleted, or moved elsewhere), and created by this
 *   worker: an orphan, deleted;
 * - on the host but not provably this worker's (another worker's, in a state dir they share, or
 *   made before drivers recorded their owner): left alone, with a warning. Deleting a VM that is
 *   not ours would kill a VM the control plane rightly calls running on its own worker;
 * - `unknown` in the record (this worker was unreachable) and on the host: running again;
 * - `lost` in the record (this worker stayed away past `worker.lost_after`, its capacity went back)
 *   or `failed` (a create the control plane gave up on while this worker was away) and still
 *   running on the host: stopped and removed, so that nothing runs that is not counted.
 */
import { errorMessage } from '../domain/index.ts';
import type { VmDriver } from '../ports/vm-driver.ts';
import type { WorkerContext } from './context.ts';
import { reportVm } from './context.ts';

export interface ReconcileReport {
  recovered: string[];
  lost: string[];
  orphans: string[];
  /** VMs on the host that are neither assigned to nor created by this worker: not touched. */
  foreign: string[];
  /** VMs back from `unknown` to `running`: this worker was unreachable, and they kept running. */
  returned: string[];
  /** VMs the control plane no longer counts (lost, or failed) that still ran here: stopped and removed. */
  stopped: string[];
}

interface OnHost {
  driver: VmDriver;
  /** The worker that created the VM, as its driver recorded it; null when none is recorded. */
  owner: string | null;
}

export async function reconcile(ctx: WorkerContext): Promise<ReconcileReport> {
  const report: ReconcileReport = { recovered: [], lost: [], orphans: [], foreign: [], returned: [], stopped: [] };
  const onHost = new Map<string, OnHost>();
  /** VMs the drivers left alone because another worker created them: id → that worker. */
  const others = new Map<string, string>();
  for (const [name, driver] of ctx.drivers) {
    try {
      const recovered = await driver.recover();
      for (const id of recovered.recovered) onHost.set(id, { driver, owner: recovered.owners?.[id] ?? null });
      for (const vm of recovered.foreign ?? []) others.set(vm.id, vm.owner);
      report.lost.push(...recovered.lost);
      for (const killed of recovered.killed) {
        ctx.log.warn({ driver: name, ...killed }, 'killed a VM process that belongs to no VM of this worker');
      }
    } catch (err) {
      ctx.log.warn({ driver: name, err: errorMessage(err) }, 'driver could not recover its VMs');
    }
  }

  const { vms: known } = await ctx.link.assignments(ctx.workerId);
  const knownIds = new Set(known.map((vm) => vm.id));
  for (const vm of known) {
    // A VM still being created is left to its create task, which is resumed right after this.
    if (vm.status === 'created' || vm.status === 'starting') continue;
    const here = onHost.get(vm.id);
    if (vm.status === 'lost' || vm.status === 'failed') {
      // Its capacity went back when it was declared lost or failed: running on, it would be
      // counted nowhere (or twice, once placed again). A VM that died by itself is not running.
      if (here) {
        await here.driver.delete(vm.id);
        report.stopped.push(vm.id);
        ctx.log.warn(
          { vm_id: vm.id, status: vm.status },
          `a VM the control plane holds ${vm.status} still ran here: stopped`,
        );
      }
      continue;
    }
    if (here) {
      report.recovered.push(vm.id);
      if (vm.status === 'stopping') await reportVm(ctx, vm, { kind: 'status', to: 'running' });
      if (vm.status === 'unknown') {
        await reportVm(ctx, vm, { kind: 'status', to: 'running', from: ['unknown'], error: null });
        report.returned.push(vm.id);
      }
    } else if (others.has(vm.id)) {
      // Ours in the record, another worker's on the host: neither side can be trusted to say it is gone.
      ctx.log.warn(
        { vm_id: vm.id, created_by: others.get(vm.id) },
        'a VM assigned to this worker was created by another worker in the same state dir: left as it is',
      );
    } else if (vm.status === 'running' || vm.status === 'stopping' || vm.status === 'unknown') {
      const when = vm.status === 'unknown' ? 'came back' : 'restarted';
      await reportVm(ctx, vm, { kind: 'lost', error: `lost: the VM was not running when its worker ${when}` });
      if (!report.lost.includes(vm.id)) report.lost.push(vm.id);
    }
  }
  for (const [id, { driver, owner }] of onHost) {
    if (knownIds.has(id)) continue;
    if (owner === ctx.workerId) {
      await driver.delete(id);
      report.orphans.push(id);
    } else {
      report.foreign.push(id);
      ctx.log.warn(
        { vm_id: id, driver: driver.info.name, created_by: owner },
        owner === null
          ? 'a VM on this host is not assigned to this worker and has no owner on record: left alone (delete it by hand if it is garbage)'
          : 'a VM on this host is not assigned to this worker and another worker created it: left alone',
      );
    }
  }
  for (const [id, owner] of others) {
    if (knownIds.has(id)) continue;
    report.foreign.push(id);
    ctx.log.warn(
      { vm_id: id, created_by: owner },
      "another worker's VM is in this worker's state dir: left alone (give each worker its own worker.drivers.state_dir)",
    );
  }
  return report;
}
