/**
 * The per-VM lifecycle the state-directory drivers share: a VM is `<stateDir>/<vmId>/`, `vm.json`
 * there means "the VM exists", and every operation on one VM runs under that VM's lock. The drivers
 * supply what differs: how a VM is (re)started, halted, destroyed, recovered, and what its status is.
 *
 * A driver given an `owner` (the worker id) records it in every VM it creates, and leaves alone the
 * VMs another worker created: a state dir shared by two workers must not let one clean up, list or
 * report the other's VMs. VMs with no owner on record (made before owners were recorded) are
 * treated as this driver's, as they always were.
 */
import { AetheriumError, notFound } from '../../domain/index.ts';
import type { RecoverReport, VmRuntimeInfo, VmSpec } from '../../ports/vm-driver.ts';
import { KeyedMutex } from './keyed-mutex.ts';
import { abortError } from './process-tree.ts';
import { validateSpec, validateVmId } from './validation.ts';
import { StateDir, readJsonFile, removeTree } from './vm-dir.ts';

/** What recover() made of one VM directory. */
export type Recovered = 'running' | 'stopped' | 'lost';

export abstract class StatefulDriver<Vm extends { spec: VmSpec }> {
  protected readonly state: StateDir;
  protected readonly mutex = new KeyedMutex();
  protected closed = false;
  /** The worker id recorded in the VMs this driver creates; null: none recorded, every VM counts as ours. */
  protected readonly owner: string | null;

  constructor(
    stateDir: string,
    private readonly driverName: string,
    owner?: string,
  ) {
    this.state = new StateDir(stateDir);
    this.owner = owner ?? null;
  }

  /** Allocates and boots a VM that does not exist yet. Called under the VM's lock; cleans up after itself on failure. */
  protected abstract provision(spec: VmSpec, signal?: AbortSignal): Promise<VmRuntimeInfo>;
  /** Boots a stopped VM; returns the running one as it is. Called under the VM's lock. */
  protected abstract ensureRunning(id: string, vm: Vm, signal?: AbortSignal): Promise<VmRuntimeInfo>;
  /** Stops what runs of the VM, keeping its files. Called under the VM's lock; also for a missing VM by delete. */
  protected abstract halt(id: string): Promise<void>;
  abstract status(id: string): Promise<VmRuntimeInfo>;
  /**
   * After a restart, under the VM's lock: 'running' when it runs and is taken back, 'stopped' when it
   * was stopped on purpose (its files are kept), 'lost' when it cannot be reattached to — and then
   * its leftovers are removed.
   */
  protected abstract recoverVm(id: string): Promise<Recovered>;

  /** Removes the VM's files (and anything else it left on the host). */
  protected async destroy(id: string): Promise<void> {
    await removeTree(this.state.vmDir(id));
  }

  /** Idempotent: creating a VM that exists starts it if stopped, and never boots a second one. */
  async create(spec: VmSpec, signal?: AbortSignal): Promise<VmRuntimeInfo> {
    validateSpec(spec);
    if (signal?.aborted) throw abortError(signal);
    return this.mutex.run(spec.id, async () => {
      this.assertOpen();
      const existing = await this.readVm(spec.id);
      return existing ? this.ensureRunning(spec.id, existing, signal) : this.provision(spec, signal);
    });
  }

  async start(id: string): Promise<VmRuntimeInfo> {
    validateVmId(id);
    return this.mutex.run(id, async () => {
      this.assertOpen();
      const vm = await this.readVm(id);
      if (!vm) throw notFound('VM', id);
      return this.ensureRunning(id, vm);
    });
  }

  async stop(id: string): Promise<void> {
    validateVmId(id);
    await this.mutex.run(id, async () => {
      this.assertOpen();
      if (!(await this.readVm(id))) throw notFound('VM', id);
      await this.halt(id);
    });
  }

  async delete(id: string): Promise<void> {
    validateVmId(id);
    await this.mutex.run(id, async () => {
      this.assertOpen();
      await this.halt(id);
      await this.destroy(id);
    });
  }

  /** This driver's VMs; those another worker created in the same state dir are not listed. */
  async list(): Promise<VmRuntimeInfo[]> {
    const out: VmRuntimeInfo[] = [];
    for (const id of await this.state.vmIds()) {
      if (this.foreignOwner(await this.state.owner(id))) continue;
      const info = await this.status(id);
      if (info.state !== 'missing') out.push(info);
    }
    return out;
  }

  async recover(): Promise<RecoverReport> {
    this.assertOpen();
    const report: RecoverReport = { recovered: [], lost: [] };
    const owners: Record<string, string> = {};
    const foreign: { id: string; owner: string }[] = [];
    for (const id of await this.state.vmIds()) {
      await this.mutex.run(id, async () => {
        const owner = await this.state.owner(id);
        if (owner !== null && this.foreignOwner(owner)) {
          foreign.push({ id, owner }); // not ours to reattach to, nor to clean up
          return;
        }
        const outcome = await this.recoverVm(id);
        if (outcome === 'running') report.recovered.push(id);
        else if (outcome === 'lost') report.lost.push(id);
        if (outcome === 'running' && owner !== null) owners[id] = owner;
      });
    }
    return this.owner === null ? report : { ...report, owners, foreign };
  }

  /** Creates the VM's directory, with this driver's owner recorded in it. */
  protected makeVmDir(id: string, mode?: number): Promise<void> {
    return this.state.makeVmDir(id, this.owner, mode);
  }

  private foreignOwner(owner: string | null): boolean {
    return this.owner !== null && owner !== null && owner !== this.owner;
  }

  protected async readVm(id: string): Promise<Vm | null> {
    const record = await readJsonFile<Vm>(this.state.file(id, 'vm.json'));
    return record && typeof record === 'object' && record.spec ? record : null;
  }

  protected assertOpen(): void {
    if (this.closed) throw new AetheriumError('driver_unavailable', `the ${this.driverName} driver was closed`);
  }
}
