/**
 * VmDriver: what a worker needs from a virtualisation technology. Every method is idempotent and
 * keyed by the VM id, so a retried or resumed task never starts a VM twice. The conformance suite
 * (test/conformance/driver.suite.ts) runs unchanged against every driver.
 */
import type { DriverName, ExecResult } from '../domain/index.ts';

export type Isolation = 'hardware-vm' | 'namespaces' | 'none';

export interface DriverInfo {
  name: DriverName;
  isolation: Isolation;
  /** Plain words for operators: what this driver does not protect against. */
  warnings: string[];
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
}

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
  /** After an agent restart: reattach to VMs still running, report the ones that are lost. Never touches another worker's VMs. */
  recover(): Promise<RecoverReport>;
  close(): Promise<void>;
}
