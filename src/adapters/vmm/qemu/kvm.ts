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
 * (a paused machine, even a BIOS, runs), yet a Linux guest never gets past its first instruction:
 * nested virtualisation that refuses MSRs, as on hosts that are themselves microVMs. So the probe
 * boots the guest image's kernel with early console output and waits for its first line.
 */
export function probeKvm(qemu: string, kernel: string, timeoutMs = 10_000): Promise<boolean> {
  return new Promise((resolve) => {
    const args = ['-M', 'microvm', '-accel', 'kvm', '-cpu', 'host', '-m', '64', '-nodefaults', '-no-user-config'];
    args.push('-nographic', '-no-reboot', '-kernel', kernel, '-serial', 'stdio');
    args.push('-append', 'console=ttyS0 earlyprintk=serial,ttyS0 panic=-1');
    const child = spawn(qemu, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let seen = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      seen = (seen + chunk.toString('latin1')).slice(-4096);
      if (seen.includes('Linux version')) done(true);
    });
    child.on('error', () => done(false));
    child.on('exit', () => done(false));
  });
}
