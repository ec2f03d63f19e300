/**
 * The `process` driver: a "VM" is a directory, `<stateDir>/<vmId>/root`, and its commands are plain
 * host processes started there (like Nomad's raw_exec). Nothing is isolated and nothing is limited:
 * a command sees and can touch everything the agent's user can. Meant for development and for hosts
 * where nothing better runs, and only when the operator asks for it.
 *
 * A running VM has an init of sorts: a shell started detached in its root directory, named by its
 * command line (`sh -c … aetherium-vm <vm dir>`), that waits as long as the VM's directory exists.
 * It does nothing but stand for the VM: it is the pid status() reports, the process whose death (a
 * kill, the OOM killer) means the VM died, and what recover() finds again after a restart, or kills
 * when no VM owns it. It outlives the agent, as VMs do, but not its directory: a state dir removed
 * without its VMs being deleted (a test, an operator's rm -r) leaves no process behind for long.
 *
 * Files of a VM, in `<stateDir>/<vmId>/`:
 *   owner.json  the worker that created it (see vm-lifecycle.ts)
 *   vm.json     the spec; its presence means "the VM exists"
 *   init.json   the running init (pid, start time); removed by stop
 *   stopped     present while the VM is stopped on purpose (also what VMs made before init.json say)
 *   root/       the commands' default working directory and HOME
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { basename, isAbsolute, resolve } from 'node:path';
import { AetheriumError, DRIVER_MINIMUMS, invalid, notFound } from '../../../domain/index.ts';
import type { ExecResult } from '../../../domain/index.ts';
import type { DriverInfo, ExecRequest, VmDriver, VmRuntimeInfo, VmSpec } from '../../../ports/vm-driver.ts';
import { type VmProcess, findVmProcesses, killHostProcesses, vmIdOfPath } from '../host-processes.ts';
import { CommandRegistry, type RunningCommand, abortError, killProcessGroup, startCommand } from '../process-tree.ts';
import { isProcessAlive, readCmdline, readProcStat, sleep, waitForExit } from '../procfs.ts';
import { DEFAULT_PATH, commandEnv, validateExecRequest, validateVmId } from '../validation.ts';
import { type Recovered, StatefulDriver } from '../vm-lifecycle.ts';
import { isDirectory, readJsonFile, removeTree, writeJsonAtomic } from '../vm-dir.ts';
import { type ExitStatus, exitWords, started } from '../vm-watch.ts';
import { findOnPath } from '../which.ts';

export interface ProcessDriverOptions {
  stateDir: string;
  /** The worker id recorded in the VMs it creates; another worker's VMs in the same dir are left alone. */
  owner?: string;
}

/** The init's $0: with the VM's directory after it, what marks the process as this VM's init. */
export const INIT_NAME = 'aetherium-vm';
/** Waits while the VM's directory exists (looked at every 5 s); `sleep` in the background so that a kill of the group ends it at once. */
const INIT_SCRIPT = 'while [ -d "$1" ]; do sleep 5 & wait $!; done';

interface VmRecord {
  spec: VmSpec;
  created_at: string;
  boot_ms: number;
}

interface InitRecord {
  pid: number;
  start_time: string;
  started_at: string;
}

export class ProcessDriver extends StatefulDriver<VmRecord> implements VmDriver {
  readonly info: DriverInfo;
  private readonly commands = new CommandRegistry();
  private readonly sh = findOnPath('sh') ?? '/bin/sh';

  constructor(options: ProcessDriverOptions) {
    super(options.stateDir, 'process', options.owner);
    this.info = {
      name: 'process',
      isolation: 'none',
      warnings: [
        `NO ISOLATION: commands run as plain host processes, as the agent's own user (${userLabel()}), with full access to the host's files, network and processes.`,
        'No limits: vcpus, memory_mb and disk_gb are recorded but not enforced.',
        "A command's whole process group is killed when it exits, times out or is aborted; a process that starts its own session escapes that.",
        'Use it for development only, or where a workload is fully trusted.',
      ],
      min: DRIVER_MINIMUMS.process,
    };
  }

