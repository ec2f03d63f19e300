/**
 * The per-VM lifecycle the state-directory drivers share: a VM is `<stateDir>/<vmId>/`, `vm.json`
 * there means "the VM exists", and every operation on one VM runs under that VM's lock. The drivers
 * supply what differs: how a VM is (re)started, halted, destroyed, and what its status is.
 */
import { AetheriumError, notFound } from '../../domain/index.ts';
import type { VmRuntimeInfo, VmSpec } from '../../ports/vm-driver.ts';
import { KeyedMutex } from './keyed-mutex.ts';
import { abortError } from './process-tree.ts';
import { validateSpec, validateVmId } from './validation.ts';
import { StateDir, readJsonFile, removeTree } from './vm-dir.ts';

export abstract class StatefulDriver<Vm extends { spec: VmSpec }> {
  protected readonly state: StateDir;
  protected readonly mutex = new KeyedMutex();
  protected closed = false;

  constructor(
    stateDir: string,
    private readonly driverName: string,
  ) {
    this.state = new StateDir(stateDir);
  }

  /** Allocates and boots a VM that does not exist yet. Called under the VM's lock; cleans up after itself on failure. */
  protected abstract provision(spec: VmSpec, signal?: AbortSignal): Promise<VmRuntimeInfo>;
  /** Boots a stopped VM; returns the running one as it is. Called under the VM's lock. */
  protected abstract ensureRunning(id: string, vm: Vm, signal?: AbortSignal): Promise<VmRuntimeInfo>;
  /** Stops what runs of the VM, keeping its files. Called under the VM's lock; also for a missing VM by delete. */
  protected abstract halt(id: string): Promise<void>;
  abstract status(id: string): Promise<VmRuntimeInfo>;

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

  async list(): Promise<VmRuntimeInfo[]> {
    const out: VmRuntimeInfo[] = [];
    for (const id of await this.state.vmIds()) {
      const info = await this.status(id);
      if (info.state !== 'missing') out.push(info);
    }
    return out;
  }

  protected async readVm(id: string): Promise<Vm | null> {
    const record = await readJsonFile<Vm>(this.state.file(id, 'vm.json'));
    return record && typeof record === 'object' && record.spec ? record : null;
  }

  protected assertOpen(): void {
    if (this.closed) throw new AetheriumError('driver_unavailable', `the ${this.driverName} driver was closed`);
  }
}
