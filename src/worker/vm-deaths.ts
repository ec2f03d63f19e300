/**
 * VMs that die by themselves: a driver notices (its init or VMM exited, the OOM killer struck) and
 * the worker reports the VM `failed` with the reason. A report that cannot reach the control plane
 * (a partition, a restarting replica) is kept and sent again after the next heartbeat, so a death
 * is never forgotten; the control plane's compare-and-set makes a report sent twice harmless.
 */
import { AetheriumError, type DriverName, errorMessage } from '../domain/index.ts';
import type { VmDriver, VmExit } from '../ports/vm-driver.ts';
import type { WorkerContext } from './context.ts';

export class VmDeaths {
  private readonly pending = new Map<string, VmExit>();

  constructor(
    private readonly ctx: WorkerContext,
    private readonly counted: (driver: DriverName, oom: boolean) => void,
  ) {}

  /** Watches every driver; answers the function that stops watching. */
  watch(drivers: ReadonlyMap<DriverName, VmDriver>): () => void {
    const stops = [...drivers].map(([name, driver]) =>
      driver.watch((exit: VmExit) => {
        this.counted(name, exit.oom === true);
        this.ctx.log.warn({ vm_id: exit.id, driver: name, reason: exit.reason }, 'a VM died by itself');
        this.pending.set(exit.id, exit);
        void this.flush();
      }),
    );
    return () => {
      for (const stop of stops) stop();
    };
  }

  /** Sends the deaths not reported yet; keeps those the control plane could not be told of. */
  async flush(): Promise<void> {
    for (const [id, exit] of [...this.pending]) {
      try {
        await this.ctx.link.reportVm(this.ctx.workerId, id, { kind: 'died', reason: exit.reason });
        this.pending.delete(id);
      } catch (err) {
        // The VM moved on (deleted, held elsewhere): nothing left to report.
        if (err instanceof AetheriumError && (err.code === 'forbidden' || err.code === 'not_found')) {
          this.pending.delete(id);
          continue;
        }
        this.ctx.log.warn({ vm_id: id, err: errorMessage(err) }, 'could not report a dead VM yet; will retry');
        return;
      }
    }
  }

  get unreported(): number {
    return this.pending.size;
  }
}
