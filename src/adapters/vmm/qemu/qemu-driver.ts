/**
 * The `qemu` driver: each VM is a QEMU `microvm` machine (KVM when /dev/kvm is usable, TCG software
 * emulation otherwise) booting the guest image of image/build.sh, with a copy-on-write qcow2 overlay
 * of the base root disk and the Aetherium guest agent on virtio-serial ports. See README.md.
 *
 * Files of a VM, in `<stateDir>/<vmId>/`:
 *   owner.json       the worker that created it (see vm-lifecycle.ts)
 *   vm.json          the spec; written once the first boot succeeded: its presence means "the VM exists"
 *   run.json         the running QEMU (pid, boot_ms, accel); removed by stop: its presence means "should run"
 *   disk.qcow2       the VM's root disk: an overlay on the image's rootfs.ext4
 *   qemu.pid         QEMU's -pidfile
 *   qmp.sock         QMP (query-status, system_powerdown, quit)
 *   events.sock      a second QMP monitor, held open by the exit watcher (SHUTDOWN, GUEST_PANICKED)
 *   agent-N.sock     virtio-serial ports of the guest agent, one session each (AGENT_PORTS)
 *   console.log      the guest's serial console
 *
 * QEMU is found again by its command line: `-name aetherium-<id>` and `-pidfile <stateDir>/<id>/qemu.pid`.
 */
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { readFileSync, statSync } from 'node:fs';
import { basename, posix } from 'node:path';
import { AetheriumError, DRIVER_MINIMUMS, invalid, notFound } from '../../../domain/index.ts';
import type { ExecResult } from '../../../domain/index.ts';
import type { DriverInfo, ExecRequest, VmDriver, VmRuntimeInfo, VmSpec } from '../../../ports/vm-driver.ts';
import { GuestClient } from '../guest/guest-client.ts';
import { type VmProcess, findVmProcesses, killHostProcesses, vmIdOfPath } from '../host-processes.ts';
import { abortError } from '../process-tree.ts';
import { isProcessAlive, readCmdline, readProcStat, waitForExit } from '../procfs.ts';
import { commandEnv, validateExecRequest, validateVmId } from '../validation.ts';
import { type Recovered, StatefulDriver } from '../vm-lifecycle.ts';
import { readJsonFile, removeTree, writeJsonAtomic } from '../vm-dir.ts';
import { findOnPath } from '../which.ts';
import { type GuestImage, DEFAULT_IMAGE_DIR, ensureGuestImage } from './image.ts';
import { kvmUsable, probeKvm } from './kvm.ts';
import { AGENT_PORTS, buildQemuArgs, hostTscKhz } from './qemu-args.ts';
import { qemuExitWords } from './qemu-exit.ts';
import { type QmpEvent, qmpCommand, qmpEvents, qmpQueryStatus } from './qmp.ts';

export interface QemuDriverOptions {
  stateDir: string;
  /** The worker id recorded in the VMs it creates; another worker's VMs in the same dir are left alone. */
  owner?: string;
  /** Where the guest image lives (built there by image/build.sh when missing). */
  imageDir?: string;
  /** 'auto' (default): KVM when /dev/kvm is read/writable, else TCG. */
  accel?: 'auto' | 'kvm' | 'tcg';
  /** How long create/start wait for the guest agent (default 30 s with KVM, 90 s with TCG). */
  bootTimeoutMs?: number;
}

interface VmRecord {
  spec: VmSpec;
  created_at: string;
}

interface RunRecord {
  pid: number;
  boot_ms: number;
  accel: 'kvm' | 'tcg';
  started_at: string;
}

const MAX_UNIX_SOCKET_PATH = 107;
const SHUTDOWN_GRACE_MS = 3_000;
const GiB = 1024 ** 3;

export class QemuDriver extends StatefulDriver<VmRecord> implements VmDriver {
  readonly info: DriverInfo;
  /** Resolved accelerator: in 'auto' mode KVM is probed (a real QEMU start) before the first boot. */
  accel: 'kvm' | 'tcg';
  private accelProbe: Promise<void> | null = null;
  /** In 'auto' mode with /dev/kvm present: boot the guest kernel once under KVM before trusting it. */
  private readonly probeAccel: boolean;
  private readonly qemu: string;
  private readonly qemuImg: string;
  private readonly imageDir: string;
  private readonly bootTimeoutMs: number;
  private readonly tscKhz = hostTscKhz();
  private readonly clients = new Map<string, Promise<GuestClient>>();
  private image: Promise<GuestImage> | null = null;

