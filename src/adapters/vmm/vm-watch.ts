/**
 * Noticing VMs that die on their own. Each driver hands the watcher one `WatchedVm` per running VM
 * (after a boot, or a recover); the watcher polls `alive()` on a timer and on demand (`poke`: a child
 * exit event, a closed QMP connection), and once a VM is found dead asks the driver to `describe`
 * the death and tells every listener. A stop or delete takes the VM off the watch *before* it kills
 * anything, so what the worker asked for is never reported as a death.
 *
 * Polling is the one mechanism that works for every VM: after a worker restart no VMM is a child of
 * the worker any more, so exit events cannot be relied on. A poll is one read of /proc/<pid>/stat.
 */
import type { ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { AetheriumError } from '../../domain/index.ts';
import type { VmExit, VmExitListener } from '../../ports/vm-driver.ts';

/** How often a VM is looked at when nothing told the watcher to look: deaths are heard within this. */
export const WATCH_INTERVAL_MS = 500;
/** After a poke, look again a little later: a VMM that closed its sockets may still be exiting. */
const POKE_RECHECKS_MS = [50, 200];

export type ExitDetails = Omit<VmExit, 'id' | 'at'>;

export interface WatchedVm {
  /** Cheap and synchronous: is the VM's init (or VMM) still there? */
  alive(): boolean;
  /** On every poll that finds it alive: e.g. follow the memory cgroup's OOM-kill counter. */
  sample?(): void;
  /** Once `alive()` turned false: what happened, in words. */
  describe(): Promise<ExitDetails>;
  /** The watch ended (the death was found, or a stop asked for): release connections and listeners. */
  dispose?(): void;
}

export class ExitWatcher {
  private readonly listeners = new Set<VmExitListener>();
  private readonly vms = new Map<string, WatchedVm>();
  /** Deaths being described: untracking the VM meanwhile (a stop, a delete) cancels the report. */
  private readonly describing = new Map<string, symbol>();
  private readonly exits = new Map<string, VmExit>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly intervalMs = WATCH_INTERVAL_MS) {}

  subscribe(listener: VmExitListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Watches `vm` as the running VM `id` (replacing what was watched for it); forgets its last death. */
  track(id: string, vm: WatchedVm): void {
    if (this.stopped) return;
    this.untrack(id);
    this.exits.delete(id);
    this.vms.set(id, vm);
    this.timer ??= setInterval(() => this.tick(), this.intervalMs).unref();
  }

  /** A stop, delete or close is under way: whatever happens to the VM now is not a death. */
  untrack(id: string): void {
    this.describing.delete(id);
    const vm = this.vms.get(id);
    if (!vm) return;
    this.vms.delete(id);
    vm.dispose?.();
    this.idle();
  }

  /** The VM is gone for good (deleted): forget its last death too. */
  forget(id: string): void {
    this.untrack(id);
    this.exits.delete(id);
  }

  /** Something suggests the VM may have died: look now, and again shortly. */
  poke(id: string): void {
    this.check(id);
    for (const ms of POKE_RECHECKS_MS) setTimeout(() => this.check(id), ms).unref();
  }

  /** The last death noticed of `id` since it was last started, if any. */
  lastExit(id: string): VmExit | undefined {
    return this.exits.get(id);
  }

  isTracked(id: string): boolean {
    return this.vms.has(id);
  }

  /** close(): nothing is watched or reported any more. */
  stop(): void {
    this.stopped = true;
    for (const id of [...this.vms.keys()]) this.untrack(id);
    this.describing.clear();
    this.listeners.clear();
  }

  private tick(): void {
    for (const id of [...this.vms.keys()]) this.check(id);
  }

  private check(id: string): void {
    const vm = this.vms.get(id);
    if (!vm) return;
    let alive: boolean;
    try {
      alive = vm.alive();
    } catch {
      alive = true; // cannot tell: look again at the next tick rather than report a death
    }
    if (alive) {
      try {
        vm.sample?.();
      } catch {
        // a sample is a hint for describe(), never a reason to stop watching
      }
      return;
    }
    this.vms.delete(id);
    vm.dispose?.();
    this.idle();
    const token = Symbol(id);
    this.describing.set(id, token);
    void vm
      .describe()
      .catch(
        (err: unknown): ExitDetails => ({
          reason: `the VM stopped on its own (its exit could not be described: ${(err as Error).message})`,
        }),
      )
      .then((details) => {
        if (this.describing.get(id) !== token || this.stopped) return;
        this.describing.delete(id);
        const exit: VmExit = { id, ...details, at: new Date() };
        this.exits.set(id, exit);
        for (const listener of [...this.listeners]) {
          try {
            listener(exit);
          } catch {
            // one listener's failure must not keep the others from hearing it
          }
        }
      });
  }

  private idle(): void {
    if (this.vms.size > 0 || !this.timer) return;
    clearInterval(this.timer);
    this.timer = null;
  }
}

/** How a process ended, as a parent (or a status file) tells it. */
export interface ExitStatus {
  code: number | null;
  signal: string | null;
}

/**
 * Waits until a detached child (a VM's init or VMM) has started, then lets it go (`unref`): the
 * driver outlives it as its parent only. Answers its pid and how it will end; rejects with
 * `driver_failed`, naming `what`, when it cannot start.
 */
export async function started(
  child: ChildProcess,
  what: string,
): Promise<{ pid: number; exited: Promise<ExitStatus> }> {
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (err) => reject(new AetheriumError('driver_failed', `cannot start ${what}: ${err.message}`)));
  });
  child.unref();
  return { pid: child.pid as number, exited };
}

/**
 * A shell-style status (128 + n for "killed by signal n", as bwrap passes its child's on) as a code
 * or a signal.
 */
export function fromShellStatus(status: number): ExitStatus {
  if (status > 128 && status < 128 + 65) {
    const name = signalName(status - 128);
    if (name) return { code: null, signal: name };
  }
  return { code: status, signal: null };
}

export function signalName(n: number): string | null {
  for (const [name, value] of Object.entries(osConstants.signals)) if (value === n) return name;
  return null;
}

/** "the VM's init exited with signal SIGKILL", "… with exit code 3", or unknown with the why. */
export function exitWords(what: string, status: ExitStatus | null, unknownWhy: string): ExitDetails {
  if (!status || (status.code === null && status.signal === null))
    return { reason: `${what} is gone; its exit status is unknown (${unknownWhy})`, exit_code: null, signal: null };
  if (status.signal)
    return { reason: `${what} exited with signal ${status.signal}`, exit_code: null, signal: status.signal };
  return { reason: `${what} exited with exit code ${status.code}`, exit_code: status.code, signal: null };
}

/** The words of an OOM kill: "out of memory: killed by the kernel's OOM killer (limit 64 MB)". */
export function oomWords(limitMb: number | null, status: ExitStatus | null): ExitDetails {
  const limit = limitMb === null ? '' : ` (limit ${limitMb} MB)`;
  return {
    reason: `out of memory: killed by the kernel's OOM killer${limit}`,
    exit_code: null,
    signal: status?.signal ?? 'SIGKILL',
    oom: true,
  };
}
