/**
 * The firecracker driver against Firecracker's published API description (no KVM needed): an
 * injected launcher starts a spec-validating fake of the API server (test/firecracker/firecracker-api.ts)
 * instead of the binary, and every request the driver sends is validated against
 * test/fixtures/firecracker/firecracker.yaml. The one real boot test runs only where /dev/kvm and a
 * firecracker binary exist.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AetheriumError } from '../src/domain/index.ts';
import type { ExecResult } from '../src/domain/index.ts';
import type { VmExit, VmSpec } from '../src/ports/vm-driver.ts';
import { FirecrackerApiClient } from '../src/adapters/vmm/firecracker/api-client.ts';
import {
  FirecrackerDriver,
  type FirecrackerDriverOptions,
} from '../src/adapters/vmm/firecracker/firecracker-driver.ts';
import { buildJailerArgs, jailId } from '../src/adapters/vmm/firecracker/jailer.ts';
import { ProcessLauncher } from '../src/adapters/vmm/firecracker/launcher.ts';
import {
  REQUEST_DEFINITIONS,
  actionBody,
  bootSourceBody,
  machineConfigBody,
  networkInterfaceBody,
  rootDriveBody,
  vsockBody,
} from '../src/adapters/vmm/firecracker/requests.ts';
import type { GuestConnectionFactory } from '../src/adapters/vmm/firecracker/vsock.ts';
import {
  FrameDecoder,
  FrameType,
  decodeJson,
  encodeData,
  encodeJson,
  type ExecMessage,
} from '../src/adapters/vmm/guest/protocol.ts';
import { createDriver } from '../src/adapters/vmm/create-driver.ts';
import { findOnPath } from '../src/adapters/vmm/which.ts';
import {
  FakeFirecracker,
  FirecrackerSpec,
  type FakeLauncherOptions,
  fakeLauncher,
} from './firecracker/firecracker-api.ts';

const spec = FirecrackerSpec.load();

/** A toy guest agent on the fake vsock: one JSON line in (the command), one JSON line out (the result). */
function toyGuest(stream: Socket): void {
  let buffered = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffered += chunk;
    const nl = buffered.indexOf('\n');
    if (nl < 0) return;
    const req = JSON.parse(buffered.slice(0, nl)) as { command: string; args: string[] };
    const result: ExecResult = { exit_code: 0, stdout: `${[req.command, ...req.args].join(' ')}\n`, stderr: '' };
    stream.end(`${JSON.stringify(result)}\n`);
  });
  stream.resume();
}

const toyClient: GuestConnectionFactory = (stream: Duplex) => ({
  exec: (request) =>
    new Promise<ExecResult>((resolve, reject) => {
      let buffered = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        buffered += chunk;
        const nl = buffered.indexOf('\n');
        if (nl >= 0) resolve(JSON.parse(buffered.slice(0, nl)) as ExecResult);
      });
      stream.on('error', reject);
      stream.on('close', () => reject(new Error('guest closed the stream')));
      stream.write(`${JSON.stringify({ command: request.command, args: request.args ?? [] })}\n`);
      stream.resume();
    }),
  close: () => stream.destroy(),
});

/**
 * A minimal guest agent on the host: on the vsock stream handed over after `CONNECT 10789` (the
 * fake's vsock server answers the handshake), it speaks the guest agent protocol: answers HELLO, and
 * runs every EXEC as "print hi, exit 0" (STARTED, STDOUT "hi\n", EXIT 0).
 */
function miniAgent(execs: ExecMessage[]) {
  return (stream: Socket): void => {
    const decoder = new FrameDecoder();
    stream.on('error', () => {});
    stream.on('data', (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) {
        if (frame.type === FrameType.HELLO) {
          stream.write(encodeJson(FrameType.HELLO, { version: 1, agent: 'test-agent', max_frame: 1 << 20 }));
        } else if (frame.type === FrameType.EXEC) {
          const exec = decodeJson(frame.payload) as unknown as ExecMessage;
          execs.push(exec);
          stream.write(encodeJson(FrameType.STARTED, { id: exec.id, pid: 42 }));
          stream.write(encodeData(FrameType.STDOUT, exec.id, Buffer.from('hi\n')));
          stream.write(encodeJson(FrameType.EXIT, { id: exec.id, exit_code: 0, signal: 0 }));
        }
      }
    });
    stream.resume();
  };
}