  constructor(options: QemuDriverOptions) {
    super(options.stateDir, 'qemu', options.owner);
    const qemu = findOnPath('qemu-system-x86_64');
    const qemuImg = findOnPath('qemu-img');
    if (!qemu || !qemuImg) {
      throw new AetheriumError(
        'driver_unavailable',
        'the qemu driver needs `qemu-system-x86_64` and `qemu-img` on PATH (Debian: apt-get install qemu-system-x86 qemu-utils)',
      );
    }
    this.qemu = qemu;
    this.qemuImg = qemuImg;
    this.imageDir = options.imageDir ?? DEFAULT_IMAGE_DIR;
    const wanted = options.accel ?? 'auto';
    this.accel = wanted === 'auto' ? (kvmUsable() ? 'kvm' : 'tcg') : wanted;
    this.probeAccel = wanted === 'auto' && this.accel === 'kvm';
    this.bootTimeoutMs = options.bootTimeoutMs ?? 90_000;
    this.info = {
      name: 'qemu',
      isolation: 'hardware-vm',
      warnings: [
        ...(this.accel === 'tcg'
          ? [
              'No KVM: VMs run under TCG software emulation, which is slow (seconds to boot, several times slower to run) but still a separate kernel.',
            ]
          : []),
        'disk_gb sets the size of the qcow2 overlay disk; the ext4 filesystem inside keeps the size of the base image (1 GiB by default) because the guest image has no resize2fs.',
        'VMs have no network device.',
      ],
      min: DRIVER_MINIMUMS.qemu,
    };
  }

  /** A new VM: allocate and boot it (under its lock, after the base checked it does not exist). */
  protected override async provision(spec: VmSpec, signal?: AbortSignal): Promise<VmRuntimeInfo> {
    const id = spec.id;
    this.checkSocketPaths(id);
    const startedAt = Date.now();
    await this.state.ensure();
    await this.halt(id, true); // a QEMU left by an interrupted create
    await removeTree(this.state.vmDir(id));
    const record: VmRecord = { spec: { ...spec, env: { ...(spec.env ?? {}) } }, created_at: new Date().toISOString() };
    try {
      const image = await this.guestImage();
      if (signal?.aborted) throw abortError(signal);
      await this.makeVmDir(id);
      const baseBytes = statSync(image.rootfs).size;
      const size = Math.max(baseBytes, Math.ceil(spec.disk_gb * GiB));
      await run(
        this.qemuImg,
        [
          'create',
          '-q',
          '-f',
          'qcow2',
          '-b',
          image.rootfs,
          '-F',
          'raw',
          this.state.file(id, 'disk.qcow2'),
          String(size),
        ],
        30_000,
      );
      const info = await this.boot(id, record.spec, startedAt, signal);
      await writeJsonAtomic(this.state.file(id, 'vm.json'), record);
      return info;
    } catch (err) {
      // A boot that failed, timed out or was aborted: nothing of it may keep running.
      await this.halt(id, true).catch(() => {});
      await removeTree(this.state.vmDir(id)).catch(() => {});
      throw err;
    }
  }

  async status(id: string): Promise<VmRuntimeInfo> {
    validateVmId(id);
    if (!(await this.readVm(id))) return { id, state: 'missing' };
    const live = await this.liveRun(id);
    return live ? { id, state: 'running', pid: live.pid, boot_ms: live.boot_ms } : { id, state: 'stopped' };
  }

  async exec(id: string, request: ExecRequest): Promise<ExecResult> {
    validateVmId(id);
    validateExecRequest(request);
    if (request.signal?.aborted) throw abortError(request.signal);
    // Sent under the VM's lock (a stop cannot slip in between the check and the start), awaited outside it.
    const pending = await this.mutex.run(id, async () => {
      this.assertOpen();
      const vm = await this.readVm(id);
      if (!vm) throw notFound('VM', id);
      if (!(await this.liveRun(id))) throw this.notRunning(id);
      const client = await this.client(id, 10_000, request.signal);
      // Wrapped: returning the bare promise would make the mutex wait for the command to finish.
      return {
        result: client.exec({
          command: request.command,
          args: request.args ?? [],
          env: commandEnv({ HOME: '/root' }, vm.spec.env, request.env),
          cwd: posix.resolve('/', request.cwd ?? '/'),
          stdin: request.stdin,
          stdinStream: request.stdinStream,
          timeout_ms: request.timeout_ms,
          signal: request.signal,
          onStdout: request.onStdout,
          onStderr: request.onStderr,
        }),
      };
    });
    return pending.result;
  }