  /** A new VM: allocate and boot it (under its lock, after the base checked it does not exist). */
  protected override async provision(spec: VmSpec, signal?: AbortSignal): Promise<VmRuntimeInfo> {
    const id = spec.id;
    const started = performance.now();
    await this.state.ensure();
    await this.halt(id); // an init left by an interrupted create
    await removeTree(this.state.vmDir(id));
    try {
      await this.makeVmDir(id, 0o755);
      await mkdir(this.state.rootDir(id), { mode: 0o755 });
      if (signal?.aborted) throw abortError(signal);
      const init = await this.startInit(id);
      const record: VmRecord = {
        spec: { ...spec, env: { ...(spec.env ?? {}) } },
        created_at: new Date().toISOString(),
        boot_ms: Math.round(performance.now() - started),
      };
      if (signal?.aborted) throw abortError(signal);
      await writeJsonAtomic(this.state.file(id, 'vm.json'), record);
      return { id, state: 'running', pid: init.pid, boot_ms: record.boot_ms };
    } catch (err) {
      await this.halt(id).catch(() => {});
      await removeTree(this.state.vmDir(id)).catch(() => {});
      throw err;
    }
  }

  async status(id: string): Promise<VmRuntimeInfo> {
    validateVmId(id);
    const vm = await this.readVm(id);
    if (!vm) return { id, state: 'missing' };
    const init = await this.liveInit(id);
    return init ? { id, state: 'running', pid: init.pid, boot_ms: vm.boot_ms } : { id, state: 'stopped' };
  }

  async exec(id: string, request: ExecRequest): Promise<ExecResult> {
    validateVmId(id);
    validateExecRequest(request);
    if (request.signal?.aborted) throw abortError(request.signal);
    // Started under the VM's lock, so that a stop or delete cannot slip between the check and the
    // start; awaited outside it, so that commands run concurrently.
    const command: RunningCommand = await this.mutex.run(id, async () => {
      this.assertOpen();
      const vm = await this.readVm(id);
      if (!vm) throw notFound('VM', id);
      if (!(await this.liveInit(id))) throw this.notRunning(id);
      const root = this.state.rootDir(id);
      const cwd = request.cwd === undefined ? root : isAbsolute(request.cwd) ? request.cwd : resolve(root, request.cwd);
      if (!(await isDirectory(cwd)))
        throw invalid(`cwd ${JSON.stringify(request.cwd)} is not a directory (resolved to ${cwd})`);
      const running = startCommand({
        file: request.command,
        args: request.args ?? [],
        env: commandEnv({ HOME: root }, vm.spec.env, request.env),
        cwd,
        stdin: request.stdin,
        stdinStream: request.stdinStream,
        timeout_ms: request.timeout_ms,
        signal: request.signal,
        onStdout: request.onStdout,
        onStderr: request.onStderr,
        killGroupOnExit: true,
      });
      this.commands.track(id, running);
      return running;
    });
    return command.result;
  }

  /**
   * A VM whose init still runs is taken back; one stopped on purpose stays stopped; one made before
   * VMs had an init gets one now. A VM whose init died meanwhile is lost, like a sandbox whose init did.
   */
  protected override async recoverVm(id: string): Promise<Recovered> {
    const vm = await this.readVm(id);
    if (!vm) {
      await this.halt(id);
      await removeTree(this.state.vmDir(id)); // a create that never finished
      return 'lost';
    }
    const record = await readJsonFile<InitRecord>(this.state.file(id, 'init.json'));
    const init = record && this.isOurInit(id, record) ? record : null;
    if (init) {
      this.watchInit(id, init);
      return 'running';
    }
    if (record) {
      await this.halt(id);
      await removeTree(this.state.vmDir(id));
      return 'lost';
    }
    if (this.isStopped(id)) return 'stopped';
    await this.startInit(id);
    return 'running';
  }

  /** Kills the commands still running (nothing could reattach to them after a restart); the inits keep running. */
  async close(): Promise<void> {
    await this.shutdown();
    await this.commands.killAll();
  }

  protected override async ensureRunning(id: string, vm: VmRecord): Promise<VmRuntimeInfo> {
    const live = await this.liveInit(id);
    if (live) return { id, state: 'running', pid: live.pid, boot_ms: vm.boot_ms };
    const init = await this.startInit(id);
    await rm(this.state.file(id, 'stopped'), { force: true });
    return { id, state: 'running', pid: init.pid, boot_ms: vm.boot_ms };
  }