let dir: string;
let kernel: string;
let rootfs: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fc-'));
  kernel = join(dir, 'vmlinux');
  rootfs = join(dir, 'base.ext4');
  await writeFile(kernel, 'not really a kernel');
  await writeFile(rootfs, Buffer.alloc(64 * 1024, 1));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function vmSpec(id: string, extra: Partial<VmSpec> = {}): VmSpec {
  return { id, name: `vm ${id}`, vcpus: 1.5, memory_mb: 256, disk_gb: 1, ...extra };
}

function makeDriver(launcherOptions: FakeLauncherOptions = {}, options: Partial<FirecrackerDriverOptions> = {}) {
  const launcher = fakeLauncher(spec, { guest: toyGuest, ...launcherOptions });
  const driver = new FirecrackerDriver({
    stateDir: join(dir, 'state'),
    kernelImagePath: kernel,
    rootfsPath: rootfs,
    firecrackerBinary: '/opt/fc/bin/firecracker',
    guestConnection: toyClient,
    bootTimeoutMs: 3_000,
    stopGraceMs: 1_000,
    apiTimeoutMs: 1_000,
    launcher,
    ...options,
  });
  return { driver, launcher };
}

function operationsSent(fakes: FakeFirecracker[]): string[] {
  return fakes.flatMap((f) =>
    f.requests.map((r) =>
      r.template === '/actions'
        ? `PUT /actions ${(r.body as { action_type: string }).action_type}`
        : `${r.method} ${r.template}`,
    ),
  );
}

