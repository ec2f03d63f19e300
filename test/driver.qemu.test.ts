import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VmExit, VmSpec } from '../src/ports/vm-driver.ts';
import { detectDrivers } from '../src/adapters/vmm/detect.ts';
import {
  FrameDecoder,
  FrameType,
  MAX_FRAME,
  PROTOCOL_VERSION,
  encodeFrame,
  encodeJson,
} from '../src/adapters/vmm/guest/protocol.ts';
import { ensureGuestImage } from '../src/adapters/vmm/qemu/image.ts';
import { kvmUsable, probeKvm } from '../src/adapters/vmm/qemu/kvm.ts';
import { QemuDriver } from '../src/adapters/vmm/qemu/qemu-driver.ts';
import { findOnPath } from '../src/adapters/vmm/which.ts';
import { driverConformance, eventually, hostProcessesMentioning } from './conformance/driver.suite.ts';

// The image is built once (idempotent; ~10 s the first time, with a kernel download) into the default cache dir.
const IMAGE_DIR = process.env.AETHERIUM_IMAGE_DIR ?? '.aetherium/images/default';
const detected = await detectDrivers();

it('this host can run the qemu driver (qemu-system-x86 and qemu-utils installed)', () => {
  expect(
    detected.available,
    `qemu driver unavailable: ${detected.notes.qemu ?? ''}; apt-get install -y qemu-system-x86 qemu-utils`,
  ).toContain('qemu');
});