  protected override async recoverVm(id: string): Promise<Recovered> {
    const vm = await this.readVm(id);
    const runRecord = await readJsonFile<RunRecord>(this.state.file(id, 'run.json'));
    if (vm && !runRecord) return 'stopped'; // stopped on purpose: `start` boots it again
    const live = vm ? await this.liveRun(id) : null;
    let healthy = false;
    if (live) {
      try {
        healthy = (await qmpQueryStatus(this.state.file(id, 'qmp.sock'))).running;
      } catch {
        healthy = false;
      }
    }
    if (vm && live && healthy) {
      this.watchQemu(id, live.pid, vm.spec);
      return 'running';
    }
    await this.halt(id, true);
    await removeTree(this.state.vmDir(id));
    return 'lost';
  }

  /** QEMU processes whose -pidfile is in a VM directory of this state dir. */
  protected override vmProcesses(id?: string): VmProcess[] {
    return findVmProcesses((argv) => {
      if (!basename(argv[0] ?? '').startsWith('qemu-system')) return null;
      const at = argv.indexOf('-pidfile');
      const vm = at < 0 ? null : vmIdOfPath(this.state.path, argv[at + 1] ?? '', 'qemu.pid');
      return vm !== null && (id === undefined || vm === id) ? vm : null;
    });
  }

  protected override async keptPids(id: string): Promise<Set<number>> {
    const live = (await this.readVm(id)) ? await this.liveRun(id) : null;
    return new Set(live ? [live.pid] : []);
  }

  /**
   * Closes this instance's agent sessions (the agent kills their commands) and stops the VMs it is
   * still booting; the running VMs keep running.
   */
  async close(): Promise<void> {
    await this.shutdown();
    const clients = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(clients.map(async (c) => (await c.catch(() => null))?.close()));
  }

  // --- internals ---------------------------------------------------------------------------

  private guestImage(): Promise<GuestImage> {
    this.image ??= ensureGuestImage({ dir: this.imageDir }).catch((err: unknown) => {
      this.image = null;
      throw err;
    });
    return this.image;
  }

  protected override async ensureRunning(id: string, vm: VmRecord, signal?: AbortSignal): Promise<VmRuntimeInfo> {
    const live = await this.liveRun(id);
    if (live) return { id, state: 'running', pid: live.pid, boot_ms: live.boot_ms };
    try {
      return await this.boot(id, vm.spec, Date.now(), signal);
    } catch (err) {
      await this.halt(id, true).catch(() => {});
      throw err;
    }
  }

  private async boot(id: string, spec: VmSpec, startedAt: number, signal?: AbortSignal): Promise<VmRuntimeInfo> {
    const image = await this.guestImage();
    if (this.probeAccel) {
      // /dev/kvm can be present yet unusable (e.g. nested virtualisation refusing MSRs): try it once.
      this.accelProbe ??= probeKvm(this.qemu, image.kernel).then((ok) => {
        if (ok) return;
        this.accel = 'tcg';
        this.info.warnings.unshift(
          '/dev/kvm is present but a guest kernel does not run under KVM here: falling back to TCG software emulation (slow).',
        );
      });
      await this.accelProbe;
    }
    const f = (name: string): string => this.state.file(id, name);
    for (const name of ['qemu.pid', 'qmp.sock', 'events.sock', ...agentSocketNames()])
      await rm(f(name), { force: true });
    const args = buildQemuArgs({
      vmId: id,
      kernel: image.kernel,
      initramfs: image.initramfs,
      disk: f('disk.qcow2'),
      vcpus: spec.vcpus,
      memoryMb: spec.memory_mb,
      accel: this.accel,
      tscKhz: this.tscKhz,
      agentSockets: agentSocketNames().map(f),
      qmpSocket: f('qmp.sock'),
      eventsSocket: f('events.sock'),
      pidFile: f('qemu.pid'),
      consoleLog: f('console.log'),
    });
    if (signal?.aborted) throw abortError(signal);
    // -daemonize: the parent exits once the VM is set up; the VM outlives this process.
    await run(this.qemu, args, 30_000);
    const launchedAt = new Date();
    const pidText = await readFile(f('qemu.pid'), 'utf8').catch(() => null);
    if (pidText === null) {
      // QEMU removes its pid file as it exits: it stopped right after it started (e.g. the guest reset at once).
      throw new AetheriumError(
        'driver_failed',
        `qemu exited right after it started VM ${id} (no pid file left); console: ${this.consoleTail(id)}`,
      );
    }
    const pid = Number(pidText.trim());
    if (!Number.isInteger(pid) || pid <= 1)
      throw new AetheriumError('driver_failed', `qemu wrote no usable pid file for VM ${id}`);
    // An abort that came while QEMU was starting: an 'abort' listener added now would never fire.
    if (signal?.aborted) throw abortError(signal);
    // Stop waiting for the agent as soon as QEMU dies, or the caller aborts.
    const watcher = new AbortController();
    const onAbort = (): void => watcher.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const poll = setInterval(() => {
      if (!isProcessAlive(pid))
        watcher.abort(new AetheriumError('driver_failed', `qemu exited during boot; console: ${this.consoleTail(id)}`));
    }, 100);
    try {
      const client = await this.connectAgent(id, this.bootTimeoutMs, watcher.signal);
      this.adoptClient(id, client);
    } catch (err) {
      if (signal?.aborted) throw abortError(signal);
      if (watcher.signal.aborted && watcher.signal.reason instanceof AetheriumError) throw watcher.signal.reason;
      throw new AetheriumError(
        'driver_failed',
        `VM ${id} did not become ready: ${(err as Error).message}; console: ${this.consoleTail(id)}`,
      );
    } finally {
      clearInterval(poll);
      signal?.removeEventListener('abort', onAbort);
    }
    const record: RunRecord = {
      pid,
      boot_ms: Date.now() - startedAt,
      accel: this.accel,
      started_at: new Date().toISOString(),
    };
    await writeJsonAtomic(f('run.json'), record);
    // A death during the boot fails the create (the poll above); from now on it is a VM that died.
    this.watchQemu(id, pid, spec);
    return { id, state: 'running', pid, boot_ms: record.boot_ms, launched_at: launchedAt };
  }

