/**
 * The per-VM lifecycle the state-directory drivers share: a VM is `<stateDir>/<vmId>/`, `vm.json`
 * there means "the VM exists", and every operation on one VM runs under that VM's lock. The drivers
 * supply what differs: how a VM is (re)started, halted, destroyed, recovered, and what its status is.
 *
 * A driver given an `owner` (the worker id) records it in every VM it creates, and leaves alone the
 * VMs another worker created: a state dir shared by two workers must not let one clean up, list or
 * report the other's VMs. VMs with no owner on record (made before owners were recorded) are
 * treated as this driver's, as they always were.
 *
 * Shared here as well: the exit watcher (a VM that dies on its own is reported to `watch`
 * listeners; a stop or delete takes the VM off the watch before it kills anything), the creates in
 * progress (a delete or a close aborts them, and their own cleanup stops the half-booted VM), and
 * the sweep of recover() that kills the VM processes of this state dir that no VM owns.
 */
import { AetheriumError, type DriverName, conflict, notFound } from '../../domain/index.ts';
import type { KilledProcess, RecoverReport, VmExitListener, VmRuntimeInfo, VmSpec } from '../../ports/vm-driver.ts';
import { type VmProcess, killHostProcesses } from './host-processes.ts';
import { KeyedMutex } from './keyed-mutex.ts';
import { abortError } from './process-tree.ts';
import { sleep } from './procfs.ts';
import { validateMinimum, validateSpec, validateVmId } from './validation.ts';
import { ExitWatcher } from './vm-watch.ts';
import { StateDir, isDirectory, readJsonFile, removeTree } from './vm-dir.ts';

/** How long close() waits for the creates it aborted to have torn their VMs down. */
const CLOSE_WAIT_MS = 15_000;

interface CreateInProgress {
  controller: AbortController;
  done: Promise<unknown>;
}

/** What recover() made of one VM directory. */
export type Recovered = 'running' | 'stopped' | 'lost';

export abstract class StatefulDriver<Vm extends { spec: VmSpec }> {
  protected readonly state: StateDir;
  protected readonly mutex = new KeyedMutex();
  protected closed = false;
  /** The worker id recorded in the VMs this driver creates; null: none recorded, every VM counts as ours. */
  protected readonly owner: string | null;
  /** The running VMs of this instance, watched for deaths nobody asked for. */
  protected readonly watcher = new ExitWatcher();
  /** Creates in progress, by VM id: delete and close abort them. */
  private readonly creating = new Map<string, Set<CreateInProgress>>();

  constructor(
    stateDir: string,
    private readonly driverName: DriverName,
    owner?: string,
  ) {
    this.state = new StateDir(stateDir);
    this.owner = owner ?? null;
  }

  /** Allocates and boots a VM that does not exist yet. Called under the VM's lock; cleans up after itself on failure. */
  protected abstract provision(spec: VmSpec, signal?: AbortSignal): Promise<VmRuntimeInfo>;
  /** Boots a stopped VM; returns the running one as it is. Called under the VM's lock. */
  protected abstract ensureRunning(id: string, vm: Vm, signal?: AbortSignal): Promise<VmRuntimeInfo>;
  /**
   * Stops what runs of the VM, keeping its files. Called under the VM's lock; also for a missing VM
   * by delete. It first takes the VM off the exit watch: a VM halted was asked to stop.
   */
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

  /**
   * The host processes marked as VMs of this state dir (all of them, or those of `id`), found by
   * their command line or environment whether or not a record names them. None by default.
   */
  protected vmProcesses(_id?: string): VmProcess[] {
    return [];
  }

  /** The pids the VM's record names as its own while it runs (its init, its VMM): the ones recover() keeps. */
  protected async keptPids(_id: string): Promise<Set<number>> {
    return new Set();
  }

  watch(listener: VmExitListener): () => void {
    return this.watcher.subscribe(listener);
  }