describe('qemu driver (microvm)', () => {
  // Probed once for the file: every driver in 'auto' mode would otherwise probe KVM again (up to 10 s).
  let accel: 'kvm' | 'tcg' = 'tcg';
  beforeAll(async () => {
    const image = await ensureGuestImage({ dir: IMAGE_DIR });
    const qemu = findOnPath('qemu-system-x86_64');
    if (qemu && kvmUsable() && (await probeKvm(qemu, image.kernel))) accel = 'kvm';
  }, 600_000);

  // The guest's processes are not the host's: look for them inside the VM. The marker travels in
  // an environment variable, so the search itself does not match it. A stopped VM runs nothing.
  driverConformance('qemu', async (stateDir) => new QemuDriver({ stateDir, imageDir: IMAGE_DIR, accel }), {
    // No guest kernel answers within 50 ms, even under KVM: QEMU is up and must be killed.
    impatient: async (stateDir) => new QemuDriver({ stateDir, imageDir: IMAGE_DIR, accel, bootTimeoutMs: 50 }),
    processesWithArg: async (driver, vmId, arg) => {
      if ((await driver.status(vmId)).state !== 'running') return 0;
      const script =
        'n=0; for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null | grep -qF -- "$M" && n=$((n+1)); done; echo $n';
      const result = await driver.exec(vmId, { command: 'sh', args: ['-c', script], env: { M: arg } });
      return Number(result.stdout.trim());
    },
  });

  describe('a real guest', { timeout: 120_000 }, () => {
    let stateDir: string;
    let driver: QemuDriver;
    const ids = new Set<string>();
    const spec = (name: string): VmSpec => {
      const s: VmSpec = { id: `qemu-${randomUUID().slice(0, 8)}`, name, vcpus: 1, memory_mb: 256, disk_gb: 1 };
      ids.add(s.id);
      return s;
    };
    const alpha = spec('alpha');
    const bravo = spec('bravo');

    beforeAll(async () => {
      stateDir = await mkdtemp(join(tmpdir(), 'aetherium-qemu-'));
      driver = new QemuDriver({ stateDir, imageDir: IMAGE_DIR, accel });
      await Promise.all([driver.create(alpha), driver.create(bravo)]);
    }, 240_000);

    afterAll(async () => {
      for (const id of ids) await driver.delete(id).catch(() => {});
      await driver.close();
      await rm(stateDir, { recursive: true, force: true });
    }, 120_000);

    it('is a hardware VM with its own kernel', async () => {
      expect(driver.info.isolation).toBe('hardware-vm');
      const inside = (await driver.exec(alpha.id, { command: 'uname', args: ['-r'] })).stdout.trim();
      const host = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
      expect(inside).toMatch(/cloud-amd64$/);
      expect(inside).not.toBe(host);
      const status = await driver.status(alpha.id);
      expect(status.state).toBe('running');
      expect(status.boot_ms).toBeGreaterThan(0);
    });

    it('the agent survives garbage and oversized frames, answers them with error frames, and execs still work', async () => {
      // Take the driver's agent session away (closing a driver leaves the VM running) and talk raw.
      const raw = new QemuDriver({ stateDir, imageDir: IMAGE_DIR, accel });
      await raw.close();
      const socketPath = join(stateDir, bravo.id, 'agent-3.sock');
      const socket = connect(socketPath);
      const decoder = new FrameDecoder();
      const frames: Array<{ type: number; json: Record<string, unknown> }> = [];
      socket.on('data', (chunk: Buffer) => {
        for (const f of decoder.push(chunk))
          frames.push({
            type: f.type,
            json:
              f.type === FrameType.STDOUT
                ? { data: f.payload.subarray(4).toString() }
                : (JSON.parse(f.payload.toString()) as Record<string, unknown>),
          });
      });
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      const waitFor = async (pred: () => boolean, ms = 10_000): Promise<void> => {
        const deadline = Date.now() + ms;
        while (!pred()) {
          if (Date.now() > deadline) throw new Error(`timed out; frames: ${JSON.stringify(frames)}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      socket.write(encodeJson(FrameType.HELLO, { version: PROTOCOL_VERSION }));
      await waitFor(() => frames.some((f) => f.type === FrameType.HELLO));
      const errors = () => frames.filter((f) => f.type === FrameType.ERROR).map((f) => f.json.code);
      socket.write(encodeFrame(FrameType.EXEC, Buffer.from('{"id": 7, "command": [nope'))); // malformed JSON
      socket.write(encodeFrame(0x7e, Buffer.from('x'))); // unknown type
      socket.write(encodeFrame(FrameType.EXEC, Buffer.from('{"id":8,"command":"echo","env":{"A":1}}'))); // wrong value type
      socket.write(Buffer.from([0, 0, 0, 0])); // zero length
      const huge = Buffer.alloc(4 + MAX_FRAME + 6, 0x41); // oversized: skipped whole
      huge.writeUInt32BE(MAX_FRAME + 6, 0);
      socket.write(huge);
      socket.write(
        encodeJson(FrameType.EXEC, {
          id: 9,
          command: 'echo',
          args: ['after garbage'],
          env: { PATH: '/bin' },
          cwd: '/',
          stdin: false,
        }),
      );
      await waitFor(() => frames.some((f) => f.type === FrameType.EXIT && f.json.id === 9));
      expect(errors()).toEqual(['bad_json', 'unknown_type', 'bad_json', 'bad_frame', 'frame_too_large']);
      expect(frames.find((f) => f.type === FrameType.STDOUT)?.json.data).toBe('after garbage\n');
      expect(frames.find((f) => f.type === FrameType.EXIT)?.json).toMatchObject({ id: 9, exit_code: 0 });
      // Garbage and a disconnect in the middle of a frame: the next host starts from a clean parser.
      socket.write(Buffer.from([0, 0, 0, 50, FrameType.EXEC, 0x7b]));
      socket.destroy();
      await new Promise((r) => setTimeout(r, 300));
      expect((await driver.exec(bravo.id, { command: 'echo', args: ['still fine'] })).stdout).toBe('still fine\n');
      expect((await driver.exec(bravo.id, { command: 'cat', stdin: 'x'.repeat(300_000) })).stdout.length).toBe(300_000);
    });

    it('recover: a new driver instance on the same state dir reattaches to both running VMs', async () => {
      const pids = [(await driver.status(alpha.id)).pid, (await driver.status(bravo.id)).pid];
      const second = new QemuDriver({ stateDir, imageDir: IMAGE_DIR, accel });
      try {
        const report = await second.recover();
        expect(report.recovered.sort()).toEqual([alpha.id, bravo.id].sort());
        expect(report.lost).toEqual([]);
        expect([(await second.status(alpha.id)).pid, (await second.status(bravo.id)).pid]).toEqual(pids);
        const results = await Promise.all([alpha, bravo].map((vm) => second.exec(vm.id, { command: 'hostname' })));
        expect(results.map((r) => r.exit_code)).toEqual([0, 0]);
      } finally {
        await second.close();
      }
      expect((await driver.exec(alpha.id, { command: 'echo', args: ['first driver too'] })).stdout).toBe(
        'first driver too\n',
      );
    });

    it('recover reports a VM whose QEMU died as lost and frees its overlay and sockets', async () => {
      const vm = spec('crashing');
      await driver.create(vm);
      expect(existsSync(join(stateDir, vm.id, 'disk.qcow2'))).toBe(true);
      const pid = (await driver.status(vm.id)).pid as number;
      process.kill(pid, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 300));
      expect((await driver.status(vm.id)).state).toBe('stopped');
      const restarted = new QemuDriver({ stateDir, imageDir: IMAGE_DIR, accel });
      const report = await restarted.recover();
      await restarted.close();
      expect(report.lost).toEqual([vm.id]);
      expect(report.recovered.sort()).toEqual([alpha.id, bravo.id].sort());
      expect(existsSync(join(stateDir, vm.id))).toBe(false);
    });

    it('a guest kernel panic ends the VM and is reported with the panic message', async () => {
      const vm = spec('panicking');
      await driver.create(vm);
      const heard: VmExit[] = [];
      const off = driver.watch((exit) => heard.push(exit));
      try {
        // The kernel reboots on a panic (panic=-1) and QEMU, with -no-reboot, exits.
        await driver.exec(vm.id, { command: 'sh', args: ['-c', 'echo c > /proc/sysrq-trigger'] }).catch(() => {});
        expect(await eventually(() => heard.some((e) => e.id === vm.id), 10_000)).toBe(true);
        const exit = heard.find((e) => e.id === vm.id);
        expect(exit?.reason).toMatch(/^the guest kernel panicked: .*sysrq/i);
        expect(exit?.oom).toBeFalsy();
        expect((await driver.status(vm.id)).state).toBe('stopped');
      } finally {
        off();
        await driver.delete(vm.id);
      }
    });

    it('a delete or an abort in the middle of a boot stops QEMU at once and fails the create', async () => {
      for (const how of ['delete', 'abort'] as const) {
        const vm = spec(`cut-short-${how}`);
        const vmDir = join(stateDir, vm.id);
        const controller = new AbortController();
        let settled = false;
        const creating = driver.create(vm, controller.signal).then(
          () => 'booted',
          (err: Error) => err,
        );
        void creating.then(() => {
          settled = true;
        });
        // Up: QEMU's command line names the VM's pid file; still booting: the create has not returned.
        expect(await eventually(() => settled || hostProcessesMentioning(`${vmDir}/qemu.pid`).length > 0, 30_000)).toBe(
          true,
        );
        expect(settled, 'the boot was over before it could be cut short').toBe(false);
        const cutAt = Date.now();
        if (how === 'delete') await driver.delete(vm.id);
        else controller.abort();
        const outcome = await creating;
        expect(outcome).toBeInstanceOf(Error);
        if (how === 'delete') expect((outcome as Error).message).toMatch(/deleted while it was being created/);
        else expect((outcome as Error).name).toBe('AbortError');
        expect(Date.now() - cutAt).toBeLessThan(5_000);
        expect(hostProcessesMentioning(vmDir)).toEqual([]);
        expect(existsSync(vmDir)).toBe(false);
      }
    });
  });
});
