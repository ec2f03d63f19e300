/**
 * The `sandbox` driver: each VM is a bubblewrap sandbox (its own pid, mount, network, ipc, uts and
 * cgroup namespaces, its own writable root directory), limited by cgroup v1 groups when the host
 * lets us make them. See README.md in this folder for the lifecycle and what it does not isolate.
 *
 * Files of a VM, in `<stateDir>/<vmId>/`:
 *   owner.json    the worker that created it (see vm-lifecycle.ts)
 *   cgroups.json  the VM's cgroup directories (written first, so that any leftover can be found)
 *   vm.json       the spec; written once the first boot succeeded: its presence means "the VM exists"
 *   init.json     the running init (pid, start time); removed by stop
 *   init.log      stdout/stderr of bwrap and the init
 *   status.json   bwrap's --json-status-fd: the init's host pid, then its exit status when it ends
 *   root/         the VM's `/`
 */
import { mkdir, readFile, readlink, rm, rmdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, posix, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { AetheriumError, DRIVER_MINIMUMS, invalid, notFound } from '../../../domain/index.ts';
import type { ExecResult } from '../../../domain/index.ts';
import type {
  DriverInfo,
  ExecRequest,
  KilledProcess,
  VmDriver,
  VmRuntimeInfo,
  VmSpec,
} from '../../../ports/vm-driver.ts';
import {
  type CgroupHost,
  type CgroupSet,
  CONTROLLERS,
  applyCgroupLimits,
  cgroupPids,
  cgroupScope,
  detectCgroupsV1,
  joinCgroupsArgv,
  killCgroupTree,
  listVmCgroups,
  procsFiles,
  OomKillHistory,
  removeCgroupTree,
  removeSubgroups,
  vmCgroupPaths,
} from '../cgroups.ts';
import { type VmProcess, findVmProcesses, killHostProcesses, vmIdOfPath } from '../host-processes.ts';
import { CommandRegistry, type RunningCommand, abortError, startCommand } from '../process-tree.ts';
import { isProcessAlive, sleep, waitForExit } from '../procfs.ts';
import { commandEnv, validateExecRequest, validateVmId } from '../validation.ts';
import { type Recovered, StatefulDriver } from '../vm-lifecycle.ts';
import { isDirectory, readJsonFile, removeTree, writeJsonAtomic } from '../vm-dir.ts';
import { type ExitStatus, exitWords, fromShellStatus, oomWords } from '../vm-watch.ts';
import { findOnPath } from '../which.ts';
import { type HostLayout, buildBwrapArgs, parseBwrapVersion, probeHostLayout, toHostname } from './bwrap-args.ts';
import { bootSandbox } from './boot.ts';
import { type InitRecord, isOurInit } from './init-record.ts';
import { buildNsenterArgs } from './nsenter-args.ts';
import { linkHostEntries, prepareRootfs } from './rootfs.ts';

export interface SandboxDriverOptions {
  stateDir: string;
  /** The worker id recorded in the VMs it creates; another worker's VMs in the same dir are left alone. */
  owner?: string;
  /** pids.max of each VM (default 1024). */
  pidsMax?: number;
  /** How long create/start wait for the sandbox to be ready (default 15 s). */
  bootTimeoutMs?: number;
}

interface VmRecord {
  spec: VmSpec;
  created_at: string;
}

interface Tools {
  bwrap: string;
  nsenter: string;
  setpriv: string;
  sh: string;
  /** nsenter has --wdns (util-linux >= 2.38). */
  wdns: boolean;
  /** bwrap has --perms (>= 0.5). */
  perms: boolean;
}

const DEFAULT_PIDS_MAX = 1024;

export class SandboxDriver extends StatefulDriver<VmRecord> implements VmDriver {
  readonly info: DriverInfo;
  private readonly commands = new CommandRegistry();
  private readonly cgroupHost: CgroupHost;
  private readonly layout: HostLayout;
  private readonly tools: Tools;
  private readonly pidsMax: number;
  private readonly bootTimeoutMs: number;
  private readonly enterCgroupNs = existsSync('/proc/self/ns/cgroup');
  private readonly cgroupScope: string;

  constructor(options: SandboxDriverOptions) {
    super(options.stateDir, 'sandbox', options.owner);
    this.tools = findTools();
    this.cgroupHost = detectCgroupsV1();
    this.cgroupScope = cgroupScope(this.state.path);
    this.layout = probeHostLayout();
    this.pidsMax = options.pidsMax ?? DEFAULT_PIDS_MAX;
    this.bootTimeoutMs = options.bootTimeoutMs ?? 15_000;
    this.info = {
      name: 'sandbox',
      isolation: 'namespaces',
      warnings: [
        'Not a VM: sandboxes are Linux namespaces sharing the host kernel; there is no hardware boundary, and a kernel bug is a way out.',
        "Commands run as uid 0, the host's root (the sandbox's user namespace maps root to itself), with every capability dropped and no_new_privs; the host's /usr, /bin and /lib are visible read-only.",
        `disk_gb is not enforced: a VM's files are a plain directory under ${this.state.path} on the host disk.`,
        ...(process.getuid?.() === 0 ? [] : ['The agent is not root: bubblewrap may fail to create the namespaces.']),
        ...this.cgroupHost.warnings,
      ],
      min: DRIVER_MINIMUMS.sandbox,
    };
  }

  /** A new VM: allocate and boot it (under its lock, after the base checked it does not exist). */
  protected override async provision(spec: VmSpec, signal?: AbortSignal): Promise<VmRuntimeInfo> {
    const id = spec.id;
    await this.state.ensure();
    // Leftovers of a create that was interrupted before it finished.
    await this.halt(id);
    await this.destroy(id);
    const record: VmRecord = { spec: { ...spec, env: { ...(spec.env ?? {}) } }, created_at: new Date().toISOString() };
    try {
      await this.makeVmDir(id);
      await writeJsonAtomic(this.state.file(id, 'cgroups.json'), vmCgroupPaths(this.cgroupHost, this.cgroupScope, id));
      await prepareRootfs(this.state.rootDir(id), toHostname(spec.name));
      const info = await this.boot(id, record.spec, signal);
      await writeJsonAtomic(this.state.file(id, 'vm.json'), record);
      return info;
    } catch (err) {
      await this.halt(id).catch(() => {});
      await this.destroy(id).catch(() => {});
      throw err;
    }
  }

  async status(id: string): Promise<VmRuntimeInfo> {
    validateVmId(id);
    if (!(await this.readVm(id))) return { id, state: 'missing' };
    const init = await this.liveInit(id);
    return init ? running(id, init) : { id, state: 'stopped' };
  }

  async exec(id: string, request: ExecRequest): Promise<ExecResult> {
    validateVmId(id);
    validateExecRequest(request);
    if (request.signal?.aborted) throw abortError(request.signal);
    // Started under the VM's lock, so that a stop or delete cannot slip between the check and the
    // start; awaited outside it, so that commands run concurrently.
    let execGroup: { procs: string[]; dir: string | null } = { procs: [], dir: null };
    const command: RunningCommand = await this.mutex.run(id, async () => {
      this.assertOpen();
      const vm = await this.readVm(id);
      if (!vm) throw notFound('VM', id);
      const init = await this.liveInit(id);
      if (!init) throw this.notRunning(id);
      const cwd = posix.resolve('/', request.cwd ?? '/');
      if (!(await isDirectory(`/proc/${init.pid}/root${cwd}`))) {
        throw invalid(`cwd ${JSON.stringify(cwd)} is not a directory in VM ${JSON.stringify(id)}`);
      }
      execGroup = await makeExecGroup(await this.readCgroups(id));
      const nsenterArgs = buildNsenterArgs({
        pid: init.pid,
        cwd,
        setpriv: this.tools.setpriv,
        wdns: this.tools.wdns,
        enterCgroupNs: this.enterCgroupNs,
        enterUserNs: await hasOwnUserNs(init.pid),
        command: request.command,
        args: request.args ?? [],
      });
      const { file, args } = joinCgroupsArgv(this.tools.sh, execGroup.procs, this.tools.nsenter, nsenterArgs);
      const trackDir = execGroup.dir;
      const running = startCommand({
        file,
        args,
        env: commandEnv({ HOME: '/root' }, vm.spec.env, request.env),
        cwd: '/',
        stdin: request.stdin,
        stdinStream: request.stdinStream,
        timeout_ms: request.timeout_ms,
        signal: request.signal,
        onStdout: request.onStdout,
        onStderr: request.onStderr,
        // What left the process group (setsid, daemons) is still in the command's own cgroup.
        sweep: trackDir ? async () => void (await killCgroupTree(trackDir, 2_000)) : undefined,
      });
      this.commands.track(id, running);
      return running;
    });
    try {
      return await command.result;
    } finally {
      // Busy (background processes left running in the VM) is fine: stop/delete sweep it.
      if (execGroup.dir) await rmdir(execGroup.dir).catch(() => {});
    }
  }

  protected override async recoverVm(id: string): Promise<Recovered> {
    const vm = await this.readVm(id);
    const init = await readJsonFile<InitRecord>(this.state.file(id, 'init.json'));
    if (vm && init && isOurInit(init, this.state.rootDir(id))) {
      await this.watchInit(id, init, vm.spec);
      return 'running';
    }
    // Stopped on purpose before the restart: its files are kept, `start` boots it again.
    if (vm && !init) return 'stopped';
    await this.halt(id);
    await this.destroy(id);
    return 'lost';
  }

  /** Kills the commands this instance is running, and the sandboxes it is still booting; the others keep running. */
  async close(): Promise<void> {
    await this.shutdown();
    await this.commands.killAll();
  }

  /** The bwrap processes (outer and pid 1) whose command line binds a VM root of this state dir. */
  protected override vmProcesses(id?: string): VmProcess[] {
    return findVmProcesses((argv) => {
      if (basename(argv[0] ?? '') !== 'bwrap') return null;
      for (const arg of argv) {
        const vm = vmIdOfPath(this.state.path, arg, 'root');
        if (vm !== null) return id === undefined || vm === id ? vm : null;
      }
      return null;
    });
  }

  protected override async keptPids(id: string): Promise<Set<number>> {
    const init = (await this.readVm(id)) ? await this.liveInit(id) : null;
    return new Set(init ? [init.pid, init.monitor_pid] : []);
  }

  /** Also the cgroups of VMs that are not in the state dir any more, and whatever still runs in them. */
  protected override async sweepStrays(killed: KilledProcess[]): Promise<void> {
    await super.sweepStrays(killed);
    for (const [id, groups] of await listVmCgroups(this.cgroupHost, this.cgroupScope)) {
      await this.mutex.run(id, async () => {
        if (this.isCreating(id) || (await isDirectory(this.state.vmDir(id)))) return;
        const pids = new Set<number>();
        for (const dir of Object.values(groups)) for (const pid of await cgroupPids(dir)) pids.add(pid);
        for (const dir of Object.values(groups)) {
          await killCgroupTree(dir);
          await removeCgroupTree(dir).catch(() => {});
        }
        for (const pid of pids)
          killed.push({
            vm_id: id,
            pid,
            reason: `left in the cgroups of VM ${id}, which is not in the state dir any more`,
          });
      });
    }
  }

  // --- internals ---------------------------------------------------------------------------

  /** Boots an existing VM unless it runs already. A failed boot leaves it stopped, with its files. */
  protected override async ensureRunning(id: string, vm: VmRecord, signal?: AbortSignal): Promise<VmRuntimeInfo> {
    const init = await this.liveInit(id);
    if (init) return running(id, init);
    try {
      return await this.boot(id, vm.spec, signal);
    } catch (err) {
      await this.halt(id).catch(() => {});
      throw err;
    }
  }

  private async boot(id: string, spec: VmSpec, signal?: AbortSignal): Promise<VmRuntimeInfo> {
    const groups = await this.readCgroups(id);
    const problems = await applyCgroupLimits(groups, {
      memory_mb: spec.memory_mb,
      vcpus: spec.vcpus,
      pids_max: this.pidsMax,
    });
    for (const p of problems) if (!this.info.warnings.includes(p)) this.info.warnings.push(p);
    await linkHostEntries(this.state.rootDir(id), this.layout);
    const launchedAt = new Date(); // bwrap is spawned now; it answers once its init is ready
    const { init, exited } = await bootSandbox({
      bwrap: this.tools.bwrap,
      sh: this.tools.sh,
      bwrapArgs: buildBwrapArgs({
        rootDir: this.state.rootDir(id),
        hostname: toHostname(spec.name),
        layout: this.layout,
        perms: this.tools.perms,
        jsonStatus: this.tools.perms, // the same bwrap version (0.5) brought both
      }),
      cgroupProcs: procsFiles(groups),
      logFile: this.state.file(id, 'init.log'),
      statusFile: this.tools.perms ? this.state.file(id, 'status.json') : undefined,
      timeoutMs: this.bootTimeoutMs,
      signal,
    });
    try {
      await writeJsonAtomic(this.state.file(id, 'init.json'), init);
    } catch (err) {
      process.kill(init.pid, 'SIGKILL');
      throw err;
    }
    await this.watchInit(id, init, spec, exited);
    // The outer bwrap ends right after the init: a death is heard at once, not at the next poll.
    void exited.then(() => this.watcher.poke(id));
    return { ...running(id, init), launched_at: launchedAt };
  }

  /**
   * Watches the VM's pid 1. Its death is described with the status bwrap passed on (from the
   * outer bwrap's exit when this instance launched it, else from status.json), and counts as out
   * of memory when it was a SIGKILL and the VM's memory cgroup counted an OOM kill just before.
   */
  private async watchInit(id: string, init: InitRecord, spec: VmSpec, exited?: Promise<ExitStatus>): Promise<void> {
    const memory = (await this.readCgroups(id)).memory;
    const oomKills = new OomKillHistory(memory);
    this.watcher.track(id, {
      alive: () => isProcessAlive(init.pid, init.start_time),
      sample: () => oomKills.sample(),
      describe: async () => {
        const status = await this.initStatus(id, exited);
        if (oomKills.rose() && (status === null || status.signal === 'SIGKILL'))
          return oomWords(memory ? spec.memory_mb : null, status);
        return exitWords(
          "the VM's init",
          status,
          'it was started before this worker restarted, and bwrap left no status',
        );
      },
    });
  }

  /** The init's exit status: bwrap writes it to status.json as it exits; its own exit says the same. */
  private async initStatus(id: string, exited?: Promise<ExitStatus>): Promise<ExitStatus | null> {
    let fromChild: ExitStatus | null = null;
    void exited?.then((s) => {
      fromChild = s;
    });
    const deadline = Date.now() + 1_000;
    for (;;) {
      const text = await readFile(this.state.file(id, 'status.json'), 'utf8').catch(() => '');
      const match = /"exit-code"\s*:\s*(\d+)/.exec(text);
      if (match) return fromShellStatus(Number(match[1]));
      const child = fromChild as ExitStatus | null;
      // bwrap exited with a code: the init's status passed on. Killed by a signal: bwrap itself was.
      if (child?.code !== null && child?.code !== undefined) return fromShellStatus(child.code);
      if (Date.now() >= deadline || (!exited && !this.tools.perms)) return null;
      await sleep(25);
    }
  }

  /** Kills everything of the VM: its pid 1 (the kernel then kills the rest of the pid namespace), every process left in its cgroups, and the commands we run in it. */
  protected override async halt(id: string): Promise<void> {
    this.watcher.untrack(id); // whatever halts a VM was asked to: not a death
    const init = await readJsonFile<InitRecord>(this.state.file(id, 'init.json'));
    if (init && isOurInit(init, this.state.rootDir(id))) {
      try {
        process.kill(init.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
      await waitForExit(init.pid, 5_000, init.start_time);
    }
    const groups = await this.readCgroups(id);
    for (const controller of CONTROLLERS) {
      const dir = groups[controller];
      if (!dir) continue;
      await killCgroupTree(dir);
      await removeSubgroups(dir).catch(() => {}); // the per-command groups
    }
    // Without cgroups, a boot interrupted before init.json leaves bwrap processes only their argv names.
    await killHostProcesses(this.vmProcesses(id));
    await this.commands.killVm(id);
    await rm(this.state.file(id, 'init.json'), { force: true });
  }

  /** Frees what a (halted) VM holds on the host: its cgroups and its directory. */
  protected override async destroy(id: string): Promise<void> {
    // The recorded groups, and where this agent would put them (in case the record was never written).
    const recorded = await this.readCgroups(id);
    const expected = vmCgroupPaths(this.cgroupHost, this.cgroupScope, id);
    for (const controller of CONTROLLERS) {
      for (const dir of new Set([recorded[controller], expected[controller]])) {
        if (!dir) continue;
        await killCgroupTree(dir);
        await removeCgroupTree(dir);
      }
    }
    await removeTree(this.state.vmDir(id));
  }

  private async readCgroups(id: string): Promise<CgroupSet> {
    return (await readJsonFile<CgroupSet>(this.state.file(id, 'cgroups.json'))) ?? {};
  }

  private async liveInit(id: string): Promise<InitRecord | null> {
    const init = await readJsonFile<InitRecord>(this.state.file(id, 'init.json'));
    return init && isOurInit(init, this.state.rootDir(id)) ? init : null;
  }
}

function running(id: string, init: InitRecord): VmRuntimeInfo {
  return { id, state: 'running', pid: init.pid, boot_ms: init.boot_ms };
}

function findTools(): Tools {
  const bwrap = findOnPath('bwrap');
  if (!bwrap) {
    throw new AetheriumError(
      'driver_unavailable',
      'the sandbox driver needs bubblewrap: `bwrap` is not on PATH (Debian/Ubuntu: apt-get install bubblewrap)',
    );
  }
  const nsenter = findOnPath('nsenter');
  const setpriv = findOnPath('setpriv');
  if (!nsenter || !setpriv) {
    throw new AetheriumError(
      'driver_unavailable',
      'the sandbox driver needs `nsenter` and `setpriv` from util-linux on PATH',
    );
  }
  const sh = findOnPath('sh') ?? '/bin/sh';
  const help = spawnSync(nsenter, ['--help'], { encoding: 'utf8' });
  const version = parseBwrapVersion(spawnSync(bwrap, ['--version'], { encoding: 'utf8' }).stdout ?? '');
  const perms = version !== null && (version[0] > 0 || version[1] >= 5);
  return { bwrap, nsenter, setpriv, sh, wdns: `${help.stdout ?? ''}`.includes('--wdns'), perms };
}

/**
 * Each command gets its own child group in one controller (pids when there is one) so that
 * everything it started, even what left its process group, can be found and killed; in the other
 * controllers it joins the VM's group directly.
 */
async function makeExecGroup(groups: CgroupSet): Promise<{ procs: string[]; dir: string | null }> {
  const tracker = (['pids', 'memory', 'cpu'] as const).find((c) => groups[c] !== undefined);
  if (!tracker) return { procs: [], dir: null };
  const dir = join(groups[tracker] as string, `exec-${randomBytes(6).toString('hex')}`);
  try {
    await mkdir(dir);
  } catch {
    return { procs: procsFiles(groups), dir: null };
  }
  const others = procsFiles({ ...groups, [tracker]: undefined });
  return { procs: [...others, join(dir, 'cgroup.procs')], dir };
}

/** True when the process lives in another user namespace than the agent. */
async function hasOwnUserNs(pid: number): Promise<boolean> {
  try {
    return (await readlink(`/proc/${pid}/ns/user`)) !== (await readlink('/proc/self/ns/user'));
  } catch {
    return false;
  }
}
