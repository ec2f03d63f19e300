/**
 * The `process` driver: a "VM" is a directory, `<stateDir>/<vmId>/root`, and its commands are plain
 * host processes started there (like Nomad's raw_exec). Nothing is isolated and nothing is limited:
 * a command sees and can touch everything the agent's user can. Meant for development and for hosts
 * where nothing better runs, and only when the operator asks for it.
 *
 * Files of a VM, in `<stateDir>/<vmId>/`:
 *   owner.json  the worker that created it (see vm-lifecycle.ts)
 *   vm.json     the spec; its presence means "the VM exists"
 *   stopped     present while the VM is stopped (exec refuses to run)
 *   root/       the commands' default working directory and HOME
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { conflict, invalid, notFound } from '../../../domain/index.ts';
import type { ExecResult } from '../../../domain/index.ts';
import type { DriverInfo, ExecRequest, VmDriver, VmRuntimeInfo, VmSpec } from '../../../ports/vm-driver.ts';
import { CommandRegistry, type RunningCommand, abortError, startCommand } from '../process-tree.ts';
import { commandEnv, validateExecRequest, validateVmId } from '../validation.ts';
import { type Recovered, StatefulDriver } from '../vm-lifecycle.ts';
import { isDirectory, removeTree, writeJsonAtomic } from '../vm-dir.ts';

export interface ProcessDriverOptions {
  stateDir: string;
  /** The worker id recorded in the VMs it creates; another worker's VMs in the same dir are left alone. */
  owner?: string;
}

interface VmRecord {
  spec: VmSpec;
  created_at: string;
  boot_ms: number;
}

export class ProcessDriver extends StatefulDriver<VmRecord> implements VmDriver {
  readonly info: DriverInfo;
  private readonly commands = new CommandRegistry();

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
    };
  }

  /** A new VM: allocate and boot it (under its lock, after the base checked it does not exist). */
  protected override async provision(spec: VmSpec, signal?: AbortSignal): Promise<VmRuntimeInfo> {
    const id = spec.id;
    const started = performance.now();
    await this.state.ensure();
    await removeTree(this.state.vmDir(id)); // leftovers of an interrupted create
    try {
      await this.makeVmDir(id, 0o755);
      await mkdir(this.state.rootDir(id), { mode: 0o755 });
      if (signal?.aborted) throw abortError(signal);
      const record: VmRecord = {
        spec: { ...spec, env: { ...(spec.env ?? {}) } },
        created_at: new Date().toISOString(),
        boot_ms: Math.round(performance.now() - started),
      };
      await writeJsonAtomic(this.state.file(id, 'vm.json'), record);
      return { id, state: 'running', boot_ms: record.boot_ms };
    } catch (err) {
      await removeTree(this.state.vmDir(id)).catch(() => {});
      throw err;
    }
  }

  /** Not halt + destroy: halt would mark the VM stopped, writing into a directory that may not exist. */
  override async delete(id: string): Promise<void> {
    validateVmId(id);
    await this.mutex.run(id, async () => {
      this.assertOpen();
      await this.commands.killVm(id);
      await removeTree(this.state.vmDir(id));
    });
  }

  async status(id: string): Promise<VmRuntimeInfo> {
    validateVmId(id);
    const vm = await this.readVm(id);
    if (!vm) return { id, state: 'missing' };
    return this.isStopped(id) ? { id, state: 'stopped' } : { id, state: 'running', boot_ms: vm.boot_ms };
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
      if (this.isStopped(id)) throw conflict(`VM ${JSON.stringify(id)} is stopped; start it before running commands`);
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

  /** There is nothing to reattach to: every VM directory found is taken back (stopped ones stay stopped). */
  protected override async recoverVm(id: string): Promise<Recovered> {
    if (await this.readVm(id)) return this.isStopped(id) ? 'stopped' : 'running';
    await removeTree(this.state.vmDir(id)); // a create that never finished
    return 'lost';
  }

  /** Kills the commands still running: nothing could reattach to them after a restart. */
  async close(): Promise<void> {
    this.closed = true;
    await this.commands.killAll();
  }

  protected override async ensureRunning(id: string, vm: VmRecord): Promise<VmRuntimeInfo> {
    await rm(this.state.file(id, 'stopped'), { force: true });
    return { id, state: 'running', boot_ms: vm.boot_ms };
  }

  protected override async halt(id: string): Promise<void> {
    await writeFile(this.state.file(id, 'stopped'), `${new Date().toISOString()}\n`);
    await this.commands.killVm(id);
  }

  private isStopped(id: string): boolean {
    return existsSync(this.state.file(id, 'stopped'));
  }
}

function userLabel(): string {
  const uid = process.getuid?.();
  return uid === undefined ? 'unknown' : uid === 0 ? 'root' : `uid ${uid}`;
}
