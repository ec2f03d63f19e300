/** The QEMU command line of one micro-VM, and the host facts it depends on. */
import { readFileSync } from 'node:fs';

/** Number of virtio-serial ports (agent sessions) per VM: one per concurrently connected driver instance. */
export const AGENT_PORTS = 4;

export interface QemuArgsInput {
  /** The VM id: the guest is named `aetherium-<id>`, so that `ps` tells one QEMU from another. */
  vmId: string;
  kernel: string;
  initramfs: string;
  disk: string;
  vcpus: number;
  memoryMb: number;
  accel: 'kvm' | 'tcg';
  tscKhz: number | null;
  /** Unix socket paths of the agent ports (AGENT_PORTS of them). */
  agentSockets: string[];
  qmpSocket: string;
  /** A second QMP monitor, held open by the exit watcher for QEMU's events. */
  eventsSocket: string;
  /** Inside the VM's directory of the state dir: with it, recover() tells the VMs of this state dir. */
  pidFile: string;
  consoleLog: string;
}

export function kernelCommandLine(tscKhz: number | null): string {
  return [
    'console=ttyS0',
    'quiet',
    'panic=-1',
    // Without a calibrated TSC the guest hangs at random under TCG; KVM guests do not need it but it does no harm.
    ...(tscKhz ? [`tsc_early_khz=${tscKhz}`, 'tsc=reliable'] : []),
    // An idle guest must halt, not spin: with `-cpu max` under TCG the kernel would otherwise pick
    // a polling idle loop (MWAIT is emulated as a no-op), and every idle VM would burn a host core.
    'idle=halt',
    'rootwait',
  ].join(' ');
}

export function buildQemuArgs(input: QemuArgsInput): string[] {
  const args = [
    '-name',
    `aetherium-${input.vmId}`,
    '-M',
    'microvm',
    '-accel',
    input.accel,
    '-cpu',
    input.accel === 'kvm' ? 'host' : 'max',
    '-smp',
    String(Math.max(1, Math.ceil(input.vcpus))),
    '-m',
    String(input.memoryMb),
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    '-no-reboot',
    '-kernel',
    input.kernel,
    '-initrd',
    input.initramfs,
    '-append',
    kernelCommandLine(input.tscKhz),
    '-chardev',
    `file,id=console,path=${input.consoleLog}`,
    '-serial',
    'chardev:console',
    '-device',
    'virtio-serial-device,max_ports=8',
  ];
  input.agentSockets.forEach((path, index) => {
    args.push('-chardev', `socket,id=agent${index},path=${path},server=on,wait=off`);
    args.push('-device', `virtserialport,chardev=agent${index},name=org.aetherium.agent.${index}`);
  });
  args.push(
    '-drive',
    `id=root,file=${input.disk},format=qcow2,if=none,cache=writeback`,
    '-device',
    'virtio-blk-device,drive=root',
    '-qmp',
    `unix:${input.qmpSocket},server=on,wait=off`,
    '-qmp',
    `unix:${input.eventsSocket},server=on,wait=off`,
    '-pidfile',
    input.pidFile,
    '-daemonize',
  );
  return args;
}

/** The host TSC frequency in kHz: the kernel's measured value when exposed, else `cpu MHz`. */
export function hostTscKhz(): number | null {
  for (const file of ['/sys/devices/system/cpu/cpu0/tsc_freq_khz']) {
    try {
      const khz = Number(readFileSync(file, 'utf8').trim());
      if (Number.isFinite(khz) && khz > 0) return Math.round(khz);
    } catch {
      // not exposed by this kernel
    }
  }
  try {
    const match = /^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (match) return Math.round(Number(match[1]) * 1000);
  } catch {
    // no /proc
  }
  return null;
}