  /**
   * Watches QEMU: its pid, and its events monitor (the connection closes the moment QEMU exits;
   * SHUTDOWN says why a guest ended). The death is described from the last event and the end of
   * the guest's console (a kernel panic, out of memory).
   */
  private watchQemu(id: string, pid: number, spec: VmSpec): void {
    const startTime = readProcStat(pid)?.startTime;
    const consoleFrom = fileSize(this.state.file(id, 'console.log'));
    const events: QmpEvent[] = [];
    const stream = qmpEvents(this.state.file(id, 'events.sock'), {
      onEvent: (event) => {
        if (event.event === 'SHUTDOWN' || event.event === 'GUEST_PANICKED') events.push(event);
      },
      onClose: () => this.watcher.poke(id),
    });
    this.watcher.track(id, {
      alive: () => isProcessAlive(pid, startTime),
      describe: async () =>
        qemuExitWords({
          pid,
          events,
          console: readFileFrom(this.state.file(id, 'console.log'), consoleFrom),
          memoryMb: spec.memory_mb,
        }),
      dispose: () => stream.close(),
    });
  }

  /**
   * Connects to one free agent port. QEMU serves one client per port, so a port held by another
   * driver instance does not answer the hello: try them all at once and keep the first answer.
   */
  private async connectAgent(id: string, timeoutMs: number, signal?: AbortSignal): Promise<GuestClient> {
    const attempts = agentSocketNames().map((name) =>
      GuestClient.connect(this.state.file(id, name), { timeoutMs, signal }),
    );
    try {
      const winner = await Promise.any(attempts);
      for (const attempt of attempts)
        void attempt.then(
          (c) => c !== winner && c.close(),
          () => {},
        );
      return winner;
    } catch (err) {
      const first = (err as AggregateError).errors?.[0] as Error | undefined;
      throw first ?? (err as Error);
    }
  }

  private adoptClient(id: string, client: GuestClient): void {
    const promise = Promise.resolve(client);
    this.clients.set(id, promise);
    client.onClose(() => {
      if (this.clients.get(id) === promise) this.clients.delete(id);
    });
  }

  private async client(id: string, timeoutMs: number, signal?: AbortSignal): Promise<GuestClient> {
    const existing = this.clients.get(id);
    if (existing) {
      const client = await existing.catch(() => null);
      if (client?.isOpen) return client;
    }
    const promise = this.connectAgent(id, timeoutMs, signal);
    this.clients.set(id, promise);
    try {
      const client = await promise;
      client.onClose(() => {
        if (this.clients.get(id) === promise) this.clients.delete(id);
      });
      return client;
    } catch (err) {
      if (this.clients.get(id) === promise) this.clients.delete(id);
      if (signal?.aborted) throw abortError(signal);
      throw err;
    }
  }