  /**
   * Idempotent: creating a VM that exists starts it if stopped, and never boots a second one. A
   * delete of the VM, or a close of the driver, while it is being created aborts the create: the
   * driver tears the half-booted VM down, and the create rejects saying why.
   */
  async create(spec: VmSpec, signal?: AbortSignal): Promise<VmRuntimeInfo> {
    validateSpec(spec);
    validateMinimum(spec, this.driverName);
    if (signal?.aborted) throw abortError(signal);
    const controller = new AbortController();
    const both = signal ? AbortSignal.any([signal, controller.signal]) : controller.signal;
    const done = this.mutex.run(spec.id, async () => {
      this.assertOpen();
      if (controller.signal.aborted) throw controller.signal.reason as Error;
      const existing = await this.readVm(spec.id);
      return existing ? this.ensureRunning(spec.id, existing, both) : this.provision(spec, both);
    });
    const entry: CreateInProgress = { controller, done };
    let set = this.creating.get(spec.id);
    if (!set) this.creating.set(spec.id, (set = new Set()));
    set.add(entry);
    try {
      return await done;
    } catch (err) {
      // Aborted by a delete or a close, not by the caller: say that, not "the operation was aborted".
      if (controller.signal.aborted && !signal?.aborted) throw controller.signal.reason as Error;
      throw err;
    } finally {
      set.delete(entry);
      if (set.size === 0 && this.creating.get(spec.id) === set) this.creating.delete(spec.id);
    }
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
      this.watcher.untrack(id); // asked for: not a death
      await this.halt(id);
    });
  }

  async delete(id: string): Promise<void> {
    validateVmId(id);
    this.abortCreates(id, conflict(`VM ${JSON.stringify(id)} was deleted while it was being created`));
    await this.mutex.run(id, async () => {
      this.assertOpen();
      this.watcher.untrack(id); // asked for: not a death
      await this.halt(id);
      await this.destroy(id);
      this.watcher.forget(id);
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
    const report: RecoverReport = { recovered: [], lost: [], killed: [] };
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
    await this.sweepStrays(report.killed);
    return this.owner === null ? report : { ...report, owners, foreign };
  }

  /**
   * Kills the VM processes of this state dir that no VM owns: those of a VM whose directory is gone
   * (or whose record was never written), of a stopped VM, or beside the process a VM's record names.
   * Under each VM's lock, and never for a VM being created or another worker's.
   */
  protected async sweepStrays(killed: KilledProcess[]): Promise<void> {
    const byVm = new Map<string, VmProcess[]>();
    for (const p of this.vmProcesses()) byVm.set(p.vmId, [...(byVm.get(p.vmId) ?? []), p]);
    for (const [id, procs] of byVm) {
      await this.mutex.run(id, async () => {
        if (this.isCreating(id)) return;
        const owner = await this.state.owner(id);
        if (owner !== null && this.foreignOwner(owner)) return;
        const kept = await this.keptPids(id);
        const strays = procs.filter((p) => !kept.has(p.pid));
        if (strays.length === 0) return;
        const reason = await this.strayReason(id, kept);
        await killHostProcesses(strays);
        for (const p of strays) killed.push({ vm_id: id, pid: p.pid, reason });
      });
    }
  }

  protected async strayReason(id: string, kept: ReadonlySet<number>): Promise<string> {
    if (!(await isDirectory(this.state.vmDir(id))))
      return `VM ${id} is not in the state dir any more (deleted, or its create never finished)`;
    if (!(await this.readVm(id))) return `VM ${id} has no record (its create never finished)`;
    if (kept.size === 0) return `VM ${id} is stopped`;
    return `VM ${id} runs as pid ${[...kept].join(', ')}: this process was left beside it by an interrupted boot`;
  }

  /** close(): stop watching, abort the creates in progress and wait (a while) for their cleanup. */
  protected async shutdown(): Promise<void> {
    this.closed = true;
    this.watcher.stop();
    const pending: Promise<unknown>[] = [];
    for (const [id, set] of this.creating) {
      const reason = new AetheriumError(
        'driver_unavailable',
        `the ${this.driverName} driver was closed while VM ${JSON.stringify(id)} was being created`,
      );
      for (const entry of set) {
        entry.controller.abort(reason);
        pending.push(entry.done);
      }
    }
    if (pending.length > 0) await Promise.race([Promise.allSettled(pending), sleep(CLOSE_WAIT_MS)]);
  }

  /** A create of `id` is in progress in this instance (its VM may be half-booted: not a stray). */
  protected isCreating(id: string): boolean {
    return this.creating.has(id);
  }

  private abortCreates(id: string, reason: Error): void {
    for (const entry of this.creating.get(id) ?? []) entry.controller.abort(reason);
  }

  /** Exec on a VM that is not running: a conflict, naming how it died when it died on its own. */
  protected notRunning(id: string): AetheriumError {
    const exit = this.watcher.lastExit(id);
    if (exit) {
      return conflict(
        `VM ${JSON.stringify(id)} is not running: it stopped on its own at ${exit.at.toISOString()} (${exit.reason}); start it again or delete it`,
        { reason: exit.reason, ...(exit.oom ? { oom: true } : {}) },
      );
    }
    return conflict(`VM ${JSON.stringify(id)} is stopped; start it before running commands`);
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