async function expectDriverError(
  promise: Promise<unknown>,
  ...fragments: (string | RegExp)[]
): Promise<AetheriumError> {
  let error: unknown;
  try {
    await promise;
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(AetheriumError);
  for (const f of fragments) expect((error as Error).message).toMatch(f);
  return error as AetheriumError;
}

describe('firecracker driver: every request validates against firecracker.yaml', () => {
  it('loads the spec from test/fixtures and knows the operations the driver uses', () => {
    expect(spec.version).toMatch(/^1\.17/);
    for (const [method, path] of [
      ['GET', '/'],
      ['PUT', '/boot-source'],
      ['PUT', '/drives/rootfs'],
      ['PUT', '/machine-config'],
      ['PUT', '/network-interfaces/eth0'],
      ['PUT', '/vsock'],
      ['PUT', '/actions'],
    ] as const) {
      expect(spec.match(method, path), `${method} ${path}`).not.toBeNull();
    }
  });

  it('create / exec / stop / start / delete without network or jailer: zero violations', async () => {
    const { driver, launcher } = makeDriver();
    const id = 'vm-plain';
    const info = await driver.create(vmSpec(id));
    expect(info.state).toBe('running');
    expect(info.boot_ms).toBeGreaterThanOrEqual(0);
    expect(launcher.launches).toHaveLength(1);
    const launch = launcher.launches[0]!;
    expect(launch.file).toBe('/opt/fc/bin/firecracker');
    expect(launch.args).toEqual(['--id', id, '--api-sock', join(dir, 'state', id, 'api.sock')]);

    // Idempotent: a second create is a no-op on the running VM.
    expect((await driver.create(vmSpec(id))).pid).toBe(info.pid);
    expect(launcher.launches).toHaveLength(1);

    const fake = launcher.instances[0]!;
    expect(fake.state).toBe('Running');
    expect(fake.bodies('PUT', '/machine-config')).toEqual([{ vcpu_count: 2, mem_size_mib: 256, smt: false }]);
    expect(fake.bodies('PUT', '/boot-source')).toEqual([
      { kernel_image_path: kernel, boot_args: 'console=ttyS0 reboot=k panic=1 pci=off' },
    ]);
    expect(fake.bodies('PUT', '/drives/{drive_id}')).toEqual([
      {
        drive_id: 'rootfs',
        path_on_host: join(dir, 'state', id, 'rootfs.ext4'),
        is_root_device: true,
        is_read_only: false,
      },
    ]);
    expect(fake.bodies('PUT', '/vsock')).toEqual([{ guest_cid: 3, uds_path: join(dir, 'state', id, 'vsock.sock') }]);
    expect(fake.bodies('PUT', '/network-interfaces/{iface_id}')).toEqual([]);
    // The per-VM rootfs is a copy of the base image.
    expect((await stat(join(dir, 'state', id, 'rootfs.ext4'))).size).toBe(64 * 1024);

    // exec goes through the vsock CONNECT handshake to the guest agent.
    const result = await driver.exec(id, { command: 'echo', args: ['hello', 'vsock'] });
    expect(result).toEqual({ exit_code: 0, stdout: 'echo hello vsock\n', stderr: '' });

    await driver.stop(id);
    expect(fake.exited).toBe(true);
    expect((await driver.status(id)).state).toBe('stopped');
    expect(existsSync(join(dir, 'state', id, 'api.sock'))).toBe(false);
    expect(existsSync(join(dir, 'state', id, 'vsock.sock'))).toBe(false);
    await expectDriverError(driver.exec(id, { command: 'true' }), /is stopped/);

    // start boots it again with a new VMM, from the same rootfs copy.
    expect((await driver.start(id)).state).toBe('running');
    expect(launcher.instances).toHaveLength(2);
    expect(await driver.list()).toEqual([expect.objectContaining({ id, state: 'running' })]);

    await driver.delete(id);
    expect(launcher.instances.every((f) => f.exited)).toBe(true);
    expect((await driver.status(id)).state).toBe('missing');
    expect(existsSync(join(dir, 'state', id))).toBe(false);
    await driver.delete(id); // deleting a missing VM is fine

    expect(operationsSent(launcher.instances)).toEqual(
      expect.arrayContaining([
        'GET /',
        'PUT /machine-config',
        'PUT /boot-source',
        'PUT /drives/{drive_id}',
        'PUT /vsock',
        'PUT /actions InstanceStart',
        'PUT /actions SendCtrlAltDel',
      ]),
    );
    expect(launcher.violations()).toEqual([]);
  });

  it('by default exec speaks the guest agent protocol over the vsock stream (CONNECT/OK, then HELLO, EXEC)', async () => {
    const execs: ExecMessage[] = [];
    const { driver, launcher } = makeDriver({ guest: miniAgent(execs) }, { guestConnection: undefined });
    const id = 'vm-agent';
    await driver.create(vmSpec(id, { env: { FROM_SPEC: '1' } }));
    expect(launcher.instances[0]!.vsockSocketPath).toBe(join(dir, 'state', id, 'vsock.sock'));

    const chunks: string[] = [];
    const result = await driver.exec(id, {
      command: 'echo',
      args: ['hi'],
      env: { FROM_REQUEST: '2' },
      onStdout: (c) => chunks.push(c),
    });
    expect(result).toEqual({ exit_code: 0, stdout: 'hi\n', stderr: '' });
    expect(chunks.join('')).toBe('hi\n');
    expect(execs).toHaveLength(1);
    expect(execs[0]).toMatchObject({
      command: 'echo',
      args: ['hi'],
      cwd: '/',
      stdin: false,
      env: { HOME: '/root', FROM_SPEC: '1', FROM_REQUEST: '2' },
    });
    expect(execs[0]!.env.PATH).toBeTruthy();
    expect(launcher.violations()).toEqual([]);
    await driver.delete(id);
  });

  it('with a tap device and the jailer: paths inside the chroot, network interface sent, zero violations', async () => {
    const chrootBase = join(dir, 'jail');
    const uid = process.getuid?.() ?? 0;
    const gid = process.getgid?.() ?? 0;
    const { driver, launcher } = makeDriver(
      {},
      {
        jailer: { binary: '/opt/fc/bin/jailer', uid, gid, chrootBaseDir: chrootBase, cgroupVersion: 2 },
        network: { tapName: (id) => `tap-${id.slice(0, 8)}`, mtu: 1500 },
      },
    );
    const id = 'vm.jailed_1';
    const jid = jailId(id);
    expect(jid).toMatch(/^[A-Za-z0-9-]{1,64}$/);
    await driver.create(vmSpec(id, { vcpus: 2, memory_mb: 512 }));
    const launch = launcher.launches[0]!;
    expect(launch.file).toBe('/opt/fc/bin/jailer');
    expect(launch.args).toEqual([
      '--id',
      jid,
      '--exec-file',
      '/opt/fc/bin/firecracker',
      '--uid',
      String(uid),
      '--gid',
      String(gid),
      '--chroot-base-dir',
      chrootBase,
      '--cgroup-version',
      '2',
      '--',
      '--api-sock',
      '/run/firecracker.socket',
    ]);
    const root = join(chrootBase, 'firecracker', jid, 'root');
    expect(launch.rootDir).toBe(root);
    expect(launch.apiSocketPath).toBe(join(root, 'run/firecracker.socket'));

    const fake = launcher.instances[0]!;
    expect(fake.bodies('PUT', '/boot-source')).toEqual([
      { kernel_image_path: '/vmlinux', boot_args: 'console=ttyS0 reboot=k panic=1 pci=off' },
    ]);
    expect(fake.bodies('PUT', '/drives/{drive_id}')).toEqual([
      { drive_id: 'rootfs', path_on_host: '/rootfs.ext4', is_root_device: true, is_read_only: false },
    ]);
    expect(fake.bodies('PUT', '/vsock')).toEqual([{ guest_cid: 3, uds_path: '/vsock.sock' }]);
    expect(fake.bodies('PUT', '/network-interfaces/{iface_id}')).toEqual([
      {
        iface_id: 'eth0',
        host_dev_name: 'tap-vm.jaile',
        guest_mac: expect.stringMatching(/^06:00(:[0-9a-f]{2}){4}$/),
        mtu: 1500,
      },
    ]);
    expect(fake.bodies('PUT', '/machine-config')).toEqual([{ vcpu_count: 2, mem_size_mib: 512, smt: false }]);
    expect(existsSync(join(root, 'rootfs.ext4'))).toBe(true);
    expect(existsSync(join(root, 'vmlinux'))).toBe(true);
    expect(fake.vsockSocketPath).toBe(join(root, 'vsock.sock'));
    expect((await driver.exec(id, { command: 'uname' })).stdout).toBe('uname\n');

    await driver.stop(id);
    await driver.start(id);
    await driver.delete(id);
    expect(existsSync(join(chrootBase, 'firecracker', jid))).toBe(false);
    expect(existsSync(join(dir, 'state', id))).toBe(false);
    expect(operationsSent(launcher.instances)).toEqual(
      expect.arrayContaining([
        'PUT /machine-config',
        'PUT /boot-source',
        'PUT /drives/{drive_id}',
        'PUT /network-interfaces/{iface_id}',
        'PUT /vsock',
        'PUT /actions InstanceStart',
        'PUT /actions SendCtrlAltDel',
      ]),
    );
    expect(launcher.violations()).toEqual([]);
  });

  it('the harness catches a body that breaks the spec: 400 with fault_message, recorded as a violation', async () => {
    const fake = new FakeFirecracker(spec);
    const socket = join(dir, 'api.sock');
    await fake.listen(socket);
    try {
      const api = new FirecrackerApiClient(socket, 1_000);
      await expectDriverError(
        api.put('/machine-config', { vcpu_count: 0, mem_size_mib: 128, vcpus: 1 }),
        'PUT /machine-config',
        'HTTP 400',
        /vcpu_count/,
        /unknown field "vcpus"/,
      );
      await expectDriverError(api.put('/drives/a', { drive_id: 'b', is_root_device: true }), /does not match/);
      await expectDriverError(api.put('/no-such-thing', {}), /Invalid request method and\/or path/);
      await expectDriverError(api.action('SendCtrlAltDel'), /before starting/);
      expect(fake.violations.map((v) => v.kind)).toEqual(['schema', 'schema', 'path-param', 'route', 'state']);
    } finally {
      await fake.exit();
    }
  });
});

describe('firecracker driver: errors become clear errors, and a failed create cleans up', () => {
  async function expectCleanCreateFailure(
    launcherOptions: FakeLauncherOptions,
    driverOptions: Partial<FirecrackerDriverOptions>,
    ...fragments: (string | RegExp)[]
  ) {
    const { driver, launcher } = makeDriver(launcherOptions, driverOptions);
    const id = 'vm-fail';
    const error = await expectDriverError(driver.create(vmSpec(id)), ...fragments);
    expect(error.code).toBe('driver_failed');
    expect(launcher.instances.every((f) => f.exited)).toBe(true);
    expect(existsSync(join(dir, 'state', id))).toBe(false);
    expect((await driver.status(id)).state).toBe('missing');
    expect(await driver.list()).toEqual([]);
    expect(launcher.violations()).toEqual([]);
    return { driver, launcher };
  }

  it('a 400 with fault_message names the method, the path and the fault', async () => {
    await expectCleanCreateFailure(
      {
        configure: (f) =>
          f.script('PUT', '/machine-config', {
            status: 400,
            body: { fault_message: 'The memory size (MiB) is invalid.' },
          }),
      },
      {},
      'PUT /machine-config',
      'HTTP 400',
      'The memory size (MiB) is invalid.',
    );
  });

  it('a non-JSON error body and an empty error body are reported as such', async () => {
    await expectCleanCreateFailure(
      { configure: (f) => f.script('PUT', '/boot-source', { status: 500, body: 'kaboom <html>' }) },
      {},
      'PUT /boot-source',
      'HTTP 500',
      /not a Firecracker error body.*kaboom/,
    );
    await expectCleanCreateFailure(
      { configure: (f) => f.script('PUT', '/vsock', { status: 400 }) },
      {},
      'PUT /vsock',
      'HTTP 400',
      '(empty body)',
    );
  });

  it('an API that never answers times out', async () => {
    await expectCleanCreateFailure(
      { configure: (f) => f.script('PUT', '/drives/{drive_id}', { hang: true }) },
      { apiTimeoutMs: 300 },
      'PUT /drives/rootfs',
      /no answer within 300 ms/,
    );
  });

  it('a failed InstanceStart, a connection dropped mid-request, a VMM that never opens its socket, a guest agent that never listens', async () => {
    await expectCleanCreateFailure(
      {
        configure: (f) =>
          f.script('PUT', '/actions', { status: 400, body: { fault_message: 'Cannot start microvm: KVM error' } }),
      },
      {},
      'PUT /actions',
      'KVM error',
    );
    await expectCleanCreateFailure(
      { configure: (f) => f.script('PUT', '/vsock', { destroy: true }) },
      {},
      'PUT /vsock',
      /failed/,
    );
    await expectCleanCreateFailure(
      { noSocket: true },
      { bootTimeoutMs: 400 },
      /Firecracker API socket was not ready within 400 ms/,
    );
    const { driver } = makeDriver({ guest: undefined }, { bootTimeoutMs: 500 });
    await expectDriverError(
      driver.create(vmSpec('vm-noagent')),
      /guest agent \(vsock port 10789\) was not ready within 500 ms/,
    );
    expect(existsSync(join(dir, 'state', 'vm-noagent'))).toBe(false);
  });

  it('fails fast, leaving nothing behind, when /dev/kvm or the firecracker binary is missing', async () => {
    const driver = new FirecrackerDriver({
      stateDir: join(dir, 'state'),
      kernelImagePath: kernel,
      rootfsPath: rootfs,
      firecrackerBinary: join(dir, 'no-firecracker'),
      kvmPath: join(dir, 'no-kvm'),
    });
    const started = Date.now();
    const error = await expectDriverError(
      driver.create(vmSpec('vm-nokvm')),
      /no-kvm is missing/,
      /no firecracker binary/,
    );
    expect(error.code).toBe('driver_unavailable');
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(existsSync(join(dir, 'state'))).toBe(false);
  });

  it('a missing kernel or rootfs image, or too many vCPUs, is refused before anything starts', async () => {
    const { driver, launcher } = makeDriver({}, { kernelImagePath: join(dir, 'missing-vmlinux') });
    await expectDriverError(driver.create(vmSpec('vm-a')), /kernel image .*missing-vmlinux does not exist/);
    await expectDriverError(makeDriver({}, {}).driver.create(vmSpec('vm-b', { vcpus: 33 })), /1 to 32 vCPUs/);
    await expectDriverError(
      makeDriver({}, {}).driver.create(vmSpec('vm-c', { image: 'ubuntu' })),
      /no images directory/,
    );
    expect(launcher.launches).toEqual([]);
  });

  it('stop kills a VMM whose guest ignores SendCtrlAltDel after the grace period', async () => {
    const { driver, launcher } = makeDriver({ onCtrlAltDel: 'ignore' }, { stopGraceMs: 300 });
    await driver.create(vmSpec('vm-stubborn'));
    const started = Date.now();
    await driver.stop('vm-stubborn');
    expect(Date.now() - started).toBeGreaterThanOrEqual(280);
    expect(launcher.instances[0]!.exited).toBe(true);
    expect(operationsSent(launcher.instances)).toContain('PUT /actions SendCtrlAltDel');
    expect((await driver.status('vm-stubborn')).state).toBe('stopped');
    await driver.delete('vm-stubborn');
    expect(launcher.violations()).toEqual([]);
  });

  it('recover() reattaches to live VMMs by pid file and API socket, and cleans up the lost ones', async () => {
    const { driver, launcher } = makeDriver();
    await driver.create(vmSpec('vm-live'));
    await driver.create(vmSpec('vm-dead'));
    await driver.create(vmSpec('vm-off'));
    await driver.stop('vm-off');
    await driver.close();
    await launcher.instances[1]!.exit(); // crashed while the agent was down
    const again = new FirecrackerDriver({
      stateDir: join(dir, 'state'),
      kernelImagePath: kernel,
      rootfsPath: rootfs,
      guestConnection: toyClient,
      launcher,
    });
    expect(await again.recover()).toEqual({ recovered: ['vm-live'], lost: ['vm-dead'], killed: [] });
    expect(existsSync(join(dir, 'state', 'vm-dead'))).toBe(false);
    expect((await again.status('vm-off')).state).toBe('stopped');
    expect((await again.exec('vm-live', { command: 'id' })).stdout).toBe('id\n');
    for (const id of ['vm-live', 'vm-off']) await again.delete(id);
    expect(readdirSync(join(dir, 'state'))).toEqual([]);
    expect(launcher.violations()).toEqual([]);
  });

  it('createDriver builds the firecracker driver', () => {
    const driver = createDriver('firecracker', { stateDir: join(dir, 'state') });
    expect(driver.info).toMatchObject({ name: 'firecracker', isolation: 'hardware-vm' });
  });
});

describe('firecracker driver: deaths, cut-short boots and strays', () => {
  const waitFor = async (check: () => boolean, ms: number): Promise<boolean> => {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
    return true;
  };

  it('a VMM that exits on its own is reported by watch (a stop and a delete are not); the VM is stopped, exec refuses it', async () => {
    const { driver, launcher } = makeDriver();
    const heard: VmExit[] = [];
    driver.watch((exit) => heard.push(exit));
    await driver.create(vmSpec('vm-crash'));
    await driver.create(vmSpec('vm-calm'));
    await launcher.instances[0]!.exit(); // the VMM crashed
    expect(await waitFor(() => heard.length > 0, 3_000)).toBe(true);
    expect(heard[0]).toMatchObject({ id: 'vm-crash', exit_code: null, signal: null });
    expect(heard[0]?.reason).toMatch(/^firecracker \(the VMM, host pid \d+\) is gone; its exit status is unknown/);
    expect((await driver.status('vm-crash')).state).toBe('stopped');
    await expectDriverError(driver.exec('vm-crash', { command: 'id' }), /stopped on its own/);
    await driver.stop('vm-calm');
    await driver.delete('vm-calm');
    await driver.delete('vm-crash');
    await new Promise((r) => setTimeout(r, 1_200));
    expect(heard.map((e) => e.id)).toEqual(['vm-crash']);
    await driver.close();
    expect(launcher.violations()).toEqual([]);
  });

  it('a VM below the minimum memory is refused before anything starts', async () => {
    const { driver, launcher } = makeDriver();
    const error = await expectDriverError(driver.create(vmSpec('vm-tiny', { memory_mb: 64 })), /at least 128 MB/);
    expect(error.code).toBe('validation_failed');
    expect(launcher.launches).toEqual([]);
  });

  it('a delete, or a close, while the VMM boots stops it and fails the create saying why', async () => {
    const { driver, launcher } = makeDriver({ noSocket: true }, { bootTimeoutMs: 20_000 });
    // Rejections are taken at once: the create fails while the test awaits the delete.
    const failure = (p: Promise<unknown>) =>
      p.then(
        () => Promise.reject(new Error('resolved')),
        (err: unknown) => err,
      );
    const creating = failure(driver.create(vmSpec('vm-cut')));
    expect(await waitFor(() => launcher.instances.length === 1, 3_000)).toBe(true);
    const cutAt = Date.now();
    await driver.delete('vm-cut');
    await expectDriverError(Promise.reject(await creating), /deleted while it was being created/);
    expect(Date.now() - cutAt).toBeLessThan(2_000);
    expect(launcher.instances[0]!.exited).toBe(true);
    expect(existsSync(join(dir, 'state', 'vm-cut'))).toBe(false);

    const closing = failure(driver.create(vmSpec('vm-closed')));
    expect(await waitFor(() => launcher.instances.length === 2, 3_000)).toBe(true);
    await driver.close();
    await expectDriverError(Promise.reject(await closing), /closed while VM "vm-closed" was being created/);
    expect(launcher.instances[1]!.exited).toBe(true);
    expect(existsSync(join(dir, 'state', 'vm-closed'))).toBe(false);
  });

  it('recover() kills a firecracker process of this state dir that no VM owns (found by its --api-sock)', async () => {
    // A stand-in process named firecracker whose command line points into the state dir.
    const binDir = join(dir, 'bin');
    await mkdir(binDir);
    const fake = join(binDir, 'firecracker');
    await copyFile('/bin/sh', fake);
    const stateDir = join(dir, 'state');
    const stray = spawn(fake, ['-c', 'sleep 600; :', '--api-sock', join(stateDir, 'vm-gone', 'api.sock')], {
      detached: true,
      stdio: 'ignore',
    });
    try {
      const real = new ProcessLauncher();
      const { launcher } = makeDriver();
      const driver = new FirecrackerDriver({
        stateDir,
        kernelImagePath: kernel,
        rootfsPath: rootfs,
        guestConnection: toyClient,
        launcher: { ...launcher, vmProcesses: (d: string) => real.vmProcesses(d) },
      });
      expect(await waitFor(() => real.vmProcesses(stateDir).length === 1, 3_000)).toBe(true);
      const report = await driver.recover();
      // The stray, and possibly the child its shell had just forked (it still bears its command line).
      expect(report.killed.map((k) => k.pid)).toContain(stray.pid);
      for (const k of report.killed) {
        expect(k).toEqual({ vm_id: 'vm-gone', pid: k.pid, reason: expect.stringMatching(/not in the state dir/) });
      }
      expect(await waitFor(() => real.vmProcesses(stateDir).length === 0, 3_000)).toBe(true);
      await driver.close();
    } finally {
      try {
        process.kill(-(stray.pid as number), 'SIGKILL');
      } catch {
        // gone with its group
      }
    }
  });
});

describe('firecracker request builders match the spec definitions', () => {
  const cases: Record<keyof typeof REQUEST_DEFINITIONS, unknown[]> = {
    bootSourceBody: [
      bootSourceBody({ kernelImagePath: '/vmlinux' }),
      bootSourceBody({ kernelImagePath: '/k', bootArgs: 'console=ttyS0', initrdPath: '/initrd' }),
    ],
    rootDriveBody: [
      rootDriveBody({ pathOnHost: '/rootfs.ext4' }),
      rootDriveBody({ pathOnHost: '/r', readOnly: true, driveId: 'root_2' }),
    ],
    machineConfigBody: [
      machineConfigBody({ vcpus: 0.25, memoryMb: 128 }),
      machineConfigBody({ vcpus: 32, memoryMb: 65536 }),
    ],
    networkInterfaceBody: [
      networkInterfaceBody({ hostDevName: 'tap0' }),
      networkInterfaceBody({ hostDevName: 'tap1', ifaceId: 'eth1', guestMac: '06:00:AC:10:00:02', mtu: 9000 }),
    ],
    vsockBody: [vsockBody({ udsPath: '/v.sock' }), vsockBody({ udsPath: '/v.sock', guestCid: 52 })],
    actionBody: [actionBody('InstanceStart'), actionBody('SendCtrlAltDel'), actionBody('FlushMetrics')],
  };

  for (const [builder, definition] of Object.entries(REQUEST_DEFINITIONS) as [
    keyof typeof REQUEST_DEFINITIONS,
    string,
  ][]) {
    it(`${builder} → definitions/${definition}: required fields present, no unknown fields, right types`, () => {
      const def = spec.definitions[definition] as { required?: string[]; properties: Record<string, unknown> };
      for (const body of cases[builder]) {
        expect(spec.validateDefinition(definition, body)).toEqual([]);
        for (const field of def.required ?? []) expect(body).toHaveProperty(field);
        for (const field of Object.keys(body as object)) expect(Object.keys(def.properties)).toContain(field);
      }
    });
  }

  it('the validator is not vacuous: unknown fields, missing required fields, bad enums and ranges are caught', () => {
    expect(spec.validateDefinition('Drive', { drive_id: 'x', is_root_device: true, readonly: true })).toEqual([
      '(body): unknown field "readonly"',
    ]);
    expect(spec.validateDefinition('BootSource', { boot_args: 'x' })).toEqual([
      '(body): missing required field "kernel_image_path"',
    ]);
    expect(spec.validateDefinition('InstanceActionInfo', { action_type: 'Reboot' })).toHaveLength(1);
    expect(spec.validateDefinition('MachineConfiguration', { vcpu_count: 33, mem_size_mib: 1.5 })).toHaveLength(2);
    expect(spec.validateDefinition('Vsock', { guest_cid: 2, uds_path: '/v' })).toEqual(['/guest_cid: must be >= 3']);
  });

  it('builders refuse what Firecracker would refuse', () => {
    expect(() => machineConfigBody({ vcpus: 33, memoryMb: 128 })).toThrow(/1 to 32/);
    expect(() => networkInterfaceBody({ hostDevName: 'tap0', mtu: 10 })).toThrow(/MTU/);
    expect(() => networkInterfaceBody({ hostDevName: 'tap0', guestMac: 'nope' })).toThrow(/MAC/);
    expect(() => vsockBody({ udsPath: '/v', guestCid: 2 })).toThrow(/CID/);
    expect(() => rootDriveBody({ pathOnHost: '/r', driveId: 'a/b' })).toThrow(/drive id/);
    expect(() =>
      buildJailerArgs({ vmId: 'x', firecrackerBinary: '/fc', jailer: { uid: -1, gid: 0 }, firecrackerArgs: [] }),
    ).toThrow(/uid/);
  });
});

describe('firecracker driver on real hardware', () => {
  const kvm = (() => {
    try {
      accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
      return true;
    } catch {
      return false;
    }
  })();
  const binary = findOnPath('firecracker');
  const canBoot = kvm && binary !== null;
  const why = [kvm ? null : '/dev/kvm absent', binary ? null : 'no firecracker binary on PATH']
    .filter(Boolean)
    .join(', ');
  let realDir: string;
  beforeAll(async () => {
    realDir = await mkdtemp(join(tmpdir(), 'fc-real-'));
  });
  afterAll(async () => {
    await rm(realDir, { recursive: true, force: true });
  });

  it.runIf(canBoot)(
    `boots a real Firecracker VM (needs /dev/kvm and a firecracker binary; ${canBoot ? 'present' : `absent here: ${why}`})`,
    async () => {
      // Images: FIRECRACKER_KERNEL / FIRECRACKER_ROOTFS, or the driver's defaults under /var/lib/aetherium/firecracker.
      const driver = new FirecrackerDriver({
        stateDir: join(realDir, 'state'),
        ...(process.env.FIRECRACKER_KERNEL ? { kernelImagePath: process.env.FIRECRACKER_KERNEL } : {}),
        ...(process.env.FIRECRACKER_ROOTFS ? { rootfsPath: process.env.FIRECRACKER_ROOTFS } : {}),
        bootTimeoutMs: 60_000,
      });
      const id = 'real-boot';
      try {
        const info = await driver.create(vmSpec(id, { vcpus: 1, memory_mb: 256 }));
        expect(info.state).toBe('running');
        const api = new FirecrackerApiClient(join(realDir, 'state', id, 'api.sock'));
        expect((await api.describeInstance()).state).toBe('Running');
        await driver.stop(id);
        expect((await driver.status(id)).state).toBe('stopped');
      } finally {
        await driver.delete(id);
      }
    },
    120_000,
  );
});