  /**
   * Stops QEMU: the agent kills the commands and syncs the disk, then QMP `quit`. Without an agent
   * answer: QMP `system_powerdown`, a grace period, `quit`, and SIGKILL as the last resort. `kill`:
   * SIGKILL at once (a boot that failed has nothing to sync). Either way, any other QEMU of the VM
   * found by its command line (a boot cut short before its pid file was read) is killed too.
   */
  protected override async halt(id: string, kill = false): Promise<void> {
    this.watcher.untrack(id); // whatever halts a VM was asked to: not a death
    const f = (name: string): string => this.state.file(id, name);
    const live = await this.liveRun(id, true);
    if (live && kill) {
      try {
        process.kill(live.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
      await waitForExit(live.pid, 5_000);
    } else if (live) {
      let synced = false;
      try {
        const client = await this.client(id, 3_000);
        synced = await client.shutdown(SHUTDOWN_GRACE_MS);
      } catch {
        synced = false;
      }
      if (!synced) {
        await qmpCommand(f('qmp.sock'), 'system_powerdown', undefined, 2_000).catch(() => {});
        await waitForExit(live.pid, SHUTDOWN_GRACE_MS);
      }
      if (isProcessAlive(live.pid)) await qmpCommand(f('qmp.sock'), 'quit', undefined, 2_000).catch(() => {});
      if (!(await waitForExit(live.pid, 5_000))) {
        try {
          process.kill(live.pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
        await waitForExit(live.pid, 5_000);
      }
    }
    await killHostProcesses(this.vmProcesses(id));
    const client = this.clients.get(id);
    this.clients.delete(id);
    (await client?.catch(() => null))?.close();
    for (const name of ['run.json', 'qemu.pid', 'qmp.sock', 'events.sock', ...agentSocketNames()])
      await rm(f(name), { force: true });
  }

  /** The run record when its QEMU is alive and really ours (pid reuse is checked against the command line). */
  private async liveRun(id: string, evenWithoutRecord = false): Promise<RunRecord | null> {
    let record = await readJsonFile<RunRecord>(this.state.file(id, 'run.json'));
    if (!record && evenWithoutRecord) {
      // A boot that was interrupted before run.json: the pid file may still name a QEMU.
      const pid = Number((await readFile(this.state.file(id, 'qemu.pid'), 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 1) record = { pid, boot_ms: 0, accel: this.accel, started_at: '' };
    }
    if (!record || !Number.isInteger(record.pid) || !isProcessAlive(record.pid)) return null;
    const pidFile = this.state.file(id, 'qemu.pid');
    return readCmdline(record.pid)?.includes(pidFile) ? record : null;
  }

  private checkSocketPaths(id: string): void {
    const longest = this.state.file(id, 'agent-0.sock');
    if (Buffer.byteLength(longest) > MAX_UNIX_SOCKET_PATH) {
      throw invalid(
        `state dir + VM id too long for a unix socket path (${Buffer.byteLength(longest)} > ${MAX_UNIX_SOCKET_PATH} bytes): ${longest}`,
      );
    }
  }

  private consoleTail(id: string): string {
    try {
      const text = readFileSync(this.state.file(id, 'console.log'), 'utf8');
      return JSON.stringify(text.slice(-600));
    } catch {
      return '(none)';
    }
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** The file's text from byte `from` on (at most its last 16 KiB). */
function readFileFrom(path: string, from: number): string {
  try {
    const buffer = readFileSync(path);
    return buffer.subarray(Math.max(from, buffer.length - 16_384)).toString('utf8');
  } catch {
    return '';
  }
}

function agentSocketNames(): string[] {
  return Array.from({ length: AGENT_PORTS }, (_, i) => `agent-${i}.sock`);
}

/** Runs a helper to completion; non-zero exit is a driver_failed error carrying its stderr. */
function run(file: string, args: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: timeoutMs });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 4_000) stderr += chunk.toString('utf8');
    });
    child.on('error', (err) => reject(new AetheriumError('driver_failed', `${file}: ${err.message}`)));
    child.on('close', (code, sig) => {
      if (code === 0) resolve();
      else
        reject(
          new AetheriumError(
            'driver_failed',
            `${file.split('/').pop() ?? file} failed (${sig ?? `exit ${String(code)}`}): ${stderr.trim()}`,
          ),
        );
    });
  });
}
