/**
 * The `firecracker` driver: each VM is a Firecracker micro-VM (KVM), configured through its API
 * socket, booted from its own copy of a root filesystem image, and reached through a guest agent
 * on vsock. Optionally jailed by Firecracker's `jailer`. See README.md for the lifecycle.
 *
 * Files of a VM, in `<stateDir>/<vmId>/`:
 *   owner.json         the worker that created it (see vm-lifecycle.ts)
 *   layout.json        where everything of the VM lives (written first, so that leftovers can be found)
 *   vm.json            the spec; written once the first boot succeeded: its presence means "the VM exists"
 *   firecracker.json   the running VMM (pid, start time, API socket); removed by stop
 *   firecracker.log    stdout/stderr of firecracker (the guest's serial console included)
 *   rootfs.ext4, api.sock, vsock.sock   without the jailer; with it they are in the jail:
 *                      <chroot-base>/firecracker/<jail-id>/root/{rootfs.ext4,vmlinux,vsock.sock,run/firecracker.socket}
 */
import { chown, copyFile, link, mkdir, readFile, rm, rmdir, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { AetheriumError, DRIVER_MINIMUMS, invalid, notFound } from '../../../domain/index.ts';
import type { ExecResult } from '../../../domain/index.ts';
import type { DriverInfo, ExecRequest, VmDriver, VmRuntimeInfo, VmSpec } from '../../../ports/vm-driver.ts';
import type { VmProcess } from '../host-processes.ts';
import { abortError } from '../process-tree.ts';
import { sleep } from '../procfs.ts';
import { commandEnv, validateExecRequest, validateVmId } from '../validation.ts';
import { type Recovered, StatefulDriver } from '../vm-lifecycle.ts';
import { readJsonFile, removeTree, writeJsonAtomic } from '../vm-dir.ts';
import { type ExitStatus, exitWords } from '../vm-watch.ts';
import { findOnPath } from '../which.ts';
import { FirecrackerApiClient, DEFAULT_API_TIMEOUT_MS } from './api-client.ts';
import {
  DEFAULT_CHROOT_BASE,
  JAIL_API_SOCKET,
  type JailerOptions,
  buildJailerArgs,
  jailCgroupDirs,
  jailId,
  jailLayout,
} from './jailer.ts';
import { type FirecrackerLauncher, type VmmProcess, type VmmRecord, ProcessLauncher } from './launcher.ts';
import {
  DEFAULT_IFACE_ID,
  ROOT_DRIVE_ID,
  bootSourceBody,
  drivePath,
  machineConfigBody,
  macForVm,
  networkInterfaceBody,
  networkInterfacePath,
  rootDriveBody,
  vsockBody,
} from './requests.ts';
import { type Layout, vmLayout } from './layout.ts';
import { copyRootfs } from './rootfs.ts';
import {
  DEFAULT_AGENT_PORT,
  type GuestConnection,
  type GuestConnectionFactory,
  connectVsock,
  guestAgentConnection,
} from './vsock.ts';

export const DEFAULT_KERNEL_IMAGE = '/var/lib/aetherium/firecracker/vmlinux';
export const DEFAULT_ROOTFS_IMAGE = '/var/lib/aetherium/firecracker/rootfs.ext4';
/** sun_path is 108 bytes including the terminating NUL. */
const IMAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** How long the guest agent has to answer the HELLO on a new vsock connection. */
const GUEST_HELLO_TIMEOUT_MS = 10_000;

export interface FirecrackerNetworkOptions {
  /** Name of the (existing) tap device of a VM, e.g. (id) => `fc-${id.slice(0, 12)}`; at most 15 characters. */
  tapName: (vmId: string) => string;
  /** Guest MAC; default: a locally administered address derived from the VM id. */
  guestMac?: (vmId: string) => string;
  mtu?: number;
}

export interface FirecrackerDriverOptions {
  stateDir: string;
  /** The worker id recorded in the VMs it creates; another worker's VMs in the same dir are left alone. */
  owner?: string;
  /** Uncompressed guest kernel (vmlinux). */
  kernelImagePath?: string;
  /** Base root filesystem image (ext4) holding the guest agent; copied per VM. */
  rootfsPath?: string;
  /** When set, a VM's `image` names `<imagesDir>/<image>.ext4` instead of the default rootfs. */
  imagesDir?: string;
  bootArgs?: string;
  initrdPath?: string;
  /** Name on PATH or path of the firecracker binary (default `firecracker`). */
  firecrackerBinary?: string;
  /** Run firecracker under the jailer. */
  jailer?: JailerOptions;
  /** Attach a tap device as `eth0`; without it the VM has no network. */
  network?: FirecrackerNetworkOptions;
  /** vsock port of the guest agent (default 10789). */
  agentPort?: number;
  /** The guest agent client wrapping the vsock stream (default: the guest agent protocol; tests inject others). */
  guestConnection?: GuestConnectionFactory;
  /** From launch to "the guest agent accepts connections" (default 30 s). */
  bootTimeoutMs?: number;
  /** How long stop waits after SendCtrlAltDel before killing the VMM (default 10 s). */
  stopGraceMs?: number;
  /** Per API request (default 5 s). */
  apiTimeoutMs?: number;
  /** The process seam (default: spawn the binary). */
  launcher?: FirecrackerLauncher;
  kvmPath?: string;
}

interface VmRecord {
  spec: VmSpec;
  created_at: string;
}

export class FirecrackerDriver extends StatefulDriver<VmRecord> implements VmDriver {
  readonly info: DriverInfo;
  private readonly launcher: FirecrackerLauncher;
  private readonly guests = new Map<string, Set<GuestConnection>>();
  private readonly kernel: string;
  private readonly rootfs: string;
  private readonly agentPort: number;
  private readonly bootTimeoutMs: number;
  private readonly stopGraceMs: number;
  private readonly apiTimeoutMs: number;
  private readonly guestConnection: GuestConnectionFactory;

  constructor(private readonly options: FirecrackerDriverOptions) {
    super(options.stateDir, 'firecracker', options.owner);
    this.launcher = options.launcher ?? new ProcessLauncher(options.kvmPath);
    this.kernel = options.kernelImagePath ?? DEFAULT_KERNEL_IMAGE;
    this.rootfs = options.rootfsPath ?? DEFAULT_ROOTFS_IMAGE;
    this.agentPort = options.agentPort ?? DEFAULT_AGENT_PORT;
    this.bootTimeoutMs = options.bootTimeoutMs ?? 30_000;
    this.stopGraceMs = options.stopGraceMs ?? 10_000;
    this.apiTimeoutMs = options.apiTimeoutMs ?? DEFAULT_API_TIMEOUT_MS;
    this.guestConnection = options.guestConnection ?? guestAgentConnection;
    if (!Number.isInteger(this.agentPort) || this.agentPort < 1 || this.agentPort > 0xffff_ffff)
      throw invalid(`agentPort must be a vsock port number, got ${String(this.agentPort)}`);
    this.info = {
      name: 'firecracker',
      isolation: 'hardware-vm',
      warnings: [
        ...(options.jailer
          ? []
          : [
              "firecracker runs without the jailer: the VMM process is not chrooted and runs as the agent user (set the driver's jailer options in production).",
            ]),
        ...(options.network
          ? []
          : ['VMs have no network interface (no tap device configured); only the vsock guest agent reaches them.']),
        'disk_gb is not enforced: each VM gets a copy of the base root filesystem image at its size.',
      ],
      min: DRIVER_MINIMUMS.firecracker,
    };
  }

  /** A new VM: allocate and boot it (under its lock, after the base checked it does not exist). */
  protected override async provision(spec: VmSpec, signal?: AbortSignal): Promise<VmRuntimeInfo> {
    const id = spec.id;
    // Fail fast, before touching anything, when this host cannot run Firecracker.
    const firecracker = this.firecrackerBinary();
    await this.launcher.preflight({ firecracker, ...(this.options.jailer ? { jailer: this.jailerBinary() } : {}) });
    machineConfigBody({ vcpus: spec.vcpus, memoryMb: spec.memory_mb }); // vCPU range, before any work
    const image = this.imageFor(spec);
    await assertFile(this.kernel, 'kernel image');
    await assertFile(image, 'root filesystem image');

    await this.state.ensure();
    // Leftovers of a create that was interrupted before it finished.
    await this.halt(id, false);
    await this.destroy(id);
    const layout = this.layoutFor(id, firecracker);
    const record: VmRecord = { spec: { ...spec, env: { ...(spec.env ?? {}) } }, created_at: new Date().toISOString() };
    try {
      await this.makeVmDir(id);
      await writeJsonAtomic(this.state.file(id, 'layout.json'), layout);
      await this.prepareFiles(layout, image);
      const info = await this.boot(id, record.spec, layout, signal);
      await writeJsonAtomic(this.state.file(id, 'vm.json'), record);
      return info;
    } catch (err) {
      await this.halt(id, false).catch(() => {});
      await this.destroy(id).catch(() => {});
      throw err;
    }
  }

  async status(id: string): Promise<VmRuntimeInfo> {
    validateVmId(id);
    if (!(await this.readVm(id))) return { id, state: 'missing' };
    const live = await this.liveVmm(id);
    return live ? running(id, live.record) : { id, state: 'stopped' };
  }

  async exec(id: string, request: ExecRequest): Promise<ExecResult> {
    validateVmId(id);
    validateExecRequest(request);
    if (request.signal?.aborted) throw abortError(request.signal);
    // Connected under the VM's lock (a stop cannot slip in between), run outside it (commands run concurrently).
    const { connection, env } = await this.mutex.run(id, async () => {
      this.assertOpen();
      const vm = await this.readVm(id);
      if (!vm) throw notFound('VM', id);
      const live = await this.liveVmm(id);
      if (!live) throw this.notRunning(id);
      const stream = await connectVsock(live.layout.vsock_host, this.agentPort, this.apiTimeoutMs);
      let conn: GuestConnection;
      try {
        conn = await this.guestConnection(stream, {
          vmId: id,
          timeoutMs: GUEST_HELLO_TIMEOUT_MS,
          signal: request.signal,
        });
      } catch (err) {
        stream.destroy();
        throw err;
      }
      this.trackGuest(id, conn);
      return { connection: conn, env: commandEnv({ HOME: '/root' }, vm.spec.env, request.env) };
    });
    try {
      // The guest gets exactly this environment (PATH included), like the other VM drivers.
      return await connection.exec({ ...request, env, cwd: posix.resolve('/', request.cwd ?? '/') });
    } finally {
      connection.close();
      this.guests.get(id)?.delete(connection);
    }
  }

  protected override async recoverVm(id: string): Promise<Recovered> {
    const vm = await this.readVm(id);
    const record = await readJsonFile<VmmRecord>(this.state.file(id, 'firecracker.json'));
    const live = vm && record ? await this.liveVmm(id) : null;
    const answers = live ? await this.apiAnswers(live.layout.api_socket) : false;
    if (vm && live && answers) {
      this.watchVmm(id, live.vmm);
      return 'running';
    }
    // Stopped on purpose before the restart: its files are kept, `start` boots it again.
    if (vm && !record) return 'stopped';
    await this.halt(id, false);
    await this.destroy(id);
    return 'lost';
  }

  /** Closes the guest connections of this instance and stops the VMs it is still booting; the others keep running. */
  async close(): Promise<void> {
    await this.shutdown();
    for (const id of [...this.guests.keys()]) this.closeGuests(id);
  }

  protected override vmProcesses(id?: string): VmProcess[] {
    const found = this.launcher.vmProcesses?.(this.state.path) ?? [];
    return id === undefined ? found : found.filter((p) => p.vmId === id);
  }

  protected override async keptPids(id: string): Promise<Set<number>> {
    const live = (await this.readVm(id)) ? await this.liveVmm(id) : null;
    return new Set(live ? [live.vmm.pid] : []);
  }

  // --- internals ---------------------------------------------------------------------------

  protected override async ensureRunning(id: string, vm: VmRecord, signal?: AbortSignal): Promise<VmRuntimeInfo> {
    const live = await this.liveVmm(id);
    if (live) return running(id, live.record);
    const layout = await this.readLayout(id);
    if (!layout)
      throw new AetheriumError(
        'driver_failed',
        `VM ${JSON.stringify(id)} has lost its layout record; delete and create it again`,
      );
    await this.launcher.preflight({
      firecracker: layout.firecracker,
      ...(this.options.jailer ? { jailer: this.jailerBinary() } : {}),
    });
    try {
      return await this.boot(id, vm.spec, layout, signal);
    } catch (err) {
      await this.halt(id, false).catch(() => {});
      throw err;
    }
  }

  private layoutFor(id: string, firecracker: string): Layout {
    return vmLayout({
      vmDir: this.state.vmDir(id),
      vmId: id,
      firecracker,
      kernel: this.kernel,
      chrootBaseDir: this.options.jailer ? (this.options.jailer.chrootBaseDir ?? DEFAULT_CHROOT_BASE) : null,
    });
  }

  /** The per-VM rootfs copy, and in a jail the kernel and the directories Firecracker needs, owned by the jail user. */
  private async prepareFiles(layout: Layout, image: string): Promise<void> {
    const owner = this.options.jailer ? { uid: this.options.jailer.uid, gid: this.options.jailer.gid } : undefined;
    if (layout.jail) {
      await mkdir(join(layout.rootDir, 'run'), { recursive: true, mode: 0o755 });
      if (owner) await chown(join(layout.rootDir, 'run'), owner.uid, owner.gid);
      const kernel = layout.kernel_host as string;
      await link(this.kernel, kernel).catch(() => copyFile(this.kernel, kernel));
    }
    await copyRootfs(image, layout.rootfs_host, owner);
  }

  private async boot(id: string, spec: VmSpec, layout: Layout, signal?: AbortSignal): Promise<VmRuntimeInfo> {
    const started = Date.now();
    const deadline = started + this.bootTimeoutMs;
    await this.removeSockets(layout);
    if (layout.jail) {
      // What the jailer makes in the jail on every start (device nodes, its copy of the binary).
      await rm(join(layout.rootDir, 'dev'), { recursive: true, force: true });
      await rm(join(layout.rootDir, 'firecracker'), { force: true });
    }
    const firecrackerArgs = ['--api-sock', layout.jail ? JAIL_API_SOCKET : layout.api_socket];
    const launch = layout.jail
      ? {
          file: this.jailerBinary(),
          args: buildJailerArgs({
            vmId: id,
            firecrackerBinary: layout.firecracker,
            jailer: this.options.jailer as JailerOptions,
            firecrackerArgs,
          }),
        }
      : { file: layout.firecracker, args: ['--id', jailId(id), ...firecrackerArgs] };
    const logFile = this.state.file(id, 'firecracker.log');
    const vmm = await this.launcher.launch({
      vmId: id,
      file: launch.file,
      args: launch.args,
      apiSocketPath: layout.api_socket,
      rootDir: layout.rootDir,
      logFile,
    });
    const record: VmmRecord = {
      pid: vmm.pid,
      start_time: vmm.startTime,
      api_socket: layout.api_socket,
      started_at: new Date(started).toISOString(),
    };
    try {
      await writeJsonAtomic(this.state.file(id, 'firecracker.json'), record);
    } catch (err) {
      vmm.kill('SIGKILL');
      throw err;
    }

    const api = new FirecrackerApiClient(layout.api_socket, this.apiTimeoutMs);
    await this.waitFor('the Firecracker API socket', id, vmm, deadline, signal, () =>
      this.apiAnswers(layout.api_socket),
    );

    await api.put('/machine-config', machineConfigBody({ vcpus: spec.vcpus, memoryMb: spec.memory_mb }));
    await api.put(
      '/boot-source',
      bootSourceBody({
        kernelImagePath: layout.kernel_vmm,
        bootArgs: this.options.bootArgs,
        initrdPath: this.options.initrdPath,
      }),
    );
    await api.put(drivePath(ROOT_DRIVE_ID), rootDriveBody({ pathOnHost: layout.rootfs_vmm }));
    const net = this.options.network;
    if (net) {
      await api.put(
        networkInterfacePath(DEFAULT_IFACE_ID),
        networkInterfaceBody({
          hostDevName: net.tapName(id),
          guestMac: net.guestMac ? net.guestMac(id) : macForVm(id),
          ...(net.mtu !== undefined ? { mtu: net.mtu } : {}),
        }),
      );
    }
    await api.put('/vsock', vsockBody({ udsPath: layout.vsock_vmm }));
    if (signal?.aborted) throw abortError(signal);
    await api.action('InstanceStart');
    const launchedAt = new Date();

    await this.waitFor(`the guest agent (vsock port ${this.agentPort})`, id, vmm, deadline, signal, async () => {
      try {
        const socket = await connectVsock(
          layout.vsock_host,
          this.agentPort,
          Math.max(100, Math.min(1_000, deadline - Date.now())),
        );
        socket.destroy();
        return true;
      } catch {
        return false;
      }
    });
    record.boot_ms = Date.now() - started;
    await writeJsonAtomic(this.state.file(id, 'firecracker.json'), record);
    this.watchVmm(id, vmm);
    return { ...running(id, record), launched_at: launchedAt };
  }

  /** Watches the VMM process; its exit status is known when this instance launched it. */
  private watchVmm(id: string, vmm: VmmProcess): void {
    let status: ExitStatus | null = null;
    void vmm.exited?.then((s) => {
      status = s;
      this.watcher.poke(id);
    });
    this.watcher.track(id, {
      alive: () => vmm.alive(),
      describe: async () => {
        if (vmm.exited) status = await Promise.race([vmm.exited, sleep(1_000).then(() => null)]);
        const words = exitWords(
          `firecracker (the VMM, host pid ${vmm.pid})`,
          status,
          'it was started before this worker restarted, so it is not a child of this worker',
        );
        return { ...words, reason: `${words.reason}${await this.logTail(id)}` };
      },
    });
  }

  private async waitFor(
    what: string,
    id: string,
    vmm: VmmProcess,
    deadline: number,
    signal: AbortSignal | undefined,
    ready: () => Promise<boolean>,
  ): Promise<void> {
    for (;;) {
      if (signal?.aborted) throw abortError(signal);
      if (await ready()) return;
      if (!vmm.alive()) {
        throw new AetheriumError(
          'driver_failed',
          `firecracker exited while waiting for ${what} of VM ${JSON.stringify(id)}${await this.logTail(id)}`,
        );
      }
      if (Date.now() >= deadline) {
        throw new AetheriumError(
          'driver_failed',
          `VM ${JSON.stringify(id)}: ${what} was not ready within ${this.bootTimeoutMs} ms${await this.logTail(id)}`,
        );
      }
      await sleep(50);
    }
  }

  private async apiAnswers(socket: string): Promise<boolean> {
    try {
      await new FirecrackerApiClient(socket).describeInstance(Math.min(1_000, this.apiTimeoutMs));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Stops the VMM: when `graceful` (the default, as for stop and delete), SendCtrlAltDel (the guest reboots, which ends Firecracker with
   * `reboot=k`) and up to stopGraceMs for it to exit; then SIGKILL. Removes the pid file and sockets.
   */
  protected override async halt(id: string, graceful = true): Promise<void> {
    this.watcher.untrack(id); // whatever halts a VM was asked to: not a death
    this.closeGuests(id);
    const live = await this.liveVmm(id);
    if (live) {
      const { vmm, layout } = live;
      if (graceful && this.stopGraceMs > 0) {
        const sent = await new FirecrackerApiClient(layout.api_socket, Math.min(this.apiTimeoutMs, this.stopGraceMs))
          .action('SendCtrlAltDel')
          .then(() => true)
          .catch(() => false); // e.g. not supported on aarch64, or the VMM is wedged: kill it
        if (sent) await waitGone(vmm, this.stopGraceMs);
      }
      if (vmm.alive()) {
        vmm.kill('SIGKILL');
        if (!(await waitGone(vmm, 5_000)))
          throw new AetheriumError(
            'driver_failed',
            `firecracker (pid ${vmm.pid}) of VM ${JSON.stringify(id)} did not exit after SIGKILL`,
          );
      }
    }
    const layout = await this.readLayout(id);
    if (layout) await this.removeSockets(layout);
    await rm(this.state.file(id, 'firecracker.json'), { force: true });
  }

  /** Frees what a halted VM holds on the host: the jail (and the jailer's cgroups) and the VM directory. */
  protected override async destroy(id: string): Promise<void> {
    const layout = await this.readLayout(id);
    const jail =
      layout?.jail ??
      (this.options.jailer
        ? jailLayout(id, this.firecrackerBinary(), this.options.jailer.chrootBaseDir ?? DEFAULT_CHROOT_BASE)
        : null);
    if (jail) {
      await removeTree(jail.jailDir);
      for (const dir of jailCgroupDirs(layout?.firecracker ?? this.firecrackerBinary(), jail.id))
        await rmdir(dir).catch(() => {});
    }
    await removeTree(this.state.vmDir(id));
  }

  private async removeSockets(layout: Layout): Promise<void> {
    for (const socket of [layout.api_socket, layout.vsock_host]) await rm(socket, { force: true });
    // Guest-initiated vsock connections use `<uds_path>_<port>`.
    await rm(`${layout.vsock_host}_${this.agentPort}`, { force: true });
  }

  private async liveVmm(id: string): Promise<{ vmm: VmmProcess; record: VmmRecord; layout: Layout } | null> {
    const record = await readJsonFile<VmmRecord>(this.state.file(id, 'firecracker.json'));
    if (!record || typeof record !== 'object') return null;
    const layout = await this.readLayout(id);
    if (!layout) return null;
    const vmm = this.launcher.attach(record, id);
    return vmm?.alive() ? { vmm, record, layout } : null;
  }

  private imageFor(spec: VmSpec): string {
    if (!spec.image) return this.rootfs;
    if (!this.options.imagesDir)
      throw invalid(
        `VM image ${JSON.stringify(spec.image)} was requested but the firecracker driver has no images directory configured`,
      );
    if (!IMAGE_NAME.test(spec.image) || spec.image.includes('..'))
      throw invalid(`image must be a name of letters, digits, '.', '_' or '-', got ${JSON.stringify(spec.image)}`);
    return join(this.options.imagesDir, `${spec.image}.ext4`);
  }

  private firecrackerBinary(): string {
    const name = this.options.firecrackerBinary ?? 'firecracker';
    return findOnPath(name) ?? name;
  }

  private jailerBinary(): string {
    const name = this.options.jailer?.binary ?? 'jailer';
    return findOnPath(name) ?? name;
  }

  private trackGuest(id: string, conn: GuestConnection): void {
    let set = this.guests.get(id);
    if (!set) this.guests.set(id, (set = new Set()));
    set.add(conn);
  }

  private closeGuests(id: string): void {
    const set = this.guests.get(id);
    if (!set) return;
    this.guests.delete(id);
    for (const conn of set) conn.close();
  }

  private async readLayout(id: string): Promise<Layout | null> {
    const layout = await readJsonFile<Layout>(this.state.file(id, 'layout.json'));
    return layout && typeof layout === 'object' && typeof layout.api_socket === 'string' ? layout : null;
  }

  private async logTail(id: string): Promise<string> {
    try {
      const text = (await readFile(this.state.file(id, 'firecracker.log'), 'utf8')).trim();
      return text ? `; firecracker.log ends with: ${text.slice(-600)}` : '';
    } catch {
      return '';
    }
  }
}

function running(id: string, record: VmmRecord): VmRuntimeInfo {
  return {
    id,
    state: 'running',
    pid: record.pid,
    ...(record.boot_ms !== undefined ? { boot_ms: record.boot_ms } : {}),
  };
}

async function waitGone(vmm: VmmProcess, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (vmm.alive()) {
    if (Date.now() >= deadline) return false;
    await sleep(20);
  }
  return true;
}

async function assertFile(path: string, label: string): Promise<void> {
  const info = await stat(path).catch(() => null);
  if (!info?.isFile())
    throw new AetheriumError(
      'driver_unavailable',
      `the firecracker driver's ${label} ${path} does not exist or is not a file`,
    );
}
