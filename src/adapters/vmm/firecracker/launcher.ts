/**
 * The one seam between the driver and the `firecracker` (or `jailer`) process: start it, find it
 * again from a pid file, tell whether it is alive, signal it. The real launcher spawns the binary;
 * tests inject one that serves the API socket from a spec-validating fake instead.
 */
import { spawn } from 'node:child_process';
import { closeSync, constants, openSync, accessSync } from 'node:fs';
import { basename } from 'node:path';
import { AetheriumError } from '../../../domain/index.ts';
import { type VmProcess, findVmProcesses, vmIdOfPath } from '../host-processes.ts';
import { isProcessAlive, readCmdline, readProcStat, sleep } from '../procfs.ts';
import { type ExitStatus, started } from '../vm-watch.ts';
import { findOnPath } from '../which.ts';

export interface LaunchRequest {
  vmId: string;
  /** Absolute path of the binary to run (firecracker, or jailer when jailed). */
  file: string;
  args: string[];
  /** Host path of the API socket the process will create. */
  apiSocketPath: string;
  /** Host directory Firecracker's paths are relative to: the jail root, or `/` without the jailer. */
  rootDir: string;
  /** Where stdout/stderr go (the guest's serial console among them). */
  logFile: string;
}

/** What the driver records in the VM's pid file. */
export interface VmmRecord {
  pid: number;
  /** /proc/<pid>/stat start time: with the pid it names one process for good. */
  start_time: string | null;
  api_socket: string;
  started_at: string;
  boot_ms?: number;
}

export interface VmmProcess {
  readonly pid: number;
  readonly startTime: string | null;
  alive(): boolean;
  /** Signals the process; a process already gone is fine. */
  kill(signal: NodeJS.Signals): void;
  /** How it ended, when this launcher started it (a child); absent for a process found again by attach(). */
  exited?: Promise<ExitStatus>;
}

export interface FirecrackerLauncher {
  /** Fails fast, with a clear message, when this host cannot run Firecracker at all. */
  preflight(needs: { firecracker: string; jailer?: string }): Promise<void>;
  launch(request: LaunchRequest): Promise<VmmProcess>;
  /** The process of a pid file, when it is still alive and still ours; null otherwise. */
  attach(record: VmmRecord, vmId: string): VmmProcess | null;
  /**
   * The VMM processes on the host whose command line places them in `stateDir` (their API socket
   * is `<stateDir>/<id>/api.sock`), recorded or not: what recover() kills when no VM owns them.
   * Jailed VMMs see only their chroot and cannot be told apart this way.
   */
  vmProcesses?(stateDir: string): VmProcess[];
}

export class ProcessLauncher implements FirecrackerLauncher {
  constructor(private readonly kvmPath: string = '/dev/kvm') {}

  async preflight(needs: { firecracker: string; jailer?: string }): Promise<void> {
    const problems: string[] = [];
    try {
      accessSync(this.kvmPath, constants.R_OK | constants.W_OK);
    } catch {
      problems.push(
        `${this.kvmPath} is missing or not read/writable (KVM is needed: bare metal or nested virtualisation)`,
      );
    }
    if (!findOnPath(needs.firecracker))
      problems.push(
        `no firecracker binary at ${JSON.stringify(needs.firecracker)} (install it on PATH or set the driver's firecrackerBinary)`,
      );
    if (needs.jailer !== undefined && !findOnPath(needs.jailer))
      problems.push(`no jailer binary at ${JSON.stringify(needs.jailer)}`);
    if (problems.length > 0)
      throw new AetheriumError(
        'driver_unavailable',
        `the firecracker driver cannot run on this host: ${problems.join('; ')}`,
      );
  }

  async launch(request: LaunchRequest): Promise<VmmProcess> {
    const log = openSync(request.logFile, 'a', 0o600);
    try {
      const child = spawn(request.file, request.args, { detached: true, stdio: ['ignore', log, log], cwd: '/' });
      const { pid, exited } = await started(child, request.file);
      let startTime: string | null = null;
      for (let i = 0; i < 10 && startTime === null; i++) {
        startTime = readProcStat(pid)?.startTime ?? null;
        if (startTime === null) await sleep(5);
      }
      return { ...processHandle(pid, startTime), exited };
    } finally {
      closeSync(log);
    }
  }

  vmProcesses(stateDir: string): VmProcess[] {
    return findVmProcesses((argv) => {
      if (!/firecracker/.test(basename(argv[0] ?? ''))) return null;
      const at = argv.indexOf('--api-sock');
      return at < 0 ? null : vmIdOfPath(stateDir, argv[at + 1] ?? '', 'api.sock');
    });
  }

  attach(record: VmmRecord, vmId: string): VmmProcess | null {
    if (!Number.isInteger(record.pid) || record.pid <= 1) return null;
    if (!isProcessAlive(record.pid, record.start_time ?? undefined)) return null;
    const argv = readCmdline(record.pid);
    if (!argv || argv.length === 0) return null;
    // The jailer execs firecracker in place, so the process is firecracker either way.
    const name = basename(argv[0] ?? '');
    if (!/firecracker|jailer/.test(name)) return null;
    if (!argv.some((a) => a.includes(vmId) || a.includes(record.api_socket) || a === '/run/firecracker.socket'))
      return null;
    return processHandle(record.pid, record.start_time);
  }
}

function processHandle(pid: number, startTime: string | null): VmmProcess {
  return {
    pid,
    startTime,
    alive: () => isProcessAlive(pid, startTime ?? undefined),
    kill: (signal) => {
      if (!isProcessAlive(pid, startTime ?? undefined)) return;
      try {
        process.kill(pid, signal);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
      }
    },
  };
}
