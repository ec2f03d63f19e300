/** Whether QEMU can use KVM on this host: the device, and a guest kernel that really runs on it. */
import { spawn } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';

export function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', fsConstants.R_OK | fsConstants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * True when a guest kernel really runs under KVM here. /dev/kvm can be present and QEMU start with it
 * (a paused machine, even a BIOS, runs), yet a Linux guest never gets past its first instruction
 * (nested virtualisation that refuses MSRs, as on hosts that are themselves microVMs), or prints its
 * banner and then stops on an instruction the nested KVM cannot emulate (`KVM internal error …
 * emulation failure`: a locked cmpxchg16b, seen on such hosts). So the probe boots the guest
 * image's kernel, without a root disk, and waits for the end of the kernel's own boot: it frees its
 * init memory, or panics for want of a root filesystem (and QEMU exits, -no-reboot). The banner
 * alone proves nothing.
 */
/** Lines the kernel prints only once its own boot is over: it has run, not just started. */
const KERNEL_BOOTED = /Freeing unused kernel|Run \/init as init process|VFS: Unable to mount root fs|Kernel panic/;

export function probeKvm(qemu: string, kernel: string, timeoutMs = 10_000): Promise<boolean> {
  return new Promise((resolve) => {
    const args = ['-M', 'microvm', '-accel', 'kvm', '-cpu', 'host', '-m', '64', '-nodefaults', '-no-user-config'];
    args.push('-nographic', '-no-reboot', '-kernel', kernel, '-serial', 'stdio');
    args.push('-append', 'console=ttyS0 earlyprintk=serial,ttyS0 panic=-1');
    const child = spawn(qemu, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let seen = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      seen = (seen + chunk.toString('latin1')).slice(-4096);
      if (KERNEL_BOOTED.test(seen)) done(true);
    });
    // QEMU says so on stderr, and then the machine only sits paused.
    child.stderr.on('data', (chunk: Buffer) => {
      if (chunk.toString('latin1').includes('KVM internal error')) done(false);
    });
    child.on('error', () => done(false));
    child.on('exit', () => done(false));
  });
}