  /** Kills the init and the commands; marks the VM stopped on purpose when it still exists. */
  protected override async halt(id: string): Promise<void> {
    this.watcher.untrack(id); // whatever halts a VM was asked to: not a death
    const record = await readJsonFile<InitRecord>(this.state.file(id, 'init.json'));
    if (record && this.isOurInit(id, record)) {
      killProcessGroup(record.pid); // the shell and the sleep it waits on
      await waitForExit(record.pid, 5_000, record.start_time);
    }
    await killHostProcesses(this.vmProcesses(id)); // an init started by a create that was cut short
    await this.commands.killVm(id);
    await rm(this.state.file(id, 'init.json'), { force: true });
    if (existsSync(this.state.vmDir(id)))
      await writeFile(this.state.file(id, 'stopped'), `${new Date().toISOString()}\n`);
  }

  protected override vmProcesses(id?: string): VmProcess[] {
    return findVmProcesses((argv) => {
      const vm = initOf(argv) === null ? null : vmIdOfPath(this.state.path, initOf(argv) as string);
      return vm !== null && (id === undefined || vm === id) ? vm : null;
    });
  }

  protected override async keptPids(id: string): Promise<Set<number>> {
    const init = (await this.readVm(id)) ? await this.liveInit(id) : null;
    return new Set(init ? [init.pid] : []);
  }

  private async startInit(id: string): Promise<InitRecord> {
    const child = spawn(this.sh, ['-c', INIT_SCRIPT, INIT_NAME, this.state.vmDir(id)], {
      cwd: this.state.rootDir(id),
      env: { PATH: DEFAULT_PATH },
      detached: true,
      stdio: 'ignore',
    });
    const { pid, exited } = await started(child, `the init of VM ${id}`);
    let stat = readProcStat(pid);
    for (let i = 0; i < 20 && !stat; i++) {
      await sleep(5);
      stat = readProcStat(pid);
    }
    if (!stat)
      throw new AetheriumError('driver_failed', `the init of VM ${id} (pid ${pid}) vanished right after it started`);
    const init: InitRecord = { pid, start_time: stat.startTime, started_at: new Date().toISOString() };
    try {
      await writeJsonAtomic(this.state.file(id, 'init.json'), init);
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    }
    this.watchInit(id, init, exited);
    void exited.then(() => this.watcher.poke(id));
    return init;
  }

  /** Its death also ends the VM's commands: a VM that died runs nothing. */
  private watchInit(id: string, init: InitRecord, exited?: Promise<ExitStatus>): void {
    let status: ExitStatus | null = null;
    void exited?.then((s) => {
      status = s;
    });
    this.watcher.track(id, {
      alive: () => isProcessAlive(init.pid, init.start_time),
      describe: async () => {
        if (exited) status = await Promise.race([exited, sleep(1_000).then(() => null)]);
        void this.commands.killVm(id);
        if (!existsSync(this.state.vmDir(id)))
          return {
            reason: `the VM's directory was removed from the host, and its init ended with it`,
            exit_code: null,
            signal: null,
          };
        return exitWords(
          "the VM's init",
          status,
          'it was started before this worker restarted, so it is not a child of this worker',
        );
      },
    });
  }

  private async liveInit(id: string): Promise<InitRecord | null> {
    const record = await readJsonFile<InitRecord>(this.state.file(id, 'init.json'));
    return record && this.isOurInit(id, record) ? record : null;
  }

  /** Alive, started when recorded, and still marked as this VM's init (not a stranger that got the pid). */
  private isOurInit(id: string, record: InitRecord): boolean {
    if (!Number.isInteger(record.pid) || record.pid <= 1) return false;
    if (!isProcessAlive(record.pid, record.start_time)) return false;
    return initOf(readCmdline(record.pid) ?? []) === this.state.vmDir(id);
  }

  private isStopped(id: string): boolean {
    return existsSync(this.state.file(id, 'stopped'));
  }
}

/** The VM directory an init's command line names (`sh -c <script> aetherium-vm <dir>`), or null. */
function initOf(argv: readonly string[]): string | null {
  return basename(argv[0] ?? '') === 'sh' && argv[1] === '-c' && argv[3] === INIT_NAME ? (argv[4] ?? null) : null;
}

function userLabel(): string {
  const uid = process.getuid?.();
  return uid === undefined ? 'unknown' : uid === 0 ? 'root' : `uid ${uid}`;
}
