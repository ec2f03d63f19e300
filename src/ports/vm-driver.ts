/**
 * VmDriver: what a worker needs from a virtualisation technology. Every method is idempotent and
 * keyed by the VM id, so a retried or resumed task never starts a VM twice. The conformance suite
 * (test/conformance/driver.suite.ts) runs unchanged against every driver.
 */
import type { DriverMinimum, DriverName, ExecResult } from '../domain/index.ts';

export type Isolation = 'hardware-vm' | 'namespaces' | 'none';

export interface DriverInfo {
  name: DriverName;
  isolation: Isolation;
  /** Plain words for operators: what this driver does not protect against. */
  warnings: string[];
  /** The least a VM must ask for to boot on this driver (DRIVER_MINIMUMS); create refuses less. */
  min: DriverMinimum;
}

export interface VmSpec {
  id: string;
  name: string;
  vcpus: number;
  memory_mb: number;
  disk_gb: number;
  image?: string | null;
  env?: Record<string, string>;
}

export type VmRuntimeState = 'running' | 'stopped' | 'missing';

export interface VmRuntimeInfo {
  id: string;
  state: VmRuntimeState;
  pid?: number;
  /** Milliseconds from create to ready, when the driver measured it. */
  boot_ms?: number;
  /** When this call launched the VMM (QEMU, Firecracker, the sandbox's init); absent when it launched none. */
  launched_at?: Date;
}

export interface ExecRequest {
  command: string;
  args?: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** No default cap: a command runs until it exits unless a timeout is given. */
  timeout_ms?: number;
  signal?: AbortSignal;
  /** The whole input at once. */
  stdin?: string;
  /** Input as it comes (an interactive session): each chunk is written as it arrives; the end closes stdin. */
  stdinStream?: AsyncIterable<string | Buffer>;
  onStdout?: (chunk: string) => void;
  onStderr?: (chunk: string) => void;
}

export interface RecoverReport {
  /** VMs found still running and taken back under management. */
  recovered: string[];
  /** VMs the driver had records of but could not reattach to; their leftovers were cleaned. */
  lost: string[];
  /**
   * The worker recorded as the creator of each recovered VM, from a driver told its worker id.
   * A recovered VM missing here has no owner on record (it was made before owners were recorded).
   */
  owners?: Record<string, string>;
  /** VMs another worker created in the same state dir: neither recovered nor cleaned, left as they are. */
  foreign?: { id: string; owner: string }[];
  /**
   * Host processes marked as VMs of this driver's state dir (by command line, environment or
   * cgroup) that belong to no VM it knows, killed: a VM whose directory is gone, a stopped VM, or a
   * second VMM next to the one a VM's record names (left by an interrupted boot).
   */
  killed: KilledProcess[];
}

export interface KilledProcess {
  vm_id: string;
  pid: number;
  /** Plain words: why it was not ours to keep. */
  reason: string;
}

/** A VM that stopped without being asked to: its VMM or init exited, was killed, or ran out of memory. */
export interface VmExit {
  id: string;
  /** Plain words with the exit status, e.g. "the VM's init exited with signal SIGKILL". */
  reason: string;
  /** The exit code of the VM's init or VMM when it exited normally and the driver could learn it. */
  exit_code?: number | null;
  /** The signal that ended it ("SIGKILL"), when known. */
  signal?: string | null;
  /** True when the kernel's OOM killer ended it (the VM's memory cgroup counted the kill). */
  oom?: boolean;
  /** When the driver noticed (within a second or so of the death). */
  at: Date;
}

export type VmExitListener = (exit: VmExit) => void;

export interface VmDriver {
  readonly info: DriverInfo;
  /** Allocates and boots the VM; returns when it can execute commands. A second call is a no-op. */
  create(spec: VmSpec, signal?: AbortSignal): Promise<VmRuntimeInfo>;
  start(id: string): Promise<VmRuntimeInfo>;
  stop(id: string): Promise<void>;
  /** Stops the VM if needed and frees everything it allocated. Deleting a missing VM is fine. */
  delete(id: string): Promise<void>;
  status(id: string): Promise<VmRuntimeInfo>;
  list(): Promise<VmRuntimeInfo[]>;
  exec(id: string, request: ExecRequest): Promise<ExecResult>;
  /**
   * After an agent restart: reattach to VMs still running, report the ones that are lost, kill the
   * VM processes no VM owns. Never touches another worker's VMs.
   */
  recover(): Promise<RecoverReport>;
  /**
   * Calls `listener` once for every VM of this driver instance (created, started or recovered by
   * it) that dies on its own: never for a stop, delete or close asked of this instance, never
   * synchronously, never after close(). When it fires the VM is already `stopped` for status(),
   * exec refuses it with a conflict naming the reason, its files are kept: start() boots it
   * again, delete() frees it. Returns the function that unsubscribes. A listener that throws is
   * ignored. Subscribe before recover(), so that no death of a recovered VM goes unheard.
   */
  watch(listener: VmExitListener): () => void;
  /** Aborts the creates in progress (their VMs are torn down) and lets go of the VMs, which keep running. */
  close(): Promise<void>;
}
